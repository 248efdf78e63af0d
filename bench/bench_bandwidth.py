"""Gradient sharing over a bandwidth-limited link: why threshold encoding exists.

On loopback bytes cost nothing, so dense and threshold encoding look alike. This bench puts the traffic of two
ranks through a real link: it creates two Linux network namespaces joined by a veth pair (10.77.0.1/24 and
10.77.0.2/24, only inside the namespaces), limits both ends with traffic control (``tc ... tbf``) and runs one
torch.distributed (gloo) rank per namespace, ``GLOO_SOCKET_IFNAME`` set to its veth. Each rank drives the
library's own per-step exchange, ``deepspark.spark._sharing_trainer.Trainer`` (the code a Spark barrier task
runs: bucketed all-reduce for ``dense``, ``ThresholdRank`` encode + all_gather + decode for ``threshold``), on
its half of MNIST 8k with the LeNet of ``bench/common.py``, Adam 1e-3, batch 32 per rank. Before the two
exchanges each rank times the same steps with no exchange at all (``Network.fit_batch``): the compute time.

It reports, per bandwidth: per-step time, per-step exchange time (step time minus the ``compute`` phase the
trainer records), steady samples/s (both ranks, after ``--warmup`` steps) and bytes per step per rank. Then a
scaling model (measured compute and codec time + the measured message sizes) predicts 8, 32 and 128 workers
on a 10 Gbit/s link (ring all-reduce: 2(N-1)/N x dense bytes; threshold: every worker's message all-gathered,
(N-1) x message bytes, plus decoding N messages).

Needs root (``ip netns``, ``tc``); otherwise it prints ``skipped: <reason>`` and exits 0. The namespaces it
creates are removed on exit, also on failure or Ctrl-C.

    nice -n 19 .venv/bin/python bench/bench_bandwidth.py                      # unlimited, 1gbit, 100mbit
    nice -n 19 .venv/bin/python bench/bench_bandwidth.py --rates 100mbit --steps 10 --json out.json
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deepspark.spark.thresholds import AdaptiveThreshold

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

ADDRESSES = ("10.77.0.1", "10.77.0.2")
BATCH = 32
WORLD = 2
DEFAULT_RATES = ("unlimited", "1gbit", "100mbit")
RATE_BITS = {"unlimited": None, "10gbit": 10e9, "1gbit": 1e9, "100mbit": 100e6, "10mbit": 10e6}


# ----------------------------------------------------------------------------------------------- namespaces


class Link:
    """Two network namespaces joined by a veth pair; ``close`` removes everything that was created."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.ns = (f"dsbw{tag}a", f"dsbw{tag}b")
        self.dev = (f"dsbw{tag}x", f"dsbw{tag}y")  # interface names: at most 15 characters
        self.created: list[str] = []
        self.closed = False

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)

    def open(self) -> None:
        for ns in self.ns:
            self._ip("netns", "add", ns)
            self.created.append(ns)
        self._ip("link", "add", self.dev[0], "type", "veth", "peer", "name", self.dev[1])
        for ns, dev, addr in zip(self.ns, self.dev, ADDRESSES, strict=True):
            self._ip("link", "set", dev, "netns", ns)
            self._ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            self._ip("-n", ns, "link", "set", dev, "up")
            self._ip("-n", ns, "link", "set", "lo", "up")

    def limit(self, rate: str) -> None:
        """Limit both directions to ``rate`` (a tc rate such as ``1gbit``), or remove the limit (``unlimited``)."""
        for ns, dev in zip(self.ns, self.dev, strict=True):
            base = ["ip", "netns", "exec", ns, "tc", "qdisc"]
            if rate == "unlimited":
                subprocess.run([*base, "del", "dev", dev, "root"], capture_output=True, timeout=30)
            else:
                cmd = [*base, "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "256kb", "latency", "50ms"]
                subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for ns in self.created:  # deleting a namespace deletes the veth end inside it, and so the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.dev[0]], capture_output=True, timeout=30)  # if never moved


def open_link() -> tuple[Link | None, str]:
    """A ready ``Link``, or None and the reason it cannot be made here."""
    if sys.platform != "linux":
        return None, f"network namespaces need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return None, "network namespaces and tc need root (run as root)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return None, f"'{tool}' (iproute2) is not installed"
    link = Link()
    atexit.register(link.close)
    try:
        link.open()
        link.limit("1gbit")  # tc (sch_tbf) must work too
        link.limit("unlimited")
    except subprocess.CalledProcessError as err:
        link.close()
        return None, f"'{' '.join(err.cmd)}' failed: {(err.stderr or '').strip() or err.returncode}"
    except (OSError, subprocess.TimeoutExpired) as err:
        link.close()
        return None, f"could not create the namespaces: {err}"
    return link, ""


# ---------------------------------------------------------------------------------------------------- a rank


def median(values: list[float]) -> float:
    import numpy as np

    return float(np.median(values)) if values else float("nan")


def run_rank(args: argparse.Namespace) -> None:
    """One rank (inside its namespace): compute-only steps, then each encoding's steps through the Trainer."""
    import numpy as np
    import torch
    import torch.distributed as dist
    from common import lenet_config, mnist_split

    from deepspark.nn import Network
    from deepspark.spark import GradientSharing
    from deepspark.spark._encoding import ThresholdCodec
    from deepspark.spark._executor import epoch_order
    from deepspark.spark._sharing_trainer import Trainer
    from deepspark.spark.events import PhaseTimer

    torch.set_num_threads(1)
    rank = args.rank
    x_train, y_train, _, _ = mnist_split(args.mnist)
    x, y = x_train[rank::WORLD], y_train[rank::WORLD]
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{ADDRESSES[0]}:{args.port}",
        rank=rank,
        world_size=WORLD,
        timeout=__import__("datetime").timedelta(seconds=120),
    )

    def batches(net: Network, steps: int) -> list[tuple[Any, int]]:
        out, per_epoch = [], len(x) // BATCH
        for s in range(steps):
            order = epoch_order(args.seed, s // per_epoch, rank, len(x))
            idx = order[(s % per_epoch) * BATCH : (s % per_epoch + 1) * BATCH]
            out.append(((torch.from_numpy(x[idx]).to(net.dtype), torch.from_numpy(y[idx]), None, None), BATCH))
        return out

    result: dict[str, Any] = {"rank": rank, "steps": args.steps, "warmup": args.warmup}
    # compute only: the same steps, no exchange (both ranks at once, so they share the cores as below)
    net = Network(lenet_config(seed=args.seed))
    data = batches(net, args.compute_steps)
    dist.barrier()
    times = []
    for batch, _ in data:
        t0 = time.perf_counter()
        net.fit_batch(batch)
        times.append(time.perf_counter() - t0)
    result["compute_step_s"] = median(times[min(5, len(times) - 1) :])
    result["n_params"] = int(net.flat.n_trainable)

    for encoding in args.encodings:
        net = Network(lenet_config(seed=args.seed))
        master = GradientSharing(
            num_workers=WORLD,
            batch_size_per_worker=BATCH,
            encoding=encoding,
            seed=args.seed,
            threshold_algorithm=AdaptiveThreshold(max_sparsity=args.max_sparsity),
        )
        timer = PhaseTimer("worker", rank)
        trainer = Trainer(net, master, WORLD, {}, timer)
        data = batches(net, args.steps)
        step_s: list[float] = []
        dist.barrier()
        start = time.perf_counter()
        steady_start = start
        for i, (batch, size) in enumerate(data):
            if i == args.warmup:
                steady_start = time.perf_counter()
            t0 = time.perf_counter()
            trainer.step(batch, size)
            step_s.append(time.perf_counter() - t0)
        trainer.finish()  # also checks that the two replicas are bit-identical
        end = time.perf_counter()
        trainer.close()
        events = timer.drain()
        compute = [e.duration for e in events if e.phase == "compute"]
        exchange = [s - c for s, c in zip(step_s, compute, strict=True)]
        steady = max(1, args.steps - args.warmup)
        row: dict[str, Any] = {
            "steps": trainer.steps,
            "step_s": median(step_s[args.warmup :] or step_s),
            "compute_phase_s": median(compute[args.warmup :] or compute),
            "exchange_s": median(exchange[args.warmup :] or exchange),
            "samples_per_s": WORLD * BATCH * steady / (end - steady_start) if args.steps > args.warmup else None,
            "total_s": end - start,
            "bytes_sent_per_step": trainer.bytes_sent / trainer.steps,
            "score_mean": trainer.score_sum / trainer.steps,
        }
        if encoding == "threshold":
            messages = [float(e.detail["message_bytes"]) for e in events if e.phase == "exchange"]
            row["message_bytes_mean"] = float(np.mean(messages))
            row["encode_s"] = median([e.duration for e in events if e.phase == "encode"][args.warmup :])
            row["decode_s"] = median([e.duration for e in events if e.phase == "decode"][args.warmup :])
            row["sparsity_mean"] = trainer.elements_sent / trainer.steps / trainer.n
            row["tau_end"] = trainer.tau
            # the cost of decoding one more worker's message: this rank's last message, decoded again
            codec, length = trainer.codec, int(trainer._lengths[rank][0])
            message = codec.message[:length].clone()
            scratch = torch.zeros(trainer.n, dtype=net.dtype)
            spare = ThresholdCodec(trainer.n, net.dtype)
            t0 = time.perf_counter()
            for _ in range(200):
                spare.decode_into(message, scratch)
            row["decode_one_message_s"] = (time.perf_counter() - t0) / 200
        result[encoding] = row
    dist.barrier()
    dist.destroy_process_group()
    text = json.dumps(result)
    if args.out:
        Path(args.out).write_text(text)
    print(text, flush=True)


# ---------------------------------------------------------------------------------------------- the driver


def run_pair(link: Link, rate: str, args: argparse.Namespace, tmp: Path, port: int) -> dict[str, Any]:
    link.limit(rate)
    procs, outs = [], []
    for rank in range(WORLD):
        out = tmp / f"{rate}-{rank}.json"
        outs.append(out)
        cmd = ["ip", "netns", "exec", link.ns[rank], "env", f"GLOO_SOCKET_IFNAME={link.dev[rank]}"]
        cmd += [sys.executable, str(Path(__file__).resolve()), "--rank", str(rank), "--port", str(port)]
        cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--compute-steps", str(args.compute_steps)]
        cmd += ["--seed", str(args.seed), "--mnist", str(args.mnist), "--out", str(out)]
        cmd += ["--encodings", *args.encodings, "--max-sparsity", str(args.max_sparsity)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errors = []
    try:
        for rank, proc in enumerate(procs):
            _, err = proc.communicate(timeout=args.timeout)
            if proc.returncode != 0:
                errors.append(f"rank {rank} exited {proc.returncode}: {err.strip()[-2000:]}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if errors:
        raise RuntimeError(f"{rate}: " + "\n".join(errors))
    ranks = [json.loads(out.read_text()) for out in outs]
    return {"rate": rate, "ranks": ranks}


def bandwidth_table(runs: list[dict[str, Any]], encodings: list[str]) -> str:
    lines = [
        "| link | encoding | bytes/step/rank | step ms | exchange ms | compute ms | samples/s (2 ranks) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        r0 = run["ranks"][0]
        for enc in encodings:
            row = r0[enc]
            sps = f"{row['samples_per_s']:,.0f}" if row["samples_per_s"] else "-"
            lines.append(
                f"| {run['rate']} | {enc} | {row['bytes_sent_per_step']:,.0f} | {row['step_s'] * 1e3:.1f} | "
                f"{row['exchange_s'] * 1e3:.1f} | {row['compute_phase_s'] * 1e3:.1f} | {sps} |"
            )
    return "\n".join(lines)


def scaling_model(rank0: dict[str, Any], link_bits: float, latency_s: float, workers: tuple[int, ...]) -> str:
    """Predicted steps/s for N workers: compute + codec + bytes / bandwidth + per-hop latency."""
    t_compute = rank0["compute_step_s"]
    dense_bytes = 4.0 * rank0["n_params"]  # the flat float32 gradient
    thr = rank0["threshold"]
    message = thr["bytes_sent_per_step"] / (WORLD - 1)  # per rank per step, padded to the longest, + length
    bandwidth = link_bits / 8
    lines = [
        f"compute per step {t_compute * 1e3:.1f} ms (batch {BATCH}, 1 thread); dense gradient {dense_bytes:,.0f} B; "
        f"threshold message {message:,.0f} B (1/{dense_bytes / message:.0f}); encode {thr['encode_s'] * 1e3:.2f} ms; "
        f"decode one message {thr['decode_one_message_s'] * 1e6:.0f} us; link {link_bits / 1e9:g} Gbit/s, "
        f"{latency_s * 1e6:.0f} us per hop",
        "",
        "| workers | dense: comm ms | dense steps/s | threshold: comm + codec ms | threshold steps/s | "
        "threshold / dense | dense scaling eff. | threshold scaling eff. |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in workers:
        dense_comm = 2 * (n - 1) / n * dense_bytes / bandwidth + 2 * (n - 1) * latency_s
        thr_comm = (n - 1) * message / bandwidth + 2 * (n - 1) * latency_s  # lengths + messages all_gather
        thr_codec = thr["encode_s"] + n * thr["decode_one_message_s"]
        dense_step = t_compute + dense_comm
        thr_step = t_compute + thr_codec + thr_comm
        lines.append(
            f"| {n} | {dense_comm * 1e3:.2f} | {1 / dense_step:.1f} | {(thr_comm + thr_codec) * 1e3:.2f} | "
            f"{1 / thr_step:.1f} | {dense_step / thr_step:.2f}x | {t_compute / dense_step:.0%} | "
            f"{t_compute / thr_step:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    from common import mnist_arg

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mnist_arg(parser)
    parser.add_argument("--rates", nargs="*", default=list(DEFAULT_RATES), help="tc rates, or 'unlimited'")
    parser.add_argument("--encodings", nargs="*", default=["dense", "threshold"], choices=["dense", "threshold"])
    parser.add_argument("--steps", type=int, default=150, help="steps per encoding and rate")
    parser.add_argument("--warmup", type=int, default=20, help="steps left out of the steady figures")
    parser.add_argument("--compute-steps", type=int, default=60, help="compute-only steps per rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-sparsity", type=float, default=AdaptiveThreshold().max_sparsity, help="AdaptiveThreshold's upper end"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per rate before giving up")
    parser.add_argument(
        "--model-rates", type=float, nargs="*", default=[10e9, 1e9], help="scaling model: link bits/s (one table each)"
    )
    parser.add_argument("--model-latency-us", type=float, default=25.0, help="scaling model: latency per hop")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=29511, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank is not None:
        run_rank(args)
        return
    args.warmup = min(args.warmup, max(0, args.steps - 1))
    link, reason = open_link()
    if link is None:
        print(f"skipped: {reason}", flush=True)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally/atexit clean-up on kill too
    runs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i, rate in enumerate(args.rates):
                run = run_pair(link, rate, args, Path(tmp), args.port + i)
                runs.append(run)
                r0 = run["ranks"][0]
                summary = ", ".join(
                    f"{enc} {r0[enc]['step_s'] * 1e3:.1f} ms/step, {r0[enc]['bytes_sent_per_step']:,.0f} B"
                    for enc in args.encodings
                )
                print(f"{rate}: {summary}", flush=True)
    finally:
        link.close()
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))
    print()
    print(bandwidth_table(runs, args.encodings))
    if "dense" in args.encodings and "threshold" in args.encodings:
        base = next((r for r in runs if r["rate"] == "unlimited"), runs[0])["ranks"][0]
        for rate_bits in args.model_rates:
            print()
            print(f"scaling model ({rate_bits / 1e9:g} Gbit/s):")
            print(scaling_model(base, rate_bits, args.model_latency_us * 1e-6, (8, 32, 128)))


if __name__ == "__main__":
    main()
