"""Plots of docs/gradient-sharing.md from ``bench/sim_sharing.py --out`` JSON files: test accuracy, tau,
sparsity and residual norm per step for dense, threshold before the fix and threshold after it.

Run: ``.venv/bin/python bench/plot_sharing.py DENSE.json BEFORE.json AFTER.json --out docs/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dense", type=Path)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    runs = {
        "dense": json.loads(args.dense.read_text()),
        "threshold, before (flush every epoch, tau 1e-3 growing 3.5 %/step)": json.loads(args.before.read_text()),
        "threshold, after (residual kept, proportional tau growth)": json.loads(args.after.read_text()),
    }
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, run in runs.items():
        steps, acc = zip(*run["evals"], strict=True)
        ax.plot(steps, acc, marker=".", label=name)
    for epoch_end in (125, 250):
        ax.axvline(epoch_end, color="grey", lw=0.5, ls=":")
    ax.set(xlabel="step", ylabel="test accuracy", ylim=(0.85, 1.0), title="MNIST 8k/2k, LeNet, Adam 1e-3, 2 x 32")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "gradient-sharing-accuracy.png", dpi=110)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, run in list(runs.items())[1:]:
        log = run["log"]
        axes[0].semilogy(log["tau"], label=name.split(" (")[0])
        axes[1].semilogy(log["sparsity"], label=name.split(" (")[0])
        axes[2].plot(log["residual"], label=name.split(" (")[0])
    axes[0].set(xlabel="step", ylabel="tau")
    axes[1].set(xlabel="step", ylabel="fraction of elements sent")
    axes[2].set(xlabel="step", ylabel="rank 0 residual L2 norm")
    axes[2].plot(runs["dense"]["log"]["applied"], label="dense: applied update norm", color="grey", lw=0.6)
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "gradient-sharing-tau-sparsity-residual.png", dpi=110)


if __name__ == "__main__":
    main()
