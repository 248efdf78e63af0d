"""Threshold encoding of one flat update buffer (Strom 2015): residual bookkeeping and two wire formats.

A message is one int32 tensor: a 4-word header ``[format, count, tau bits, proposed tau bits]`` followed by
either the sparse payload (one signed int32 per sent element: ``+(i + 1)`` for ``+tau``, ``-(i + 1)`` for
``-tau``) or the bitmap payload (2 bits per element, 16 elements per word: ``01`` = ``+tau``, ``10`` =
``-tau``). The bitmap is fixed at n / 16 words, so the encoder switches to it as soon as the sparse payload
would be longer. All work is vectorized torch on buffers allocated once: nothing parameter-sized is
allocated per step.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from deepspark.spark.thresholds import ResidualClipping, TargetSparsity, ThresholdAlgorithm

HEADER = 4
SPARSE = 0
BITMAP = 1
PER_WORD = 16  # 2-bit codes per int32 word
MIN_TAU = 1e-12  # a zero tau would "send" every zero element


def float_bits(value: float) -> int:
    """The float32 bit pattern of ``value`` as a signed int32 (how tau travels in the header)."""
    return int(np.array([value], dtype=np.float32).view(np.int32)[0])


def bits_float(bits: int) -> float:
    """Inverse of ``float_bits``."""
    return float(np.array([bits], dtype=np.int32).view(np.float32)[0])


class ThresholdCodec:
    """Encoder and decoder for one worker: owns the residual, the send buffer and the decode scratch.

    Example:
        >>> codec = ThresholdCodec(4)
        >>> length = codec.encode(torch.tensor([0.3, -0.05, 0.0, -0.2]), tau=0.1)
        >>> out = torch.zeros(4)
        >>> codec.decode_into(codec.message[:length], out)
        (2, 0.10000000149011612)
        >>> out
        tensor([ 0.1000,  0.0000,  0.0000, -0.1000])
    """

    def __init__(self, n: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        self.n = n
        self.dtype = dtype
        self.device = torch.device(device)
        self.words = math.ceil(n / PER_WORD)
        self.capacity = HEADER + self.words  # a sparse message is never longer than the bitmap
        self.residual = torch.zeros(n, dtype=dtype, device=device)
        self.message = torch.zeros(self.capacity, dtype=torch.int32, device=device)
        self._neg = torch.empty(n, dtype=torch.bool, device=device)
        self._sent = torch.empty(n, dtype=torch.bool, device=device)
        self._ids = torch.arange(1, n + 1, dtype=torch.int32, device=device)  # i + 1: the sparse format's id
        self._abs = torch.empty(n, dtype=dtype, device=device)
        self._codes = torch.zeros(self.words * PER_WORD, dtype=torch.int32, device=device)  # tail past n stays 0
        self._shifts = torch.arange(0, 2 * PER_WORD, 2, dtype=torch.int32, device=device)
        self._table = torch.tensor([0.0, 1.0, -1.0, 0.0], dtype=dtype, device=device)
        self._values = torch.empty(self.words * PER_WORD, dtype=dtype, device=device)

    def add(self, update: Tensor) -> None:
        """Accumulate an update into the residual (``encode`` does it too; this is for the first-tau probe)."""
        self.residual.add_(update)

    def kth_magnitude(self, fraction: float) -> float:
        """The residual magnitude that about ``fraction`` of the elements reach (``TargetSparsity``)."""
        k = min(self.n, max(1, round(fraction * self.n)))
        torch.abs(self.residual, out=self._abs)
        value = float(torch.kthvalue(self._abs, self.n - k + 1).values)
        return max(value, MIN_TAU)

    def encode(self, update: Tensor | None, tau: float, proposal: float | None = None) -> int:
        """Add ``update`` (None: nothing new) to the residual, move every ``|r| >= tau`` into ``self.message``
        as ``±tau``, and return the message length in words. ``proposal`` is written into the header."""
        r = self.residual
        if update is not None:
            r.add_(update)
        tau = max(float(np.float32(tau)), MIN_TAU)  # the value the receivers will read back
        torch.abs(r, out=self._abs)
        torch.ge(self._abs, tau, out=self._sent)
        count = int(torch.count_nonzero(self._sent))
        header = self.message[:HEADER]
        if count * PER_WORD <= self.n:  # sparse: only the sent elements are touched past this point
            ids = torch.masked_select(self._ids, self._sent)
            where = (ids - 1).to(torch.int64)
            negative = r[where] < 0
            step = torch.where(negative, -tau, tau).to(self.dtype)
            r.index_add_(0, where, step, alpha=-1)  # what was sent leaves the residual; the rest waits
            self.message[HEADER : HEADER + count].copy_(torch.where(negative, -ids, ids))
            fmt, length = SPARSE, HEADER + count
        else:
            codes = self._codes[: self.n]
            torch.lt(r, 0, out=self._neg)
            codes.copy_(self._neg)
            codes.add_(1)
            codes.mul_(self._sent)  # 1 = +tau, 2 = -tau, 0 = kept
            torch.index_select(self._table, 0, self._codes, out=self._values)
            r.sub_(self._values[: self.n], alpha=tau)
            grid = self._codes.view(self.words, PER_WORD)
            packed = torch.sum(torch.bitwise_left_shift(grid, self._shifts), dim=1, dtype=torch.int64)
            self.message[HEADER : HEADER + self.words].copy_(packed)  # wraps into int32: the bit pattern
            fmt, length = BITMAP, HEADER + self.words
        header.copy_(
            torch.tensor(
                [fmt, count, float_bits(tau), float_bits(tau if proposal is None else proposal)], dtype=torch.int32
            )
        )
        return length

    def set_proposal(self, proposal: float) -> None:
        """Rewrite the proposed next tau in the header of the message just encoded."""
        self.message[3] = float_bits(proposal)

    def decode_into(self, message: Tensor, out: Tensor) -> tuple[int, float]:
        """Add the message's ``±tau`` values into ``out``; return (elements sent, tau)."""
        fmt, count, tau_bits, _ = (int(v) for v in message[:HEADER].tolist())
        tau = bits_float(tau_bits)
        if count == 0:
            return 0, tau
        if fmt == SPARSE:
            signed = message[HEADER : HEADER + count].to(torch.int64)
            out.index_add_(0, signed.abs() - 1, torch.sign(signed).to(out.dtype), alpha=tau)
        elif fmt == BITMAP:
            words = message[HEADER : HEADER + self.words]
            grid = self._codes.view(self.words, PER_WORD)
            torch.bitwise_right_shift(words.view(-1, 1), self._shifts, out=grid)
            grid.bitwise_and_(3)
            torch.index_select(self._table, 0, self._codes, out=self._values)
            self._codes.zero_()  # encode relies on the tail past n being 0
            out.add_(self._values[: self.n], alpha=tau)
        else:
            raise ValueError(f"unknown message format {fmt}")
        return count, tau

    @staticmethod
    def header(message: Tensor) -> tuple[int, int, float, float]:
        """(format, count, tau, proposed tau) of a message."""
        fmt, count, tau_bits, prop_bits = (int(v) for v in message[:HEADER].tolist())
        return fmt, count, bits_float(tau_bits), bits_float(prop_bits)

    def clip_residual(self, limit: float) -> None:
        """Clamp the residual to ``±limit`` (``ResidualClipping``)."""
        self.residual.clamp_(-limit, limit)


class ThresholdRank:
    """One rank's side of threshold encoding, whatever carries the messages: encode this rank's update into
    ``codec.message``, then turn every rank's message (in rank order) into the one update all replicas apply.

    The Spark trainer moves the messages with ``all_gather``; a test or a simulation may hand them over in
    memory. Both run this same code, so both see the same tau, sparsity and residual.
    """

    def __init__(
        self,
        codec: ThresholdCodec,
        algorithm: ThresholdAlgorithm,
        clipping: ResidualClipping | None,
        world: int,
        tau: float | None = None,
    ) -> None:
        self.codec, self.algorithm, self.clipping, self.world = codec, algorithm, clipping, world
        first = algorithm.first_tau()
        self.tau: float = tau if tau is not None else (first if first is not None else 0.0)
        self.steps = 0

    def _target(self) -> float:
        return self.algorithm.target if isinstance(self.algorithm, TargetSparsity) else 1e-3

    def encode(self, update: Tensor) -> tuple[int, int, float]:
        """Encode ``update`` (plus the residual) into ``codec.message``; return (length in words, elements
        sent, tau used)."""
        codec = self.codec
        if self.tau <= 0.0:  # TargetSparsity's first step: tau from this update's own magnitudes
            codec.add(update)
            self.tau = codec.kth_magnitude(self._target())
            length = codec.encode(None, self.tau)
        else:
            length = codec.encode(update, self.tau)
        _, count, tau_used, _ = codec.header(codec.message)
        proposal = self.algorithm.propose(tau_used, count / codec.n)
        codec.set_proposal(proposal if proposal is not None else codec.kth_magnitude(self._target()))
        return length, count, tau_used

    def combine(self, messages: list[Tensor], out: Tensor) -> None:
        """Decode every rank's message (rank order: the same sum on every rank) into ``out`` (zeroed first),
        take the mean proposal as the next tau, and post-process the residual."""
        out.zero_()
        proposals = []
        for message in messages:
            self.codec.decode_into(message, out)
            proposals.append(ThresholdCodec.header(message)[3])
        self.tau = float(np.mean(np.asarray(proposals, dtype=np.float64)))
        self.steps += 1
        clipping = self.clipping
        if clipping is not None and self.steps % clipping.every == 0:
            self.codec.clip_residual(clipping.clip * self.tau)
