"""Device placement and mixed precision on one machine: device strings, typed errors before work, bf16 autocast
training on the CPU, fp16 loss scaling, device-independent archives, and the per-device memory report."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from deepspark.config import Conv2D, Dense, InputType, NetworkConfig, Output, Sgd, Subsampling2D
from deepspark.data import load_digits
from deepspark.errors import ConfigError
from deepspark.nn import Network
from deepspark.nn.device import CudaInfo, check_precision, parse_device, resolve_device
from deepspark.nn.precision import LossScaler, MixedPrecision

NO_CUDA = CudaInfo(0, False)
TWO_GPUS = CudaInfo(2, True)


def _conf(seed: int = 0, **kwargs: object) -> NetworkConfig:
    return NetworkConfig(
        seed=seed,
        input_type=InputType.convolutional_flat(8, 8, 1),
        layers=(
            Conv2D(n_out=6, kernel=(3, 3), activation="relu"),
            Subsampling2D(kernel=(2, 2), stride=(2, 2)),
            Dense(n_out=32, activation="relu"),
            Output(n_out=10),
        ),
        **kwargs,  # type: ignore[arg-type]
    )


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits()
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order].astype(np.float32), y[order]
    return x[:1347], y[:1347], x[1347:], y[1347:]


# ----------------------------------------------------------------------------- device strings


@pytest.mark.parametrize(
    ("given", "expected"),
    [("cpu", "cpu"), (" CUDA:1 ", "cuda:1"), ("auto", "auto"), ("cuda", "cuda"), ("meta", "meta")],
)
def test_parse_device_valid_strings_normalised(given: str, expected: str) -> None:
    assert parse_device(given) == expected


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:1", "cuda:-1", "", 3, None])
def test_parse_device_invalid_value_config_error_names_field(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^device: expected one of auto, cpu, cuda, cuda:N") as info:
        parse_device(bad)
    assert info.value.path == "device"


def test_resolve_device_auto_without_cuda_is_cpu_and_with_cuda_the_first_gpu() -> None:
    assert resolve_device("auto", NO_CUDA) == torch.device("cpu")
    assert resolve_device("auto", TWO_GPUS) == torch.device("cuda", 0)
    assert resolve_device("cuda:1", TWO_GPUS) == torch.device("cuda", 1)
    assert resolve_device("cuda", TWO_GPUS) == torch.device("cuda", 0)


@pytest.mark.parametrize("asked", ["cuda", "cuda:0"])
def test_resolve_device_cuda_without_cuda_config_error_names_auto(asked: str) -> None:
    with pytest.raises(ConfigError, match=r"torch sees no CUDA device.*device='auto'") as info:
        resolve_device(asked, NO_CUDA)
    assert info.value.path == "device"


def test_resolve_device_index_past_visible_gpus_config_error_names_the_range() -> None:
    with pytest.raises(ConfigError, match=r"sees 2 CUDA device\(s\) \(cuda:0 \.\. cuda:1\).*CUDA_VISIBLE_DEVICES"):
        resolve_device("cuda:2", TWO_GPUS)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_network_cuda_on_machine_without_cuda_config_error_before_work() -> None:
    with pytest.raises(ConfigError, match=r"^device: 'cuda' asked for, but torch sees no CUDA.*device='auto'"):
        Network(_conf(), device="cuda")


def test_network_default_device_is_cpu_and_auto_follows_cuda_availability() -> None:
    assert Network(_conf()).device == torch.device("cpu")
    auto = Network(_conf(), device="auto")
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert auto.flat.params.device == auto.device and auto.updater.state.device == auto.device


# ----------------------------------------------------------------------------- precision settings


def test_fp16_on_cpu_config_error_before_work_names_bf16() -> None:
    with pytest.raises(ConfigError, match=r"^precision: fp16 mixed precision needs a CUDA device.*'bf16'"):
        Network(_conf(precision="fp16"))


def test_check_precision_bf16_on_gpu_without_bf16_config_error_names_fp16() -> None:
    with pytest.raises(ConfigError, match=r"^precision: bf16 needs a GPU with bfloat16 support.*'fp16'"):
        check_precision("bf16", torch.device("cuda", 0), CudaInfo(1, False))
    check_precision("fp16", torch.device("cuda", 0), CudaInfo(1, False))  # no error
    check_precision("bf16", torch.device("cpu"))


def test_network_config_mixed_precision_with_float64_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^precision: bf16 mixed precision keeps float32 master weights"):
        _conf(precision="bf16", dtype="float64")


def test_network_config_unknown_precision_config_error_suggests() -> None:
    with pytest.raises(ConfigError, match=r"^precision: expected one of \['fp32', 'bf16', 'fp16'\].*'bf16'"):
        _conf(precision="bf61")


def test_network_config_precision_round_trips_and_old_json_reads_as_fp32() -> None:
    conf = _conf(precision="bf16")
    assert NetworkConfig.from_json(conf.to_json()) == conf
    data = json.loads(_conf().to_json())
    del data["precision"]  # a config written before the field existed
    assert NetworkConfig.from_dict(data).precision == "fp32"


# ----------------------------------------------------------------------------- bf16 autocast on the CPU


def test_bf16_forward_runs_in_bf16_while_master_weights_and_gradients_stay_fp32() -> None:
    net = Network(_conf(precision="bf16"))
    seen: list[torch.dtype] = []
    first = next(m for m in net.model.modules() if isinstance(m, torch.nn.Conv2d) or hasattr(m, "weight"))
    first.register_forward_hook(lambda _m, _i, out: seen.append((out[0] if isinstance(out, tuple) else out).dtype))
    x, y, _, _ = _digits()
    net.fit(x[:64], y[:64], epochs=1, batch_size=32)
    assert torch.bfloat16 in seen
    assert net.flat.params.dtype == net.flat.grads.dtype == net.updater.state.dtype == torch.float32
    assert net.output(x[:5]).dtype == np.float32


def test_bf16_fit_converges_on_digits_close_to_fp32(seed: int) -> None:
    x, y, xt, yt = _digits()
    accuracy = {}
    for precision in ("fp32", "bf16"):
        net = Network(_conf(seed, precision=precision))
        net.fit(x, y, epochs=4, batch_size=32)
        accuracy[precision] = net.evaluate(xt, yt).accuracy()
    assert accuracy["bf16"] > 0.85, f"reproduce with DEEPSPARK_TEST_SEED={seed}: {accuracy}"
    assert abs(accuracy["bf16"] - accuracy["fp32"]) < 0.05, f"reproduce with DEEPSPARK_TEST_SEED={seed}: {accuracy}"


def test_bf16_changes_the_arithmetic_but_fp32_is_bit_identical_to_the_default(seed: int) -> None:
    x, y, _, _ = _digits()
    runs = {}
    for name, conf in (("default", _conf(seed)), ("fp32", _conf(seed, precision="fp32")),
                       ("bf16", _conf(seed, precision="bf16"))):
        net = Network(conf, device="cpu")
        net.fit(x[:128], y[:128], epochs=1, batch_size=32)
        runs[name] = net.params()
    np.testing.assert_array_equal(runs["default"], runs["fp32"])
    assert not np.array_equal(runs["fp32"], runs["bf16"])
    np.testing.assert_allclose(runs["fp32"], runs["bf16"], atol=0.05)


# ----------------------------------------------------------------------------- fp16 loss scaling


def test_loss_scaler_overflow_zeroes_gradient_halves_scale_and_counts_a_skip() -> None:
    scaler = LossScaler(init_scale=8.0, growth_interval=2)
    grads = torch.tensor([1.0, float("inf"), 2.0])
    assert not scaler.unscale_(grads)
    assert grads.tolist() == [0.0, 0.0, 0.0] and scaler.value == 4.0 and scaler.skipped == 1
    for _ in range(2):
        assert scaler.unscale_(torch.tensor([4.0]))
    assert scaler.value == 8.0  # two finite steps in a row: grown back


def test_fit_batch_with_overflowing_loss_scale_skips_the_update_and_backs_off(seed: int) -> None:
    net = Network(_conf(seed, updater=Sgd(learning_rate=0.1), l2=1e-3))  # l2 must not leak into a skipped step
    net.mixed = MixedPrecision("fp16", "cpu")  # the fp16 code path, exercised on the CPU (users get a ConfigError)
    assert net.mixed.scaler is not None
    net.mixed.scaler.value = 1e38  # the scaled loss overflows float32
    x, y, _, _ = _digits()
    before = net.params()
    batch = net._prepare(x[:32], y[:32])
    net.fit_batch(batch)
    assert net.step_skipped and net.iteration == 1
    np.testing.assert_array_equal(net.params(), before)
    assert net.mixed.scaler.value == 5e37
    net.mixed.scaler.value = 1024.0
    net.fit_batch(batch)
    assert not net.step_skipped and not np.array_equal(net.params(), before)


# ----------------------------------------------------------------------------- archives and devices


def test_archive_holds_no_device_and_loads_on_any_device(tmp_path: Path, seed: int) -> None:
    x, y, xt, _ = _digits()
    net = Network(_conf(seed, precision="bf16"), device="cpu")
    net.fit(x[:64], y[:64], epochs=1, batch_size=32)
    path = tmp_path / "model.zip"
    net.save(path)
    with zipfile.ZipFile(path) as z:
        text = (z.read("config.json") + z.read("metadata.json")).decode()
    assert "cuda" not in text and "device" not in text
    back = Network.load(path, device="cpu")
    np.testing.assert_array_equal(back.params(), net.params())
    np.testing.assert_array_equal(back.output(xt[:8]), net.output(xt[:8]))
    shapes_only = Network.load(path, device="meta")  # shapes and layout without data: any device builds it
    assert shapes_only.flat.params.device.type == "meta" and shapes_only.num_params() == net.num_params()


def test_network_on_meta_device_allocates_no_data_but_keeps_the_layout() -> None:
    cpu, meta = Network(_conf()), Network(_conf(), device="meta")
    assert meta.flat.params.is_meta and meta.updater.state.is_meta
    assert [s.name for s in meta.flat.segments] == [s.name for s in cpu.flat.segments]


# ----------------------------------------------------------------------------- memory report per device


def test_memory_report_names_device_free_memory_and_bf16_halves_activations() -> None:
    fp32 = Network(_conf()).memory_report(batch_size=64)
    bf16 = Network(_conf(precision="bf16")).memory_report(batch_size=64)
    assert fp32.device == "cpu" and fp32.available is not None and fp32.fits
    assert "cpu free" in str(fp32) and "(fits)" in str(fp32)
    assert bf16.params == fp32.params and bf16.activation_total < fp32.activation_total
    assert fp32.warning() is None


def test_memory_report_too_big_for_the_device_warns_naming_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    import deepspark.nn.report as report

    net = Network(_conf())
    small = dataclasses.replace(net.memory_report(batch_size=256), available=1024)
    assert small.fits is False and "does NOT fit" in str(small)
    message = small.warning()
    assert message is not None and "batch size 256" in message and "lower batch_size" in message
    monkeypatch.setattr(report, "device_available", lambda device: 1024)
    with pytest.warns(RuntimeWarning, match=r"needs about .* on cpu but it has 1.0 KiB free"):
        assert net.check_device_memory(256) is not None
