"""The in-memory minibatch (`DataSet`) and the array-level `train_test_split` helper.

A `DataSet` is DL4J's ``DataSet`` for numpy: features, optional labels and optional masks that share
their first (example) axis. Everything here is vectorized over rows: shuffling, splitting and
batching index with one permutation array, never a per-row Python loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from deepspark.errors import ConfigError, DataError

__all__ = ["DataSet", "train_test_split"]


def _rng(seed: int) -> np.random.Generator:
    """A generator for a user seed; rejects what numpy would reject, with a message that names the seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"expected a non-negative int, got {seed!r}", "seed")
    return np.random.default_rng(int(seed))


def _check_fraction(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"expected a number strictly between 0 and 1, got {value!r}", name)
    return float(value)


def _split_sizes(n: int, fraction: float, what: str) -> int:
    """How many of ``n`` rows go to the first part; both parts must be non-empty."""
    first = round(n * fraction)
    if n < 2 or first == 0 or first == n:
        raise DataError(
            f"cannot split {n} example(s) with {what}={fraction}: one part would be empty; "
            "use more examples or a fraction nearer 0.5"
        )
    return first


@dataclass(frozen=True, eq=False)
class DataSet:
    """One minibatch (or a whole small data set) of features, optional labels and optional masks.

    All arrays share their first axis: example ``i`` is ``features[i]``, ``labels[i]``,
    ``features_mask[i]`` and ``labels_mask[i]``. The masks are for variable-length sequences
    (``1`` marks a real time step, ``0`` padding), as in DL4J. Arrays are held, not copied, so a
    ``DataSet`` made from a slice is a view of the caller's data; methods return new ``DataSet``
    objects and never write into the arrays.

    Example:
        >>> ds = DataSet(np.zeros((10, 4), np.float32), np.arange(10))
        >>> train, test = ds.split(0.8, seed=1)
        >>> train.num_examples, test.num_examples
        (8, 2)
    """

    features: np.ndarray
    labels: np.ndarray | None = None
    features_mask: np.ndarray | None = None
    labels_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.features, np.ndarray):
            raise DataError(
                f"DataSet.features: expected a numpy array, got {type(self.features).__name__}; "
                "wrap it with np.asarray(...)"
            )
        if self.features.ndim == 0:
            raise DataError("DataSet.features: expected an array with an example axis, got a 0-d scalar")
        n = self.features.shape[0]
        for name in ("labels", "features_mask", "labels_mask"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, np.ndarray):
                raise DataError(f"DataSet.{name}: expected a numpy array or None, got {type(value).__name__}")
            if value.ndim == 0 or value.shape[0] != n:
                got = "a 0-d scalar" if value.ndim == 0 else f"{value.shape[0]} rows"
                raise DataError(
                    f"DataSet.{name} has {got} but features has {n} rows; every array must hold one entry per example"
                )

    @property
    def num_examples(self) -> int:
        """The number of examples (the length of the first axis)."""
        return int(self.features.shape[0])

    def __len__(self) -> int:
        return self.num_examples

    def take(self, index: np.ndarray | slice) -> DataSet:
        """The examples at ``index`` (an integer index array or a slice) from every array at once."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return DataSet(self.features[index], pick(self.labels), pick(self.features_mask), pick(self.labels_mask))

    def shuffle(self, seed: int = 0) -> DataSet:
        """A new `DataSet` with the examples in a random order that depends only on ``seed``.

        Example:
            >>> DataSet(np.arange(5)).shuffle(seed=3).num_examples
            5
        """
        return self.take(_rng(seed).permutation(self.num_examples))

    def split(self, fraction: float, seed: int | None = 0) -> tuple[DataSet, DataSet]:
        """Split into ``(train, test)`` where ``train`` holds ``round(fraction * n)`` examples.

        ``fraction`` is the TRAIN share, as in DL4J's ``splitTestAndTrain``. Rows are shuffled with
        ``seed`` first, so a sorted data set does not put one class in the test part; pass
        ``seed=None`` to keep the original order (e.g. for time series).

        Example:
            >>> train, test = DataSet(np.arange(10)).split(0.7, seed=0)
            >>> (train.num_examples, test.num_examples)
            (7, 3)
        """
        fraction = _check_fraction(fraction, "fraction")
        n = self.num_examples
        n_train = _split_sizes(n, fraction, "fraction")
        ds = self if seed is None else self.take(_rng(seed).permutation(n))
        return ds.take(slice(0, n_train)), ds.take(slice(n_train, n))

    def batches(self, batch_size: int, drop_last: bool = False) -> Iterator[DataSet]:
        """Consecutive minibatches of ``batch_size`` examples (views, not copies), in order.

        The last batch is smaller when ``batch_size`` does not divide the number of examples,
        unless ``drop_last`` is true. Shuffle first with `shuffle` or use `ArrayIterator` for epochs.

        Example:
            >>> [b.num_examples for b in DataSet(np.arange(10)).batches(4)]
            [4, 4, 2]
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"expected a positive int, got {batch_size!r}", "batch_size")
        n = self.num_examples
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            yield self.take(slice(start, min(start + batch_size, n)))

    @staticmethod
    def concat(datasets: Sequence[DataSet]) -> DataSet:
        """One `DataSet` holding the examples of ``datasets`` in order (DL4J's ``DataSet.merge``).

        Every part must carry the same optional arrays (all with labels or none, and so on).

        Example:
            >>> DataSet.concat([DataSet(np.zeros((2, 3))), DataSet(np.ones((1, 3)))]).num_examples
            3
        """
        if not datasets:
            raise DataError("DataSet.concat: expected at least one DataSet, got an empty sequence")
        merged: dict[str, np.ndarray | None] = {}
        for name in ("labels", "features_mask", "labels_mask"):
            present = [getattr(d, name) is not None for d in datasets]
            if any(present) and not all(present):
                missing = present.index(False)
                raise DataError(
                    f"DataSet.concat: datasets[{missing}].{name} is None but other parts have {name}; "
                    "give every part the same optional arrays"
                )
            try:
                merged[name] = np.concatenate([getattr(d, name) for d in datasets]) if all(present) else None
            except ValueError as e:
                raise DataError(f"DataSet.concat: the {name} arrays have incompatible shapes: {e}") from e
        try:
            features = np.concatenate([d.features for d in datasets])
        except ValueError as e:
            raise DataError(f"DataSet.concat: the features arrays have incompatible shapes: {e}") from e
        return DataSet(features, merged["labels"], merged["features_mask"], merged["labels_mask"])

    def replace(self, **changes: np.ndarray | None) -> DataSet:
        """A copy with some arrays replaced (e.g. normalized features), validated again."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _stratified_test_index(y: np.ndarray, n_test: int, rng: np.random.Generator) -> np.ndarray:
    """Test-row indices holding each class in proportion (largest-remainder rounding to hit ``n_test``)."""
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    exact = counts * (n_test / y.shape[0])
    per_class = np.floor(exact).astype(np.int64)
    short = n_test - int(per_class.sum())
    if short > 0:
        # Give the remaining rows to the classes with the largest remainders (stable on ties).
        order = np.argsort(-(exact - per_class), kind="stable")
        per_class[order[:short]] += 1
    # Group rows by class in a random order within each class, then take each group's head.
    perm = rng.permutation(y.shape[0])
    grouped = perm[np.argsort(inverse[perm], kind="stable")]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(y.shape[0]) - np.repeat(starts, counts)
    chosen = grouped[rank < np.repeat(per_class, counts)]
    return rng.permutation(chosen)


def train_test_split(
    x: np.ndarray,
    y: np.ndarray,
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split arrays into ``(x_train, x_test, y_train, y_test)`` with a seeded permutation.

    The test part holds ``round(test_fraction * n)`` rows. With ``stratify=True`` each class of
    ``y`` (1-D labels) is represented in the test part in proportion to its size, so a rare class
    is not left out of evaluation by chance. The order of both parts is random.

    Example:
        >>> x, y = np.arange(20).reshape(10, 2), np.array([0] * 5 + [1] * 5)
        >>> x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_fraction=0.2, stratify=True)
        >>> sorted(y_te.tolist())
        [0, 1]
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        got_x = "a scalar" if x.ndim == 0 else f"{x.shape[0]} rows"
        got_y = "a scalar" if y.ndim == 0 else f"{y.shape[0]} rows"
        raise DataError(f"train_test_split: x has {got_x} but y has {got_y}; pass one label per example")
    test_fraction = _check_fraction(test_fraction, "test_fraction")
    n = x.shape[0]
    n_test = _split_sizes(n, test_fraction, "test_fraction")
    rng = _rng(seed)
    if stratify:
        if y.ndim != 1 and not (y.ndim == 2 and y.shape[1] == 1):
            raise DataError(
                f"train_test_split(stratify=True): expected 1-D class labels, got shape {y.shape}; "
                "pass class indices (e.g. y.argmax(axis=1) for one-hot labels)"
            )
        test_idx = _stratified_test_index(y.reshape(-1), n_test, rng)
        is_test = np.zeros(n, dtype=bool)
        is_test[test_idx] = True
        train_idx = rng.permutation(np.flatnonzero(~is_test))
    else:
        perm = rng.permutation(n)
        test_idx, train_idx = perm[:n_test], perm[n_test:]
    return x[train_idx], x[test_idx], y[train_idx], y[test_idx]
