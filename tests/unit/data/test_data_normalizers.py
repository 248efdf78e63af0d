"""Normalizers: streaming fit equals full fit, transform/revert round trip, JSON round trip, edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepspark.data import (
    ArrayIterator,
    AsyncIterator,
    DataSet,
    ImageScaler,
    MinMax,
    Normalizer,
    Standardize,
    normalizer_from_dict,
    normalizer_from_json,
)
from deepspark.errors import ConfigError, DataError


def _data(seed: int, shape: tuple[int, ...] = (257, 5)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Large offset, small spread: naive sum-of-squares variance would lose digits here.
    return (1000.0 + rng.normal(0.0, 0.5, size=shape) * rng.uniform(0.1, 3.0, size=shape[1:])).astype(np.float64)


def _fitted(kind: str, x: np.ndarray) -> Normalizer:
    if kind == "standardize":
        return Standardize().fit(x)
    if kind == "standardize_per_channel":
        return Standardize(per_channel=True).fit(x)
    if kind == "minmax":
        return MinMax(min_range=-1, max_range=2).fit(x)
    return ImageScaler(min_range=-0.5, max_range=0.5, max_pixel=255)


KINDS = ["standardize", "standardize_per_channel", "minmax", "image_scaler"]


def _shape_for(kind: str) -> tuple[int, ...]:
    return (64, 3, 4, 4) if kind == "standardize_per_channel" else (257, 5)


def test_standardize_fit_on_batches_equals_fit_on_all(seed: int) -> None:
    x = _data(seed)
    whole = Standardize().fit(x)
    streamed = Standardize().fit(ArrayIterator(x, batch_size=19, shuffle=True, seed=seed))
    assert streamed.count == whole.count == 257
    np.testing.assert_allclose(streamed.mean, whole.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(streamed.std, whole.std, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(whole.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(whole.std, x.std(axis=0), rtol=1e-9)


def test_standardize_per_channel_fit_on_batches_equals_numpy_per_channel(seed: int) -> None:
    x = _data(seed, (50, 3, 6, 6))
    streamed = Standardize(per_channel=True).fit(AsyncIterator(ArrayIterator(x, batch_size=7)))
    assert streamed.mean.shape == (3,) and streamed.count == 50 * 36
    np.testing.assert_allclose(streamed.mean, x.mean(axis=(0, 2, 3)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(streamed.std, x.std(axis=(0, 2, 3)), rtol=1e-6, atol=1e-6)
    out = streamed.transform(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-6)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1.0, rtol=1e-6)


def test_minmax_fit_on_batches_equals_fit_on_all(seed: int) -> None:
    x = _data(seed)
    whole = MinMax().fit(x)
    streamed = MinMax().fit(list(DataSet(x).batches(10)))
    np.testing.assert_array_equal(streamed.data_min, x.min(axis=0))
    np.testing.assert_array_equal(streamed.data_max, whole.data_max)
    out = whole.transform(x)
    np.testing.assert_allclose(out.min(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.max(axis=0), 1.0, atol=1e-12)


def test_standardize_from_sums_and_merge_equal_full_fit(seed: int) -> None:
    x = _data(seed, (300, 4)) - 1000.0  # moderate mean: the sums constructor is accurate here
    whole = Standardize().fit(x)
    from_sums = Standardize.from_sums(300, x.sum(axis=0), (x**2).sum(axis=0))
    np.testing.assert_allclose(from_sums.mean, whole.mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(from_sums.std, whole.std, rtol=1e-6)
    merged = Standardize().fit(x[:100]).merge(Standardize().fit(x[100:]))
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.std, whole.std, rtol=1e-12)
    count, mean, m2 = whole.moments()
    np.testing.assert_allclose(Standardize.from_moments(count, mean, m2).std, whole.std, rtol=1e-12)


def test_minmax_from_min_max_and_merge_equal_full_fit(seed: int) -> None:
    x = _data(seed)
    whole = MinMax().fit(x)
    built = MinMax.from_min_max(x.min(axis=0), x.max(axis=0))
    np.testing.assert_array_equal(built.transform(x), whole.transform(x))
    merged = MinMax().fit(x[:50]).merge(MinMax().fit(x[50:]))
    np.testing.assert_array_equal(merged.data_min, whole.data_min)
    np.testing.assert_array_equal(merged.data_max, whole.data_max)


@pytest.mark.parametrize("kind", KINDS)
def test_normalizer_transform_then_revert_round_trips(kind: str, seed: int) -> None:
    x = _data(seed, _shape_for(kind))
    norm = _fitted(kind, x)
    out = norm.transform(x)
    assert out.dtype == np.float64 and out.shape == x.shape
    np.testing.assert_allclose(norm.revert(out), x, rtol=1e-12)
    x32 = x.astype(np.float32)
    out32 = norm.transform(x32)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(norm.revert(out32), x32, rtol=1e-5)
    assert not np.shares_memory(out, x)


@pytest.mark.parametrize("kind", KINDS)
def test_normalizer_json_round_trip_gives_identical_transform(kind: str, seed: int) -> None:
    x = _data(seed, _shape_for(kind))
    norm = _fitted(kind, x)
    text = norm.to_json()
    assert json.loads(text)["type"] == norm.tag
    again = normalizer_from_json(text)
    assert type(again) is type(norm) and again.to_json() == text
    np.testing.assert_array_equal(again.transform(x), norm.transform(x))
    assert type(norm).from_json(text).to_dict() == norm.to_dict()


@pytest.mark.parametrize("cls", [Standardize, MinMax])
def test_normalizer_unfitted_json_round_trip_stays_unfitted(cls: type[Normalizer]) -> None:
    again = normalizer_from_dict(cls().to_dict())
    assert isinstance(again, cls) and not again.is_fitted


@pytest.mark.parametrize("cls", [Standardize, MinMax])
def test_normalizer_transform_before_fit_raises_data_error(cls: type[Normalizer]) -> None:
    with pytest.raises(DataError, match=r"not fitted: call fit"):
        cls().transform(np.zeros((2, 2)))


def test_standardize_zero_variance_column_stays_finite() -> None:
    x = np.array([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]], dtype=np.float32)
    norm = Standardize().fit(x)
    out = norm.transform(x)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, 1], 0.0)
    assert np.isfinite(norm.transform(np.array([[2.0, 8.0]]))).all()  # unseen value in the constant column
    np.testing.assert_allclose(norm.revert(out), x)


def test_minmax_constant_column_maps_to_min_range() -> None:
    x = np.array([[0.0, 4.0], [10.0, 4.0]])
    out = MinMax(min_range=-1, max_range=1).fit(x).transform(x)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, [[-1.0, -1.0], [1.0, -1.0]])


def test_image_scaler_uint8_pixels_scale_to_float32_range() -> None:
    pixels = np.array([[0, 255]], dtype=np.uint8)
    out = ImageScaler().fit(pixels).transform(pixels)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0.0, 1.0]])


def test_normalizer_from_json_unknown_type_raises_config_error_listing_valid() -> None:
    with pytest.raises(ConfigError, match=r"unknown normalizer type 'zscore'.*'image_scaler', 'minmax', 'standardize'"):
        normalizer_from_json('{"type": "zscore"}')
    with pytest.raises(ConfigError, match="did you mean 'minmax'"):
        normalizer_from_dict({"type": "min_max"})


def test_normalizer_from_dict_unknown_key_raises_config_error() -> None:
    d = Standardize().to_dict()
    d["per_chanel"] = True
    with pytest.raises(ConfigError, match=r"per_chanel: unknown key.*did you mean 'per_channel'"):
        normalizer_from_dict(d)


def test_normalizer_from_json_tampered_stats_raise_config_error() -> None:
    d = Standardize().fit(np.ones((3, 2))).to_dict()
    d["mean"] = [1.0]
    with pytest.raises(ConfigError, match=r"mean: expected 2 values"):
        normalizer_from_dict(d)


def test_standardize_transform_wrong_shape_raises_data_error() -> None:
    norm = Standardize().fit(np.zeros((4, 3)))
    with pytest.raises(DataError, match=r"fitted on example shape \(3,\), got \(2,\)"):
        norm.transform(np.zeros((4, 2)))


def test_standardize_fit_with_nan_raises_data_error() -> None:
    x = np.ones((4, 3))
    x[2, 1] = np.nan
    with pytest.raises(DataError, match=r"feature \(1,\) contains NaN"):
        Standardize().fit(x)


def test_normalizer_fit_empty_iterable_raises_data_error() -> None:
    with pytest.raises(DataError, match="no batches"):
        Standardize().fit([])


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: MinMax(min_range=1, max_range=0), "max_range"),
        (lambda: ImageScaler(max_pixel=0), "max_pixel"),
        (lambda: Standardize(min_std=-1), "min_std"),
        (lambda: Standardize.from_moments(0, [1.0], [1.0]), "count"),
    ],
)
def test_normalizer_invalid_parameter_raises_config_error_naming_field(build: object, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        build()  # type: ignore[operator]
