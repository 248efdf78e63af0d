"""ArrayIterator epochs and shuffling, ListIterator, and AsyncIterator prefetching and shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from deepspark.data import ArrayIterator, AsyncIterator, DataSet, DataSetIterator, ListIterator
from deepspark.data.iterators import PREFETCH_THREAD_PREFIX
from deepspark.errors import ConfigError, DataError


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(PREFETCH_THREAD_PREFIX)]


def _prefetch_threads_after_waiting(deadline_s: float = 5.0) -> list[threading.Thread]:
    """The prefetch threads still alive once they all exit or the deadline passes (joins, never sleeps)."""
    end = time.monotonic() + deadline_s
    alive = _prefetch_threads()
    while alive and time.monotonic() < end:
        alive[0].join(timeout=0.05)
        alive = _prefetch_threads()
    return alive


@pytest.fixture(autouse=True)
def _no_leaked_prefetch_threads() -> Iterator[None]:
    yield
    assert _prefetch_threads_after_waiting() == []


def _labels(it: DataSetIterator) -> list[np.ndarray]:
    return [np.asarray(b.labels) for b in it]


def _rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32), np.arange(n)


def test_array_iterator_shuffled_epochs_cover_every_row_exactly_once(seed: int) -> None:
    x, y = _rows(103)
    it = ArrayIterator(x, y, batch_size=10, shuffle=True, seed=seed)
    for _ in range(3):
        batches = list(it)
        assert [b.num_examples for b in batches] == [10] * 10 + [3]
        labels = np.concatenate([np.asarray(b.labels) for b in batches])
        np.testing.assert_array_equal(np.sort(labels), np.arange(103))
        for b in batches:
            np.testing.assert_array_equal(b.features[:, 0], b.labels)  # features follow their labels


def test_array_iterator_shuffle_differs_across_epochs_and_repeats_for_seed(seed: int) -> None:
    x, y = _rows(64)
    first = ArrayIterator(x, y, batch_size=16, shuffle=True, seed=seed)
    second = ArrayIterator(x, y, batch_size=16, shuffle=True, seed=seed)
    epochs_a = [np.concatenate(_labels(first)) for _ in range(3)]
    epochs_b = [np.concatenate(_labels(second)) for _ in range(3)]
    for a, b in zip(epochs_a, epochs_b, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(epochs_a[0], epochs_a[1])
    assert not np.array_equal(epochs_a[1], epochs_a[2])
    other_seed = np.concatenate(_labels(ArrayIterator(x, y, batch_size=16, shuffle=True, seed=seed + 1)))
    assert not np.array_equal(epochs_a[0], other_seed)


def test_array_iterator_reset_replays_first_epoch(seed: int) -> None:
    x, y = _rows(30)
    it = ArrayIterator(x, y, batch_size=8, shuffle=True, seed=seed)
    epoch0 = np.concatenate(_labels(it))
    list(it)
    assert it.epoch == 2
    it.reset()
    np.testing.assert_array_equal(np.concatenate(_labels(it)), epoch0)
    it.set_epoch(1)
    assert it.epoch == 1


def test_array_iterator_drop_last_skips_short_batch() -> None:
    x, y = _rows(10)
    it = ArrayIterator(x, y, batch_size=4, shuffle=True, drop_last=True)
    assert [b.num_examples for b in it] == [4, 4]
    assert it.num_examples == 8 and it.num_batches == 2
    assert [b.num_examples for b in ArrayIterator(x, y, batch_size=4)] == [4, 4, 2]


def test_array_iterator_without_shuffle_yields_ordered_views() -> None:
    x, y = _rows(10)
    batches = list(ArrayIterator(x, y, batch_size=5))
    np.testing.assert_array_equal(batches[1].labels, np.arange(5, 10))
    assert np.shares_memory(batches[0].features, x)


def test_array_iterator_without_labels_yields_features_only() -> None:
    batches = list(ArrayIterator(np.zeros((5, 2)), batch_size=2))
    assert [b.labels for b in batches] == [None, None, None]


def test_array_iterator_mismatched_lengths_raises_data_error() -> None:
    with pytest.raises(DataError, match=r"labels has 9 rows but features has 10 rows"):
        ArrayIterator(np.zeros((10, 2)), np.zeros(9))


@pytest.mark.parametrize(("kwargs", "field"), [({"batch_size": 0}, "batch_size"), ({"seed": -1}, "seed")])
def test_array_iterator_invalid_argument_raises_config_error(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        ArrayIterator(np.zeros((4, 1)), np.zeros(4), **kwargs)  # type: ignore[arg-type]


def test_list_iterator_reiterates_same_batches() -> None:
    parts = list(DataSet(np.zeros((5, 2)), np.arange(5)).batches(2))
    it = ListIterator(parts)
    assert (it.batch_size, it.num_examples, len(it)) == (2, 5, 3)
    assert [np.asarray(b.labels).tolist() for b in it] == [[0, 1], [2, 3], [4]]
    assert [np.asarray(b.labels).tolist() for b in it] == [[0, 1], [2, 3], [4]]


def test_list_iterator_empty_or_wrong_items_raise_data_error() -> None:
    with pytest.raises(DataError, match="at least one"):
        ListIterator([])
    with pytest.raises(DataError, match=r"datasets\[1\]"):
        ListIterator([DataSet(np.zeros(2)), np.zeros(2)])  # type: ignore[list-item]


def test_async_iterator_yields_same_batches_as_base(seed: int) -> None:
    x, y = _rows(97)
    base = ArrayIterator(x, y, batch_size=8, shuffle=True, seed=seed)
    reference = ArrayIterator(x, y, batch_size=8, shuffle=True, seed=seed)
    with AsyncIterator(base, queue_size=3) as it:
        assert (it.batch_size, it.num_examples) == (8, 97)
        for _ in range(2):  # two epochs: the base reshuffles underneath
            got, want = _labels(it), _labels(reference)
            assert len(got) == len(want)
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, w)


class _FailingIterator(DataSetIterator):
    """Yields ``good`` batches, then raises ``error``."""

    def __init__(self, good: int, error: BaseException) -> None:
        self.good, self.error = good, error

    @property
    def batch_size(self) -> int:
        return 1

    def __iter__(self) -> Iterator[DataSet]:
        for i in range(self.good):
            yield DataSet(np.array([i]))
        raise self.error


def test_async_iterator_producer_error_reraised_same_type_and_chained() -> None:
    original = DataError("bad record 7")
    received: list[int] = []
    with pytest.raises(DataError, match="bad record 7") as info:
        for batch in AsyncIterator(_FailingIterator(2, original)):
            received.append(int(batch.features[0]))
    assert received == [0, 1]
    assert info.value.__cause__ is original
    assert original.__traceback__ is not None  # where it happened in the producer stays visible


class _OddError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")


def test_async_iterator_uncopyable_producer_error_reraised_as_is() -> None:
    original = _OddError(3, "disk gone")
    with pytest.raises(_OddError, match="code 3") as info:
        list(AsyncIterator(_FailingIterator(0, original)))
    assert info.value is original


def test_async_iterator_early_break_stops_producer_thread() -> None:
    x, y = _rows(10_000)
    it = AsyncIterator(ArrayIterator(x, y, batch_size=1), queue_size=2)
    for i, _ in enumerate(it):
        assert _prefetch_threads(), "the producer should run while batches are consumed"
        if i == 2:
            break
    assert _prefetch_threads_after_waiting() == []


def test_async_iterator_close_stops_thread_of_held_generator() -> None:
    x, y = _rows(1000)
    it = AsyncIterator(ArrayIterator(x, y, batch_size=1), queue_size=1)
    gen = iter(it)
    next(gen)
    assert len(_prefetch_threads()) == 1
    it.close()
    assert _prefetch_threads_after_waiting() == []
    assert list(gen) == []  # the closed epoch simply ends
    assert len(list(it)) == 1000  # and the iterator stays usable


def test_async_iterator_context_exit_stops_thread() -> None:
    x, y = _rows(500)
    with AsyncIterator(ArrayIterator(x, y, batch_size=1)) as it:
        gen = iter(it)
        next(gen)
    assert _prefetch_threads_after_waiting() == []
    del gen


def test_async_iterator_nested_early_break_stops_both_threads() -> None:
    x, y = _rows(1000)
    outer = AsyncIterator(AsyncIterator(ArrayIterator(x, y, batch_size=1)))
    for i, _ in enumerate(outer):
        if i == 5:
            break
    assert _prefetch_threads_after_waiting() == []


def test_async_iterator_unstarted_iterator_starts_no_thread() -> None:
    it = AsyncIterator(ArrayIterator(np.zeros((4, 1)), batch_size=2))
    iter(it)
    assert _prefetch_threads() == []


def test_async_iterator_zero_queue_size_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="queue_size"):
        AsyncIterator(ListIterator([DataSet(np.zeros(1))]), queue_size=0)
