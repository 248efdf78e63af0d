"""Gradient sharing simulated in one process: W replicas of a ``Network`` exchanging threshold-encoded updates
through the library's own ``ThresholdRank`` (the code the Spark trainer runs), or averaging dense gradients.

No Spark, no sockets: the messages are handed over in memory, so a run of the MNIST issue-11 job takes
seconds of compute per epoch instead of a barrier stage. Every step records tau, sparsity, bytes, the
residual's norm and the mass residual clipping removed; the test accuracy is measured every ``--eval-every``
steps. The epoch end does what ``Trainer.finish`` does (flush the residuals, average the updater state).

Run: ``nice -n 19 .venv/bin/python bench/sim_sharing.py --encoding threshold --seed 0 --out run.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, mnist_arg, mnist_split

from deepspark.config import Adam, AdamW, Dense, InputType, Nesterovs, NetworkConfig, Output, Sgd
from deepspark.nn import Network
from deepspark.spark import AdaptiveThreshold, FixedThreshold, GradientSharing, ResidualClipping, TargetSparsity
from deepspark.spark._encoding import ThresholdCodec, ThresholdRank
from deepspark.spark._executor import epoch_order


def updater(name: str, lr: float) -> Any:
    return {
        "adam": lambda: Adam(learning_rate=lr),
        "adamw": lambda: AdamW(learning_rate=lr),
        "nesterovs": lambda: Nesterovs(learning_rate=lr, momentum=0.9),
        "sgd": lambda: Sgd(learning_rate=lr),
    }[name]()


def network_config(model: str, seed: int, upd: Any) -> NetworkConfig:
    if model == "lenet":
        conf = lenet_config(seed=seed)
        return NetworkConfig.from_dict({**conf.to_dict(), "updater": upd.to_dict()})  # type: ignore[return-value]
    return NetworkConfig(
        seed=seed,
        updater=upd,
        input_type=InputType.feed_forward(784),
        layers=(Dense(n_out=256, activation="relu"), Dense(n_out=128, activation="relu"), Output(n_out=10)),
    )


def master_from(args: argparse.Namespace) -> GradientSharing:
    algo: Any
    if args.algorithm == "adaptive":
        algo = AdaptiveThreshold()
    elif args.algorithm == "fixed":
        algo = FixedThreshold(threshold=args.tau)
    else:
        algo = TargetSparsity(target=args.target)
    clip = None if args.no_clip else ResidualClipping()
    return GradientSharing(
        num_workers=args.workers,
        batch_size_per_worker=args.batch,
        threshold_algorithm=algo,
        residual_post_processor=clip,
    )


def batch_tensors(net: Network, x: np.ndarray, y: np.ndarray) -> Any:
    return (torch.from_numpy(x).to(net.dtype), torch.from_numpy(y), None, None)


def accuracy(net: Network, x: np.ndarray, y: np.ndarray) -> float:
    out = net.output(x)
    assert isinstance(out, np.ndarray)
    return float((out.argmax(1) == y).mean())


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = mnist_split(args.mnist, args.n_train)
    if args.model == "lenet":
        x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    w = args.workers
    blocks = [(x_train[i::w], y_train[i::w]) for i in range(w)]
    longest = max(len(b[0]) for b in blocks)
    conf = network_config(args.model, args.seed, updater(args.updater, args.lr))
    master = master_from(args)
    nets = [Network(conf) for _ in range(w if args.encoding == "threshold" else 1)]
    n = nets[0].flat.n_trainable
    ranks = [
        ThresholdRank(ThresholdCodec(n), master.threshold_algorithm, master.residual_post_processor, w)
        for _ in range(w)
    ]
    applied = torch.zeros(n)
    grads_sum = torch.zeros(n)
    steps_per_epoch = -(-longest // args.batch)
    log: dict[str, list[float]] = {
        k: [] for k in ("tau", "sparsity", "bytes", "residual", "clipped", "applied", "score")
    }
    evals: list[tuple[int, float]] = []
    dense_bytes = 2 * (w - 1) * n * 4 / w
    t0 = time.time()
    step = 0
    for epoch in range(args.epochs):
        orders = [epoch_order(args.seed, epoch, i, len(blocks[i][0])) for i in range(w)]
        for b in range(steps_per_epoch):
            pos = np.arange(b * args.batch, min((b + 1) * args.batch, longest))
            batches = [
                (blocks[i][0][orders[i][pos % len(orders[i])]], blocks[i][1][orders[i][pos % len(orders[i])]])
                for i in range(w)
            ]
            if args.encoding == "dense":
                net = nets[0]
                grads_sum.zero_()
                score = 0.0
                for xb, yb in batches:
                    score += float(net.compute_gradient(batch_tensors(net, xb, yb), postprocess=False))
                    grads_sum.add_(net.flat.grads)
                net.flat.grads.copy_(grads_sum).div_(w)
                net.postprocess_gradient()
                net.gradient_to_update()
                log["applied"].append(float(net.flat.grads.norm()))
                net.apply_update(net.flat.grads, torch.tensor(score / w), len(pos))
                log["bytes"].append(dense_bytes)
                log["score"].append(score / w)
            else:
                messages, score, counts, lengths = [], 0.0, [], []
                for net, rank, (xb, yb) in zip(nets, ranks, batches, strict=True):
                    score += float(net.compute_gradient(batch_tensors(net, xb, yb)))
                    net.gradient_to_update()
                    length, count, tau_used = rank.encode(net.flat.grads)
                    messages.append(rank.codec.message[:length].clone())
                    counts.append(count)
                    lengths.append(length)
                before = ranks[0].codec.residual.clone()
                for net, rank in zip(nets, ranks, strict=True):
                    rank.combine(messages, applied)
                    net.apply_update(applied, torch.tensor(score / w), len(pos))
                log["clipped"].append(float((before - ranks[0].codec.residual).norm()))
                log["residual"].append(float(ranks[0].codec.residual.norm()))
                log["applied"].append(float(applied.norm()))
                log["tau"].append(tau_used)
                log["sparsity"].append(float(np.mean(counts)) / n)
                log["bytes"].append((w - 1) * (max(lengths) * 4 + 8))
                log["score"].append(score / w)
            step += 1
            if args.eval_every and step % args.eval_every == 0:
                evals.append((step, accuracy(nets[0], x_test, y_test)))
        if args.encoding == "threshold":
            evals.append((step, accuracy(nets[0], x_test, y_test)))  # before the epoch end
            log.setdefault("flush_norm", []).append(float(sum(r.codec.residual.norm() ** 2 for r in ranks) ** 0.5))
        if args.encoding == "threshold" and args.flush == "drop":
            for rank in ranks:
                rank.codec.residual.zero_()
        if args.encoding == "threshold":  # Trainer.finish: average the updater state, flush if asked
            total = torch.zeros(n)
            if args.flush == "epoch":
                for rank in ranks:
                    total.add_(rank.codec.residual)
                    rank.codec.residual.zero_()
            state = torch.stack([net.updater.state for net in nets]).mean(0)
            for net in nets:
                with torch.no_grad():
                    net.flat.trainable.sub_(total)
                net.updater.state.copy_(state)
            first = nets[0].params()
            assert all(np.array_equal(first, net.params()) for net in nets[1:]), "replicas diverged"
    acc = accuracy(nets[0], x_test, y_test)
    evals.append((step, acc))
    return {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "accuracy": acc,
        "steps": step,
        "n": n,
        "seconds": time.time() - t0,
        "bytes_per_step": float(np.mean(log["bytes"])),
        "dense_bytes_per_step": dense_bytes,
        "evals": evals,
        "log": log,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--encoding", choices=["dense", "threshold"], default="threshold")
    parser.add_argument("--model", choices=["lenet", "mlp"], default="lenet")
    parser.add_argument("--updater", choices=["adam", "adamw", "nesterovs", "sgd"], default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--algorithm", choices=["adaptive", "fixed", "target"], default="adaptive")
    parser.add_argument("--tau", type=float, default=1e-3)
    parser.add_argument("--target", type=float, default=1e-3)
    parser.add_argument("--no-clip", action="store_true")
    parser.add_argument("--flush", choices=["epoch", "never", "drop"], default="never")
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = run(args)
    if args.out:
        args.out.write_text(json.dumps(result))
    log = result["log"]
    line = f"{args.encoding} {args.model} {args.updater} lr={args.lr} w={args.workers} seed={args.seed}: "
    line += f"acc {result['accuracy']:.4f} bytes/step {result['bytes_per_step']:,.0f} "
    line += f"(1/{result['dense_bytes_per_step'] / result['bytes_per_step']:.0f}) {result['seconds']:.0f}s"
    if log["tau"]:
        tau = np.array(log["tau"])
        line += f" tau {tau[0]:.1e}->{tau[len(tau) // 3]:.1e}->{tau[-1]:.1e} sparsity {np.mean(log['sparsity']):.4f}"
    print(line, flush=True)
    print("evals", " ".join(f"{s}:{a:.3f}" for s, a in result["evals"]), flush=True)


if __name__ == "__main__":
    main()
