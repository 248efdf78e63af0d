"""Minibatch iterators: the `DataSetIterator` contract, in-memory arrays, pre-made batches, async prefetch.

An iterator here is re-iterable: every ``for batch in it`` is one epoch, so training loops can run
many epochs over the same object (DL4J's ``DataSetIterator`` with ``reset()`` built in).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import queue
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType

import numpy as np

from deepspark.errors import ConfigError, DataError

from .dataset import DataSet

__all__ = ["ArrayIterator", "AsyncIterator", "DataSetIterator", "ListIterator"]

PREFETCH_THREAD_PREFIX = "deepspark-prefetch"
"""Name prefix of `AsyncIterator`'s producer threads (so they can be found in ``threading.enumerate()``)."""


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"expected a positive int, got {value!r}", name)
    return int(value)


class DataSetIterator(ABC):
    """A re-iterable source of `DataSet` minibatches: each ``iter()`` call is one epoch.

    Subclasses implement `__iter__` and `batch_size`; `num_examples` is ``None`` when the size of an
    epoch is unknown (a stream). `reset` returns the iterator to its initial state, so the next
    epoch repeats the first one (same shuffle order) -- useful to replay an evaluation exactly.

    Example:
        >>> it = ArrayIterator(np.zeros((10, 2)), np.zeros(10), batch_size=4)
        >>> for epoch in range(2):
        ...     sizes = [b.num_examples for b in it]
        >>> sizes
        [4, 4, 2]
    """

    @abstractmethod
    def __iter__(self) -> Iterator[DataSet]:
        """Start one epoch and yield its minibatches."""

    @property
    @abstractmethod
    def batch_size(self) -> int:
        """The number of examples in a full minibatch."""

    @property
    def num_examples(self) -> int | None:
        """The number of examples in one epoch, or ``None`` when unknown."""
        return None

    def reset(self) -> None:  # noqa: B027 - deliberately a no-op default, not abstract
        """Return to the initial state (the next epoch is the first epoch again)."""


class ArrayIterator(DataSetIterator):
    """Minibatches over in-memory arrays, reshuffled deterministically every epoch.

    Epoch ``e`` uses the permutation drawn from ``numpy.random.default_rng([seed, e])``: runs with
    the same seed see the same orders, every epoch differs from the last, and seeds ``s`` and
    ``s + 1`` do not share orders shifted by one epoch. Batches are fancy-indexed slices of one
    permutation array (no per-row Python); without shuffling they are zero-copy views.

    Args:
        features: Array with examples on axis 0.
        labels: Array with one entry per example, or ``None`` (unsupervised / prediction).
        batch_size: Examples per minibatch.
        shuffle: Reshuffle every epoch.
        seed: Non-negative int seeding the per-epoch permutations.
        drop_last: Skip the final smaller batch (keeps batch statistics and shapes uniform).
        features_mask: Optional per-example mask (sequences), sliced like ``features``.
        labels_mask: Optional per-example label mask, sliced like ``labels``.

    Example:
        >>> it = ArrayIterator(np.arange(6).reshape(6, 1), np.arange(6), batch_size=4, shuffle=True, seed=7)
        >>> sorted(np.concatenate([b.labels for b in it]).tolist())
        [0, 1, 2, 3, 4, 5]
    """

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray | None = None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        *,
        features_mask: np.ndarray | None = None,
        labels_mask: np.ndarray | None = None,
    ) -> None:
        self._data = DataSet(
            np.asarray(features),
            None if labels is None else np.asarray(labels),
            None if features_mask is None else np.asarray(features_mask),
            None if labels_mask is None else np.asarray(labels_mask),
        )
        self._batch_size = _positive_int(batch_size, "batch_size")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"expected a non-negative int, got {seed!r}", "seed")
        self._seed = int(seed)
        self._shuffle = bool(shuffle)
        self._drop_last = bool(drop_last)
        self._epoch = 0

    @classmethod
    def from_dataset(
        cls, data: DataSet, batch_size: int = 32, shuffle: bool = False, seed: int = 0, drop_last: bool = False
    ) -> ArrayIterator:
        """An iterator over the examples of ``data`` (masks included)."""
        return cls(
            data.features,
            data.labels,
            batch_size,
            shuffle,
            seed,
            drop_last,
            features_mask=data.features_mask,
            labels_mask=data.labels_mask,
        )

    @property
    def batch_size(self) -> int:
        """The number of examples in a full minibatch."""
        return self._batch_size

    @property
    def num_examples(self) -> int:
        """Examples per epoch (rows dropped by ``drop_last`` excluded)."""
        n = self._data.num_examples
        return n - n % self._batch_size if self._drop_last else n

    @property
    def num_batches(self) -> int:
        """Minibatches per epoch."""
        return -(-self.num_examples // self._batch_size)

    @property
    def epoch(self) -> int:
        """The index of the next epoch to start (0 before the first)."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next epoch use the order of epoch ``epoch`` (to resume a run exactly)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ConfigError(f"expected a non-negative int, got {epoch!r}", "epoch")
        self._epoch = int(epoch)

    def reset(self) -> None:
        """Go back to epoch 0, so the next epoch repeats the first shuffle order."""
        self._epoch = 0

    def __iter__(self) -> Iterator[DataSet]:
        # The epoch number is claimed here, not when the generator first runs, so the order is
        # fixed by the call order even if batches are consumed on another thread.
        epoch = self._epoch
        self._epoch += 1
        return self._epoch_batches(epoch)

    def _epoch_batches(self, epoch: int) -> Iterator[DataSet]:
        n = self._data.num_examples
        stop = self.num_examples
        if not self._shuffle:
            yield from self._data.batches(self._batch_size, drop_last=self._drop_last)
            return
        order = np.random.default_rng([self._seed, epoch]).permutation(n)
        for start in range(0, stop, self._batch_size):
            yield self._data.take(order[start : start + self._batch_size])

    def __repr__(self) -> str:
        return (
            f"ArrayIterator(num_examples={self._data.num_examples}, batch_size={self._batch_size}, "
            f"shuffle={self._shuffle}, seed={self._seed}, drop_last={self._drop_last})"
        )


class ListIterator(DataSetIterator):
    """Iterates over pre-made `DataSet` minibatches, in the given order, every epoch.

    ``batch_size`` is the size of the largest batch; batches may differ in size (e.g. a short last one).

    Example:
        >>> batches = list(DataSet(np.zeros((5, 2))).batches(2))
        >>> [b.num_examples for b in ListIterator(batches)]
        [2, 2, 1]
    """

    def __init__(self, datasets: Sequence[DataSet]) -> None:
        items = list(datasets)
        if not items:
            raise DataError("ListIterator: expected at least one DataSet, got an empty sequence")
        for i, item in enumerate(items):
            if not isinstance(item, DataSet):
                raise DataError(
                    f"ListIterator: datasets[{i}] is a {type(item).__name__}, expected a DataSet; "
                    "wrap arrays with DataSet(features, labels)"
                )
        self._items = items

    @property
    def batch_size(self) -> int:
        """The size of the largest batch."""
        return max(d.num_examples for d in self._items)

    @property
    def num_examples(self) -> int:
        """The total number of examples over all batches."""
        return sum(d.num_examples for d in self._items)

    def __iter__(self) -> Iterator[DataSet]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)


class _End:
    """Marks the end of an epoch in a prefetch queue."""


class _Failure:
    """Carries an exception raised by the producer across the queue."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = _End()
_thread_ids = itertools.count()


class _PrefetchPass:
    """One epoch of prefetching: a producer thread filling a bounded queue from a source iterator."""

    def __init__(self, source: Iterator[DataSet], queue_size: int) -> None:
        self._source = source
        self._queue: queue.Queue[DataSet | _End | _Failure] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, name=f"{PREFETCH_THREAD_PREFIX}-{next(_thread_ids)}", daemon=True
        )
        self._started = False

    def _produce(self) -> None:
        try:
            for item in self._source:
                if self._stop.is_set():
                    return
                self._queue.put(item)
                if self._stop.is_set():
                    return
            self._queue.put(_END)
        except BaseException as e:  # forwarded to the consumer, which re-raises it
            if not self._stop.is_set():
                self._queue.put(_Failure(e))
        finally:
            close = getattr(self._source, "close", None)
            if callable(close):
                close()  # stops a nested generator (e.g. another AsyncIterator) promptly

    def __iter__(self) -> Iterator[DataSet]:
        if self._stop.is_set():
            return  # closed before the first batch was asked for
        if not self._started:
            self._started = True
            self._thread.start()
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                self._thread.join()
                return
            if isinstance(item, _Failure):
                self._thread.join()
                clone = _same_type_copy(item.error)
                if clone is item.error:
                    raise clone
                raise clone from item.error
            yield item

    def _drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()

    def close(self) -> None:
        """Stop the producer and wait for it; a pending ``next()`` on the source is allowed to finish."""
        self._stop.set()
        if not self._started:
            return
        while self._thread.is_alive():
            self._drain()  # frees the slot the producer may be blocked on; it then sees the stop flag
            self._thread.join(timeout=0.05)
        # Leftover batches are dropped; an end marker wakes a consumer blocked in get() on another thread.
        self._drain()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_END)


def _same_type_copy(error: BaseException) -> BaseException:
    """A fresh exception of the producer's type for the consumer; the original itself when it cannot be copied."""
    try:
        clone = copy.copy(error)
    except Exception:
        return error
    return clone if type(clone) is type(error) else error


class AsyncIterator(DataSetIterator):
    """Prefetches minibatches of another iterator on a background thread into a bounded queue.

    While the training step runs, the next ``queue_size`` batches are being produced (read,
    decoded, normalized), so data loading overlaps compute as DL4J's ``AsyncDataSetIterator``
    does. Memory stays bounded by the queue. An exception in the producer is re-raised in the
    consuming loop with the same type, chained to the original (whose traceback shows where it
    happened). The producer thread stops when an epoch ends, when the loop breaks early, on
    `close`, and when leaving a ``with`` block; it is a daemon thread, so it never blocks exit.

    Args:
        base: The iterator to prefetch from; each epoch here starts one epoch of ``base``.
        queue_size: How many batches may wait in the queue.

    Example:
        >>> base = ArrayIterator(np.zeros((100, 3)), np.zeros(100), batch_size=10)
        >>> with AsyncIterator(base, queue_size=2) as it:
        ...     sum(b.num_examples for b in it)
        100
    """

    def __init__(self, base: Iterable[DataSet], queue_size: int = 2) -> None:
        self._base = base
        self._queue_size = _positive_int(queue_size, "queue_size")
        # Weak: a pass whose generator was dropped before it started is simply forgotten.
        self._passes: weakref.WeakSet[_PrefetchPass] = weakref.WeakSet()
        self._lock = threading.Lock()

    @property
    def batch_size(self) -> int:
        """The base iterator's batch size."""
        size = getattr(self._base, "batch_size", None)
        if not isinstance(size, int):
            raise DataError(f"AsyncIterator: the base iterator {type(self._base).__name__} has no batch_size")
        return size

    @property
    def num_examples(self) -> int | None:
        """The base iterator's examples per epoch, or ``None`` when unknown."""
        n = getattr(self._base, "num_examples", None)
        return n if isinstance(n, int) else None

    def __iter__(self) -> Iterator[DataSet]:
        # iter(base) runs here, on the caller's thread, so epoch numbering stays deterministic.
        prefetch = _PrefetchPass(iter(self._base), self._queue_size)
        with self._lock:
            self._passes.add(prefetch)
        return self._consume(prefetch)

    def _consume(self, prefetch: _PrefetchPass) -> Iterator[DataSet]:
        try:
            yield from prefetch
        finally:
            # Runs on exhaustion, on error, and on early exit (generator close when the loop breaks).
            prefetch.close()
            with self._lock:
                self._passes.discard(prefetch)

    def close(self) -> None:
        """Stop every running producer thread and wait for it to exit. The iterator stays usable."""
        with self._lock:
            passes = list(self._passes)
            self._passes.clear()
        for prefetch in passes:
            prefetch.close()

    def reset(self) -> None:
        """Stop prefetching and reset the base iterator (when it has ``reset``)."""
        self.close()
        reset = getattr(self._base, "reset", None)
        if callable(reset):
            reset()

    def __enter__(self) -> AsyncIterator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
