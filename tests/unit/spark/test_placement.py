"""Which device a Spark task picks from the resources Spark handed it, and which process-group backend the ranks
agree on: pure functions, no JVM (tests/cluster/test_gpu_scheduling.py runs them inside real Spark tasks)."""

from __future__ import annotations

import pytest

from deepspark.errors import ConfigError
from deepspark.spark._placement import DEVICE_KEY, TASK_AMOUNT_KEY, Placement, placement_from_conf, task_device
from deepspark.spark._rendezvous import pick_backend

ONE_GPU = Placement(device="auto", task_amount=1.0)


def test_placement_from_conf_defaults_to_auto_without_gpus() -> None:
    placement = placement_from_conf({})
    assert placement == Placement(device="auto", task_amount=0.0) and not placement.gpus


def test_placement_from_conf_task_gpu_amount_turns_gpus_on_unless_device_is_cpu() -> None:
    assert placement_from_conf({TASK_AMOUNT_KEY: "0.5"}).gpus
    assert not placement_from_conf({TASK_AMOUNT_KEY: "1", DEVICE_KEY: "cpu"}).gpus


def test_placement_from_conf_cuda_without_task_gpus_config_error_names_the_spark_key() -> None:
    with pytest.raises(ConfigError, match=r"Spark hands tasks no GPU: set spark\.task\.resource\.gpu\.amount") as info:
        placement_from_conf({DEVICE_KEY: "cuda"})
    assert info.value.path == DEVICE_KEY


@pytest.mark.parametrize(("conf", "match"), [
    ({DEVICE_KEY: "cuda:1"}, r"a fixed index would put every task on one GPU"),
    ({DEVICE_KEY: "gpu"}, r"expected one of auto, cpu, cuda"),
    ({TASK_AMOUNT_KEY: "one"}, r"^spark\.task\.resource\.gpu\.amount: expected a number, got 'one'"),
])
def test_placement_from_conf_bad_values_config_error(conf: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        placement_from_conf(conf)


@pytest.mark.parametrize("master", ["local", "local[2]", "local[*, 3]"])
def test_placement_from_conf_gpu_amount_on_local_mode_config_error_instead_of_a_hang(master: str) -> None:
    with pytest.raises(ConfigError, match=r"local mode .* hands tasks no GPU addresses.*local-cluster"):
        placement_from_conf({TASK_AMOUNT_KEY: "1"}, master)
    assert placement_from_conf({TASK_AMOUNT_KEY: "1"}, "local-cluster[1,2,1024]").gpus
    assert not placement_from_conf({}, master).gpus


def test_task_device_uses_the_address_spark_assigned_never_cuda0_by_habit() -> None:
    assert task_device(ONE_GPU, {"gpu": ["1"]}, None) == "cuda:1"
    assert task_device(ONE_GPU, {"gpu": ["0"]}, None) == "cuda:0"


def test_task_device_without_gpu_settings_is_cpu_even_when_addresses_exist() -> None:
    assert task_device(Placement(device="auto"), {"gpu": ["1"]}, None) == "cpu"
    assert task_device(Placement(device="cpu", task_amount=1.0), {"gpu": ["1"]}, None) == "cpu"


def test_task_device_fractional_amounts_share_a_gpu_as_the_settings_say() -> None:
    half = Placement(device="auto", task_amount=0.5)
    assert {task_device(half, {"gpu": ["0"]}, None) for _ in range(2)} == {"cuda:0"}


def test_task_device_isolated_gpus_map_the_address_through_cuda_visible_devices() -> None:
    assert task_device(ONE_GPU, {"gpu": ["5"]}, "3,5") == "cuda:1"
    assert task_device(ONE_GPU, {"gpu": ["GPU-ab12"]}, "GPU-ab12") == "cuda:0"


def test_task_device_gpus_configured_but_no_address_handed_config_error() -> None:
    match = r"Spark handed this task no 'gpu' address \(resources it got: fpga\)"
    with pytest.raises(ConfigError, match=match) as info:
        task_device(ONE_GPU, {"fpga": ["0"]}, None)
    assert info.value.path == TASK_AMOUNT_KEY
    assert "spark.executor.resource.gpu.amount" in str(info.value)


def test_task_device_address_cuda_cannot_name_config_error() -> None:
    with pytest.raises(ConfigError, match=r"GPU address 'GPU-ab12', which is not a CUDA device index"):
        task_device(ONE_GPU, {"gpu": ["GPU-ab12"]}, None)


@pytest.mark.parametrize(("requested", "kinds", "backend", "why"), [
    ("auto", ["cuda:0@a", "cuda:1@a"], "nccl", "every rank has its own CUDA device"),
    ("auto", ["cuda:0@a", "cuda:0@b"], "nccl", "every rank has its own CUDA device"),
    ("auto", ["cpu@a", "cpu@a"], "gloo", "no rank has a CUDA device (CPU fallback)"),
    ("auto", ["cuda:0@a", "cpu@b"], "gloo", "rank(s) [1] of 2 have no CUDA device (CPU fallback for all)"),
    ("auto", ["cuda:0@a", "cuda:0@a"], "gloo", "ranks share a GPU, and NCCL needs one per rank"),
    ("gloo", [], "gloo", "backend='gloo' asked for"),
    ("gloo", ["cuda:0@a", "cuda:1@a"], "gloo", "backend='gloo' asked for"),
    ("nccl", ["cuda:0@a", "cuda:1@a"], "nccl", "backend='nccl' asked for"),
])
def test_pick_backend_nccl_only_when_every_rank_has_cuda(requested: str, kinds: list[str], backend: str,
                                                         why: str) -> None:
    assert pick_backend(requested, kinds) == (backend, why)


def test_pick_backend_nccl_with_a_cpu_rank_config_error_names_the_rank() -> None:
    with pytest.raises(ConfigError, match=r"^backend: NCCL moves CUDA tensors only, but rank\(s\) \[0\] compute on"):
        pick_backend("nccl", ["cpu@a", "cuda:0@a"])


def test_pick_backend_nccl_with_ranks_sharing_a_gpu_config_error_names_the_amount() -> None:
    with pytest.raises(ConfigError, match=r"NCCL needs one GPU per rank.*spark\.task\.resource\.gpu\.amount=1"):
        pick_backend("nccl", ["cuda:0@a", "cuda:0@a"])
