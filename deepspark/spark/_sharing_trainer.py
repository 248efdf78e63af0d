"""One rank's per-step exchange in gradient sharing: dense all-reduce (bucketed during backward, as DDP) or
threshold-encoded updates, and the bookkeeping at the end of a stage. Runs inside a barrier task."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from deepspark.errors import DataError, DistributedTrainingError
from deepspark.spark._encoding import ThresholdCodec, ThresholdRank
from deepspark.spark.events import PhaseTimer
from deepspark.spark.masters import GradientSharing

_CODECS: dict[int, ThresholdCodec] = {}  # parameter count -> codec, reused while the Python worker lives


class Trainer:
    """The per-step exchange of one rank; all buffers are allocated once per stage.

    Call ``step`` once per minibatch on every rank (same count everywhere), then ``finish`` once.
    """

    def __init__(
        self, net: Any, master: GradientSharing, world: int, state: Mapping[str, float], record: PhaseTimer
    ) -> None:
        import torch

        self.net, self.master, self.world, self.record = net, master, world, record
        self.n = net.flat.n_trainable
        self.dense = master.encoding == "dense"
        self.score_sum, self.steps, self.examples, self.seconds = 0.0, 0, 0, 0.0
        self.bytes_sent = self.bytes_received = self.elements_sent = 0
        self.algorithm = master.threshold_algorithm
        first = self.algorithm.first_tau()
        tau = state.get("tau")
        self._tau: float = tau if tau is not None else (first if first is not None else 0.0)
        self._pending: Any = None
        if self.dense:
            self._comm = [torch.empty(self.n, dtype=net.dtype, device=net.device) for _ in range(master.staleness * 2)]
            self._buckets = GradientBuckets(net) if master.staleness == 0 else None
            return
        codec = _CODECS.get(self.n)
        if codec is None or codec.dtype != net.dtype or codec.device != net.device:
            _CODECS.clear()
            codec = ThresholdCodec(self.n, net.dtype, net.device)
            _CODECS[self.n] = codec
        codec.residual.zero_()
        self.codec = codec
        self.rank = ThresholdRank(codec, self.algorithm, master.residual_post_processor, world, self._tau)
        self.rank.steps = int(state.get("threshold_steps", 0))  # residual clipping runs every k steps of the fit
        slots = 1 + master.staleness  # staleness 1: one exchange in flight while the next step computes
        on = net.device  # NCCL moves device tensors only; gloo takes them too
        self._send = [torch.zeros(codec.capacity, dtype=torch.int32, device=on) for _ in range(slots)]
        self._recv = [
            [torch.zeros(codec.capacity, dtype=torch.int32, device=on) for _ in range(world)] for _ in range(slots)
        ]
        self._lengths = [torch.zeros(1, dtype=torch.int64, device=on) for _ in range(world)]
        self._applied = torch.zeros(self.n, dtype=net.dtype, device=on)

    def agree_max(self, value: int) -> int:
        """The largest ``value`` over the ranks (how many examples the longest partition holds)."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.int64, device=self.net.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t[0])

    def train_epoch(self, feeder: Any, longest: int) -> None:
        """One epoch: every rank runs ``ceil(longest / batch)`` steps, a shorter block wrapping around."""
        for batch, size in feeder.batches(0, feeder.batches_in(longest), longest=longest):
            self.step(batch, size)

    @property
    def tau(self) -> float:
        """The threshold now (dense: the one this stage was handed, passed on unchanged)."""
        return self._tau if self.dense else self.rank.tau

    def state(self) -> dict[str, float]:
        """What every rank of a relaunched stage needs besides the parameters: the threshold and the step count
        residual clipping runs on (the residuals are each rank's own: ``rank_state``)."""
        if self.dense:
            return {"tau": self.tau}
        return {"tau": self.tau, "threshold_steps": float(self.rank.steps)}

    def rank_state(self) -> Any:
        """This rank's residual (threshold encoding; dense keeps nothing of its own)."""
        return None if self.dense else self.codec.residual

    def restore_rank_state(self, data: bytes) -> None:
        """Continue from a residual ``rank_state`` gave at the end of an earlier epoch (a resumed fit)."""
        import torch

        if self.dense or not data:
            return
        residual = self.codec.residual
        if len(data) != residual.numel() * residual.element_size():
            raise DataError(
                f"a resumed residual holds {len(data)} bytes, expected {residual.numel() * residual.element_size()} "
                f"({residual.numel()} values of {residual.dtype}); the checkpoint's trainer state is not this network's"
            )
        residual.copy_(torch.frombuffer(bytearray(data), dtype=residual.dtype))

    def close(self) -> None:
        """Remove the backward hooks (the network stays cached in the Python worker for the next stage)."""
        if self.dense and self._buckets is not None:
            self._buckets.remove()

    def step(self, batch: Any, size: int) -> None:
        t0 = time.time()
        try:
            self._step(batch, size, t0)
        finally:
            self.seconds += time.time() - t0

    def _step(self, batch: Any, size: int, t0: float) -> None:
        step = self.net.iteration
        buckets = self._buckets if self.dense else None
        if buckets is not None:  # dense, synchronous: all-reduce slices during backward, as DDP does
            buckets.start()
            score = self.net.compute_gradient(batch, postprocess=False)
        else:
            score = self.net.compute_gradient(batch)
        self.score_sum += float(score)
        self.steps += 1
        self.examples += size
        if self.dense:
            self._dense_step(score, size, step, t0)
        else:
            self._threshold_step(score, size, step, t0)

    # dense: all-reduce of the gradients, then every rank runs the same updater step on the mean

    def _dense_step(self, score: Any, size: int, step: int, t0: float) -> None:
        import torch.distributed as dist

        grads = self.net.flat.grads
        self.record("compute", t0, step, examples=size)
        wire = 2 * (self.world - 1) * self.n * grads.element_size() // self.world  # ring all-reduce, per rank
        t1 = time.time()
        if self._buckets is not None:
            self._buckets.wait()
            grads.div_(self.world)
            self.net.postprocess_gradient()
            self.net.gradient_to_update()
            self.net.apply_update(grads, score, size)
        else:
            slot = self._comm[self.steps % 2]
            slot.copy_(grads)
            work = dist.all_reduce(slot, async_op=True)
            self._drain_dense()
            self._pending = (work, slot, score, size)
        self.bytes_sent += wire
        self.bytes_received += wire
        self.record("exchange", t1, step, bytes_sent=wire, bytes_received=wire)

    def _dense_apply(self, reduced: Any, score: Any, size: int) -> None:  # staleness 1
        grads = self.net.flat.grads
        if reduced is not grads:
            grads.copy_(reduced)
        grads.div_(self.world)
        self.net.gradient_to_update()
        self.net.apply_update(grads, score, size)

    def _drain_dense(self) -> None:
        if self._pending is not None:
            work, slot, score, size = self._pending
            self._pending = None
            work.wait()
            self._dense_apply(slot, score, size)

    # threshold: each rank encodes its own update; every rank applies the sum of all ranks' messages

    def _threshold_step(self, score: Any, size: int, step: int, t0: float) -> None:
        import torch.distributed as dist

        net, codec = self.net, self.codec
        net.gradient_to_update()
        self.record("compute", t0, step, examples=size)
        t1 = time.time()
        length, count, tau_used = self.rank.encode(net.flat.grads)
        slot = self.steps % len(self._send)
        send = self._send[slot]
        send[:length].copy_(codec.message[:length])
        self.elements_sent += count
        self.record("encode", t1, step, sparsity=count / self.n, tau=tau_used, words=length)

        t2 = time.time()
        mine = self._lengths_tensor(length)
        dist.all_gather(self._lengths, mine)
        longest = max(int(t[0]) for t in self._lengths)
        lengths = [int(t[0]) for t in self._lengths]
        recv = [buf[:longest] for buf in self._recv[slot]]
        work = dist.all_gather(recv, send[:longest], async_op=self.master.staleness > 0)
        wire = (self.world - 1) * (longest * 4 + 8)
        self.bytes_sent += wire
        self.bytes_received += wire
        if self.master.staleness == 0:
            self.record("exchange", t2, step, bytes_sent=wire, bytes_received=wire, message_bytes=length * 4)
            self._decode_apply(self._recv[slot], lengths, score, size, step)
        else:
            previous = self._pending
            self._pending = (work, self._recv[slot], lengths, score, size, step)
            self.record("exchange", t2, step, bytes_sent=wire, bytes_received=wire, message_bytes=length * 4)
            if previous is not None:
                self._finish_threshold(previous)

    def _finish_threshold(self, pending: Any) -> None:
        work, buffers, lengths, score, size, step = pending
        work.wait()
        self._decode_apply(buffers, lengths, score, size, step)

    def _decode_apply(self, buffers: list[Any], lengths: list[int], score: Any, size: int, step: int) -> None:
        t3 = time.time()
        self.rank.combine([buf[:length] for buf, length in zip(buffers, lengths, strict=True)], self._applied)
        self.net.apply_update(self._applied, score, size)
        self.record("decode", t3, step)

    def _lengths_tensor(self, length: int) -> Any:
        import torch

        return torch.tensor([length], dtype=torch.int64, device=self.net.device)

    def finish(self) -> None:
        """End of the epoch: apply what is in flight, average the per-rank state; the residuals carry on into
        the next epoch (or are flushed, with ``flush_residual``)."""
        import torch
        import torch.distributed as dist

        net = self.net
        if self.dense:
            self._drain_dense()
        else:
            if self._pending is not None:
                pending, self._pending = self._pending, None
                self._finish_threshold(pending)
            if self.master.flush_residual:  # every rank's unsent remainder at once (see GradientSharing)
                residual = self.codec.residual
                dist.all_reduce(residual)
                with torch.no_grad():
                    net.flat.trainable.sub_(residual)
                residual.zero_()
            if net.updater.state.numel():  # each rank's updater saw only its own gradients
                dist.all_reduce(net.updater.state)
                net.updater.state.div_(self.world)
        tail = net.flat.params[self.n :]
        if tail.numel():  # batch-norm running statistics were computed on each rank's own data
            dist.all_reduce(tail)
            tail.div_(self.world)
        check = torch.tensor(
            [float(net.flat.params.double().sum()), float(net.flat.params.double().abs().sum())],
            dtype=torch.float64,
            device=net.device,
        )
        low, high = check.clone(), check.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if not torch.equal(low, high):
            raise DistributedTrainingError(
                f"the replicas diverged during epoch {net.epoch} (parameter checksums {low.tolist()} vs "
                f"{high.tolist()}); this is a bug in deepspark, please report it"
            )


class GradientBuckets:
    """DDP's overlap for the flat gradient: contiguous slices of ``flat.grads`` are all-reduced asynchronously
    as soon as backward has produced every gradient in them (backward runs from the last layer to the first,
    so the slices are cut from the end of the buffer). ``wait`` completes them all.
    """

    BUCKET_BYTES = 1 << 20

    def __init__(self, net: Any) -> None:
        grads = net.flat.grads
        params = [p for _, p in net.model.named_parameters() if p.requires_grad]
        segments = [s for s in net.flat.segments if s.trainable]
        limit = max(1, self.BUCKET_BYTES // grads.element_size())
        self.slices: list[tuple[int, int]] = []
        owner: list[int] = [0] * len(params)
        end, start = segments[-1].offset + segments[-1].numel if segments else 0, None
        for i in range(len(segments) - 1, -1, -1):
            seg = segments[i]
            start = seg.offset
            owner[i] = len(self.slices)
            if end - start >= limit or i == 0:
                self.slices.append((start, end))
                end = start
        self.sizes = [0] * len(self.slices)
        for b in owner:
            self.sizes[b] += 1
        self.grads = grads
        self.remaining: list[int] = []
        self.works: list[Any] = [None] * len(self.slices)
        self.handles = [
            p.register_post_accumulate_grad_hook(self._ready(b)) for p, b in zip(params, owner, strict=True)
        ]

    def _ready(self, bucket: int) -> Any:
        def hook(_: Any) -> None:
            self.remaining[bucket] -= 1
            if self.remaining[bucket] == 0:
                self._launch(bucket)

        return hook

    def _launch(self, bucket: int) -> None:
        import torch.distributed as dist

        start, end = self.slices[bucket]
        self.works[bucket] = dist.all_reduce(self.grads[start:end], async_op=True)

    def start(self) -> None:
        """Arm every bucket for the next backward."""
        self.remaining = list(self.sizes)
        self.works = [None] * len(self.slices)

    def wait(self) -> None:
        """Launch what backward did not reach (unused parameters), in bucket order, and wait for all."""
        for bucket, work in enumerate(self.works):
            if work is None:
                self._launch(bucket)
        for work in self.works:
            work.wait()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
