"""RL acceptance (issue 16): DQN and PPO on CartPole-v1, and PPO with SparkRollouts at 1 vs 2 workers.

    python bench/acceptance_rl.py train --algo ppo --seed 0      # -> bench/results/rl_ppo_seed0.json
    python bench/acceptance_rl.py train --algo dqn --seed 0      # -> bench/results/rl_dqn_seed0.json
    python bench/acceptance_rl.py spark --workers 2 --seed 0     # one contender, one fresh process
    python bench/acceptance_rl.py compare --repeats 3            # 1 vs 2 workers, alternating, median of 3
    python bench/acceptance_rl.py plot                           # -> docs/rl_curves.png, docs/rl_spark_walltime.png

Targets: mean return >= 475 over 100 greedy evaluation episodes, DQN within 200k environment steps,
PPO within 150k. Every ``--eval-every`` training steps the greedy policy plays 20 evaluation episodes for
the learning curve (their steps are not training steps). Each result prints ``os.getloadavg()``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def dqn_agent(seed: int, rollouts: Any = None, total_steps: int = 0) -> Any:
    """SB3 zoo's CartPole DQN; with ``total_steps`` the learning rate decays linearly to 0 over the run."""
    from deepspark.config import Adam, PolySchedule
    from deepspark.rl import DQN, DQNConfig, LinearSchedule, mlp

    lr: Any = 2.3e-3
    if total_steps:  # one iteration = one collection of train_frequency (256) steps
        lr = PolySchedule(initial=2.3e-3, power=1.0, max_iter=total_steps // 256, schedule_type="epoch")
    conf = mlp(4, 2, hidden=(256, 256), activation="relu", updater=Adam(learning_rate=lr), seed=seed)
    config = DQNConfig(
        double=True, buffer_size=100_000, batch_size=64, gamma=0.99, target_update=10,
        epsilon=LinearSchedule(1.0, 0.04, 8_000), learning_starts=1_000, train_frequency=256, gradient_steps=128,
        max_grad_norm=10.0, seed=seed,
    )
    return DQN("CartPole-v1", conf, config, rollouts=rollouts)


def ppo_agent(seed: int, total_steps: int, rollouts: Any = None) -> Any:
    from deepspark.config import Adam, PolySchedule
    from deepspark.rl import PPO, PPOConfig, mlp

    config = PPOConfig(
        num_envs=8, n_steps=32, gamma=0.98, gae_lambda=0.8, update_epochs=20, num_minibatches=1,
        clip_coef=0.2, entropy_coef=0.0, value_coef=0.5, max_grad_norm=0.5, seed=seed,
    )
    iterations = total_steps // config.steps_per_iteration
    lr = PolySchedule(initial=1e-3, power=1.0, max_iter=iterations, schedule_type="epoch")  # linear decay to 0
    conf = mlp(4, 2, hidden=(64, 64), activation="tanh", updater=Adam(learning_rate=lr), seed=seed)
    return PPO("CartPole-v1", conf, config, rollouts=rollouts)


def ppo_spark_agent(seed: int, total_steps: int, rollouts: Any) -> Any:
    """PPO for the 1-vs-2-worker comparison: 2,048 steps per collection, so a Spark job's fixed cost is amortized."""
    from deepspark.config import Adam, PolySchedule
    from deepspark.rl import PPO, PPOConfig, mlp

    config = PPOConfig(
        num_envs=8, n_steps=256, gamma=0.98, gae_lambda=0.8, update_epochs=10, num_minibatches=8,
        clip_coef=0.2, entropy_coef=0.0, seed=seed,
    )
    iterations = total_steps // config.steps_per_iteration
    lr = PolySchedule(initial=1e-3, power=1.0, max_iter=iterations, schedule_type="epoch")
    conf = mlp(4, 2, hidden=(64, 64), activation="tanh", updater=Adam(learning_rate=lr), seed=seed)
    return PPO("CartPole-v1", conf, config, rollouts=rollouts)


def train(
    algo: str, seed: int, total: int, eval_every: int, rollouts: Any = None, tag: str = "", decay: bool = False
) -> dict[str, Any]:
    agent = dqn_agent(seed, rollouts, total if decay else 0) if algo == "dqn" else ppo_agent(seed, total, rollouts)
    curve: list[dict[str, float]] = []
    t0 = time.perf_counter()
    train_seconds = 0.0
    while agent.steps < total:
        t = time.perf_counter()
        agent.train(min(eval_every, total - agent.steps), log_every=eval_every)
        train_seconds += time.perf_counter() - t
        ev = agent.evaluate(20, seed=10_000 + agent.steps)
        curve.append({"steps": agent.steps, "eval_mean": ev.mean, "train_seconds": train_seconds,
                      "train_return_100": agent.history.mean_return(100)})
        print(f"{tag}{algo} seed {seed}: {agent.steps} steps, eval {ev.mean:.1f}, train(100) "
              f"{agent.history.mean_return(100):.1f}, {train_seconds:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    final = agent.evaluate(100, seed=1_000_000)
    result = {
        "algo": algo, "seed": seed, "total_steps": agent.steps, "final_mean": final.mean, "final_std": final.std,
        "curve": curve, "episode_steps": agent.history.episode_steps, "episode_returns": agent.history.episode_returns,
        "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - t0, "loadavg": os.getloadavg(),
        "config": agent.config.to_dict(), "network": agent.network.config.to_dict(), "lr_decay": decay,
    }
    print(f"{tag}{algo} seed {seed}: FINAL mean return {final.mean:.2f} ± {final.std:.2f} over 100 greedy episodes "
          f"after {agent.steps} steps (target 475), load {os.getloadavg()}", flush=True)
    agent.close()
    return result


def spark_run(workers: int, seed: int, total: int) -> dict[str, Any]:
    """PPO with SparkRollouts(workers) in this (fresh) process: steps/s of the whole run and the wall-time curve."""
    from deepspark.rl import SparkRollouts
    from deepspark.spark import local_spark

    spark = local_spark("local[2]", app_name="deepspark-rl-bench", ui=False)
    try:
        spark.sparkContext.parallelize(range(2), 2).count()  # start the JVM executors before timing
        rollouts = SparkRollouts(spark, num_workers=workers)
        agent = ppo_spark_agent(seed, total, rollouts)
        t0 = time.perf_counter()
        points = []
        while agent.steps < total:
            agent.train(2_048, log_every=10**9)
            points.append({"steps": agent.steps, "seconds": time.perf_counter() - t0,
                           "train_return_20": agent.history.mean_return(20)})
        seconds = time.perf_counter() - t0
        stats = rollouts.training_stats().phase_totals()
        final = agent.evaluate(100, seed=1_000_000)
        return {
            "workers": workers, "seed": seed, "steps": agent.steps, "seconds": seconds,
            "steps_per_sec": agent.steps / seconds, "final_mean": final.mean, "curve": points,
            "phases": {k: v.total for k, v in stats.items()}, "loadavg": os.getloadavg(),
        }
    finally:
        spark.stop()


def summarize() -> None:
    """The comparison summary from every contender result present (pairs of repeats)."""
    runs: dict[int, list[dict[str, Any]]] = {
        w: [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"rl_spark_w{w}_r*.json"))] for w in (1, 2)
    }
    n = min(len(runs[1]), len(runs[2]))
    runs = {w: runs[w][:n] for w in runs}
    med = {w: statistics.median(x["steps_per_sec"] for x in runs[w]) for w in runs}
    summary = {"median_steps_per_sec": med, "ratio_2_over_1": med[2] / med[1], "repeats": n, "runs": runs}
    (RESULTS / "rl_spark_compare.json").write_text(json.dumps(summary, indent=1))
    for w in (1, 2):
        for x in runs[w]:
            print(f"{w} worker(s): {x['steps_per_sec']:.0f} steps/s, {x['seconds']:.0f} s, "
                  f"final {x['final_mean']:.1f}, load {x['loadavg']}")
            print("  phases (s):", {k: round(v, 1) for k, v in x["phases"].items()})
    print(f"SparkRollouts PPO: 1 worker {med[1]:.0f} steps/s, 2 workers {med[2]:.0f} steps/s, ratio "
          f"{med[2] / med[1]:.2f} (median of {n})")


def compare(repeats: int, seed: int, total: int) -> None:
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for r in range(repeats):
        for workers in (1, 2) if r % 2 == 0 else (2, 1):
            out = RESULTS / f"rl_spark_w{workers}_r{r}.json"
            if not out.exists():  # a rerun completes an interrupted comparison
                cmd = [sys.executable, __file__, "spark", "--workers", str(workers), "--seed", str(seed),
                       "--steps", str(total), "--out", str(out)]
                subprocess.run(cmd, check=True)
            runs[workers].append(json.loads(out.read_text()))
            res = runs[workers][-1]
            print(f"repeat {r}, {workers} worker(s): {res['steps_per_sec']:.0f} steps/s, "
                  f"final {res['final_mean']:.1f}, load {res['loadavg'][0]:.1f}", flush=True)
    summarize()


def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, algo, budget in ((axes[0], "dqn", 200_000), (axes[1], "ppo", 150_000)):
        for path in sorted(RESULTS.glob(f"rl_{algo}_*seed*.json")):
            res = json.loads(path.read_text())
            xs = [p["steps"] for p in res["curve"]]
            extra = ", lr decay" if res.get("lr_decay") else ""
            ax.plot(xs, [p["eval_mean"] for p in res["curve"]], marker="o", ms=3,
                    label=f"seed {res['seed']}{extra} (final {res['final_mean']:.0f})")
        ax.axhline(475, color="gray", ls="--", lw=1, label="target 475")
        ax.axvline(budget, color="gray", ls=":", lw=1)
        ax.set_title(f"{algo.upper()} on CartPole-v1: greedy return (20 episodes)")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("mean return")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "rl_curves.png", dpi=110)
    summary_path = RESULTS / "rl_spark_compare.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        fig, ax = plt.subplots(figsize=(6, 4))
        for workers, color in (("1", "tab:blue"), ("2", "tab:orange")):
            for i, run in enumerate(summary["runs"][workers]):
                ax.plot([p["seconds"] for p in run["curve"]], [p["train_return_20"] for p in run["curve"]],
                        color=color, alpha=0.8, label=f"{workers} worker(s)" if i == 0 else None)
        ax.set_xlabel("wall-clock seconds")
        ax.set_ylabel("mean training return (last 20 episodes)")
        ax.set_title("PPO with SparkRollouts on local[2]")
        ax.legend()
        fig.tight_layout()
        fig.savefig(ROOT / "docs" / "rl_spark_walltime.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "spark", "compare", "summarize", "plot"])
    parser.add_argument("--algo", choices=["dqn", "ppo"], default="ppo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--lr-decay", action="store_true", help="DQN: decay the learning rate linearly to 0")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.command == "train":
        # PPO collects 256 steps per iteration: 585 iterations stay within the 150k budget
        total = args.steps or (200_000 if args.algo == "dqn" else 149_760)
        result = train(args.algo, args.seed, total, args.eval_every, decay=args.lr_decay)
        (args.out or RESULTS / f"rl_{args.algo}_seed{args.seed}.json").write_text(json.dumps(result))
    elif args.command == "spark":
        result = spark_run(args.workers, args.seed, args.steps or 51_200)
        (args.out or RESULTS / f"rl_spark_w{args.workers}.json").write_text(json.dumps(result))
    elif args.command == "compare":
        compare(args.repeats, args.seed, args.steps or 51_200)
    elif args.command == "summarize":
        summarize()
    else:
        plot()


if __name__ == "__main__":
    main()
