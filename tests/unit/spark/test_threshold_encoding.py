"""Threshold encoding: residual bookkeeping, both wire formats, the switch between them, and the tau algorithms."""

from __future__ import annotations

import pytest
import torch

from deepspark.config._spec import Spec
from deepspark.errors import ConfigError
from deepspark.spark import AdaptiveThreshold, FixedThreshold, GradientSharing, ResidualClipping, TargetSparsity
from deepspark.spark._encoding import BITMAP, HEADER, PER_WORD, SPARSE, ThresholdCodec, ThresholdRank


def _decode(codec: ThresholdCodec, length: int) -> torch.Tensor:
    out = torch.zeros(codec.n, dtype=codec.dtype)
    codec.decode_into(codec.message[:length], out)
    return out


@pytest.mark.parametrize("n", [1, 15, 16, 17, 1000, 4099])
@pytest.mark.parametrize("tau", [1e-4, 1e-2, 0.3])
def test_encode_sent_plus_residual_equals_accumulated(n: int, tau: float) -> None:
    gen = torch.Generator().manual_seed(n)
    codec = ThresholdCodec(n)
    accumulated = torch.zeros(n, dtype=torch.float64)
    sent = torch.zeros(n, dtype=torch.float64)
    for _ in range(5):
        update = torch.randn(n, generator=gen) * 0.01
        accumulated += update.double()
        length = codec.encode(update, tau)
        sent += _decode(codec, length).double()
    # nothing lost: every bit of every update is either applied (sent) or still waiting (residual)
    torch.testing.assert_close(sent + codec.residual.double(), accumulated, rtol=0, atol=1e-6)


def test_encode_sends_exactly_the_elements_at_or_over_tau_as_signed_tau() -> None:
    codec = ThresholdCodec(6)
    update = torch.tensor([0.5, -0.5, 0.49, -0.51, 0.0, 1.7])
    length = codec.encode(update, 0.5)
    fmt, count, tau, _ = codec.header(codec.message)
    assert (fmt, count) == (BITMAP, 4)  # 4 ids would take 4 words, the bitmap of 6 elements takes 1
    assert tau == pytest.approx(0.5)
    assert _decode(codec, length).tolist() == [0.5, -0.5, 0.0, -0.5, 0.0, 0.5]
    torch.testing.assert_close(codec.residual, torch.tensor([0.0, 0.0, 0.49, -0.01, 0.0, 1.2]))


def test_encode_switches_to_bitmap_just_past_n_over_16() -> None:
    n = 160  # the bitmap holds 160 / 16 = 10 words: sparse while at most 10 elements go out
    for count, expected in [(10, SPARSE), (11, BITMAP)]:
        codec = ThresholdCodec(n)
        update = torch.zeros(n)
        update[torch.arange(count) * 7 % n] = torch.tensor([1.0, -1.0] * 8)[:count]
        length = codec.encode(update, 0.5)
        fmt, sent, _, _ = codec.header(codec.message)
        assert (fmt, sent) == (expected, count)
        assert length == (HEADER + count if expected == SPARSE else HEADER + n // PER_WORD)
        assert length <= codec.capacity
        torch.testing.assert_close(_decode(codec, length), update * 0.5)


def test_bitmap_decodes_every_element_and_sign_of_a_dense_message() -> None:
    gen = torch.Generator().manual_seed(3)
    n = 1003  # not a multiple of 16: the last word is partly padding
    update = torch.randn(n, generator=gen)
    codec = ThresholdCodec(n)
    length = codec.encode(update, 0.01)
    assert codec.header(codec.message)[0] == BITMAP
    expected = torch.where(update >= 0.01, 0.01, torch.where(update <= -0.01, -0.01, 0.0))
    torch.testing.assert_close(_decode(codec, length), expected)
    # decoding twice adds twice (decode accumulates the peers' messages into one buffer)
    out = torch.zeros(n)
    codec.decode_into(codec.message[:length], out)
    codec.decode_into(codec.message[:length], out)
    torch.testing.assert_close(out, 2 * expected)


def test_kth_magnitude_picks_tau_that_sends_the_target_fraction() -> None:
    codec = ThresholdCodec(1000)
    codec.add(torch.linspace(-1, 1, 1000))
    tau = codec.kth_magnitude(0.01)
    codec.encode(None, tau)
    assert codec.header(codec.message)[1] == 10


def test_adaptive_threshold_moves_sparsity_into_range() -> None:
    algo = AdaptiveThreshold(initial=1e-4, min_sparsity=1e-2, max_sparsity=5e-2)
    gen = torch.Generator().manual_seed(0)
    codec = ThresholdCodec(20_000)
    tau, sparsities = algo.initial, []
    for _ in range(300):
        codec.encode(torch.randn(20_000, generator=gen) * 1e-3, tau)
        _, count, used, _ = codec.header(codec.message)
        sparsities.append(count / codec.n)
        proposal = algo.propose(used, count / codec.n)
        assert proposal is not None
        tau = proposal
    assert sparsities[0] > 0.5  # tau starts far too low: almost everything goes out
    tail = sparsities[-50:]
    assert all(algo.min_sparsity / 2 <= s <= algo.max_sparsity * 2 for s in tail), tail
    assert algo.min_sparsity <= sum(tail) / len(tail) <= algo.max_sparsity


def test_adaptive_threshold_directions() -> None:
    algo = AdaptiveThreshold(initial=1e-3, min_sparsity=1e-4, max_sparsity=1e-2, decay=0.5, max_growth=2.0)
    assert algo.propose(1.0, 0.5) == 2.0
    assert algo.propose(1.0, 1e-6) == 0.5
    assert algo.propose(1.0, 1e-3) == 1.0
    assert FixedThreshold(threshold=0.2).propose(1.0, 0.9) == 0.2
    assert TargetSparsity(target=0.01).propose(1.0, 0.9) is None


@pytest.mark.parametrize(
    "spec",
    [
        GradientSharing(),
        GradientSharing(encoding="dense", staleness=1, num_workers=3, backend="gloo", epochs_per_stage=4),
        GradientSharing(threshold_algorithm=TargetSparsity(target=0.01), residual_post_processor=None),
        GradientSharing(threshold_algorithm=FixedThreshold(threshold=0.1), residual_post_processor=ResidualClipping()),
        GradientSharing(flush_residual=True, threshold_algorithm=AdaptiveThreshold(max_growth=2.0)),
    ],
)
def test_gradient_sharing_json_round_trip(spec: GradientSharing) -> None:
    assert GradientSharing.from_json(spec.to_json()) == spec
    assert Spec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"staleness": 2}, "staleness"),
        ({"num_workers": 0}, "num_workers"),
        ({"collective_timeout": -1.0}, "collective_timeout"),
        ({"epochs_per_stage": 0}, "epochs_per_stage"),
        ({"encoding": "sparse"}, "encoding"),
    ],
)
def test_gradient_sharing_rejects_bad_values_naming_the_field(kwargs: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{path}: "):
        GradientSharing.from_dict({"type": "gradient_sharing", **kwargs})


def test_threshold_specs_reject_bad_values() -> None:
    with pytest.raises(ConfigError, match="min_sparsity"):
        AdaptiveThreshold(min_sparsity=0.1, max_sparsity=0.01)
    with pytest.raises(ConfigError, match="decay"):
        AdaptiveThreshold(decay=1.0)
    with pytest.raises(ConfigError, match="target"):
        TargetSparsity(target=0.0)
    with pytest.raises(ConfigError, match=r"threshold_algorithm\.type: unknown .* did you mean 'fixed_threshold'"):
        GradientSharing.from_dict({"type": "gradient_sharing", "threshold_algorithm": {"type": "fixed_treshold"}})


def test_adaptive_threshold_grows_in_proportion_to_the_overshoot_within_bounds() -> None:
    algo = AdaptiveThreshold(max_sparsity=1e-2, decay=0.5, max_growth=4.0)
    assert algo.propose(1.0, 0.03) == pytest.approx(3.0)  # 3x too many sent: tau x3 at once
    assert algo.propose(1.0, 0.5) == 4.0  # capped at max_growth
    assert algo.propose(1.0, 0.011) == 2.0  # never slower than 1 / decay
    with pytest.raises(ConfigError, match="max_growth"):
        AdaptiveThreshold(max_growth=0.5)


def test_threshold_rank_keeps_what_it_did_not_send_and_all_ranks_apply_the_same_sum() -> None:
    gen = torch.Generator().manual_seed(5)
    n, world = 3000, 2
    ranks = [ThresholdRank(ThresholdCodec(n), AdaptiveThreshold(), None, world) for _ in range(world)]
    accumulated = torch.zeros(n, dtype=torch.float64)
    applied_total = torch.zeros(n, dtype=torch.float64)
    outs = [torch.zeros(n) for _ in range(world)]
    for _ in range(30):
        messages = []
        for rank in ranks:
            update = torch.randn(n, generator=gen) * 1e-3
            accumulated += update.double()
            length, _, _ = rank.encode(update)
            messages.append(rank.codec.message[:length].clone())
        for rank, out in zip(ranks, outs, strict=True):
            rank.combine(messages, out)
        assert torch.equal(outs[0], outs[1]) and ranks[0].tau == ranks[1].tau
        applied_total += outs[0].double()
    residuals = sum(rank.codec.residual.double() for rank in ranks)
    torch.testing.assert_close(applied_total + residuals, accumulated, rtol=0, atol=1e-5)
    assert 0 < ranks[0].steps == 30


def test_review_epoch_logs_a_warning_naming_the_setting_when_nothing_is_sent(caplog: pytest.LogCaptureFixture) -> None:
    stalled = GradientSharing(threshold_algorithm=FixedThreshold(threshold=10.0))
    reports = [{"rank": r, "steps": 125, "elements_sent": 0, "state": {"tau": 10.0}} for r in range(2)]
    with caplog.at_level("WARNING", logger="deepspark"):
        stalled.review_epoch(0, reports, 431_080)
    assert "FixedThreshold(threshold=10.0)" in caplog.text and "epoch 0" in caplog.text
    caplog.clear()
    healthy = [{"rank": r, "steps": 125, "elements_sent": 125 * 1000, "state": {"tau": 5e-3}} for r in range(2)]
    with caplog.at_level("WARNING", logger="deepspark"):
        GradientSharing().review_epoch(0, healthy, 431_080)
        GradientSharing(encoding="dense").review_epoch(0, reports, 431_080)
    assert caplog.text == ""
