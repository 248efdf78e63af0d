"""The ``deepspark rl`` subcommands: ``rl train`` (DQN, PPO or A2C on a Gymnasium environment) and ``rl evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from deepspark.errors import ConfigError


def add_rl_commands(sub: Any) -> None:
    """Register ``rl train`` and ``rl evaluate`` on the ``deepspark`` parser's subcommands."""
    rl = sub.add_parser("rl", help="reinforcement learning on Gymnasium environments (DQN, PPO, A2C)")
    rl_sub = rl.add_subparsers(dest="rl_command", required=True)
    train = rl_sub.add_parser("train", help="train an agent and save it as an archive")
    train.add_argument("--env", required=True, help="Gymnasium id (CartPole-v1) or 'module:factory'")
    train.add_argument("--algo", choices=["dqn", "ppo", "a2c"], default="ppo", help="learning algorithm")
    train.add_argument("--steps", type=int, default=100_000, help="environment steps to train")
    train.add_argument("--workers", type=int, default=0, help="Spark rollout workers (0: collect in this process)")
    train.add_argument("--master", default="local[*]", help="Spark master URL when --workers > 0")
    train.add_argument("--config", default=None, help="algorithm config JSON (DQNConfig/PPOConfig/A2CConfig.to_json)")
    train.add_argument("--network", default=None, help="network config JSON (default: a small MLP)")
    train.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    train.add_argument("--stats", default=None, help="SQLite stats file for 'deepspark ui' / 'deepspark report'")
    train.add_argument("--eval-episodes", type=int, default=20, help="greedy episodes to evaluate after training")
    train.add_argument("--output", default="agent.zip", help="where to write the trained agent archive")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)
    ev = rl_sub.add_parser("evaluate", help="play greedy episodes with a saved agent")
    ev.add_argument("archive", help="an agent archive written by 'deepspark rl train'")
    ev.add_argument("--episodes", type=int, default=100, help="greedy evaluation episodes")
    ev.add_argument("--seed", type=int, default=1_000_000, help="seed of the first evaluation episode")
    ev.set_defaults(func=_evaluate)


def _read_spec(path: str | None, what: str) -> Any:
    if path is None:
        return None
    from deepspark.config._spec import Spec

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e}", what) from None
    return Spec.from_json(text)


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from deepspark.rl import A2C, DQN, PPO, A2CConfig, DQNConfig, PPOConfig, RLStatsListener

    algos: dict[str, tuple[Any, Any]] = {"dqn": (DQN, DQNConfig), "ppo": (PPO, PPOConfig), "a2c": (A2C, A2CConfig)}
    cls, config_cls = algos[args.algo]
    if args.steps < 1:
        raise ConfigError(f"expected a positive int, got {args.steps}", "--steps")
    if args.workers < 0:
        raise ConfigError(f"expected an int >= 0, got {args.workers}", "--workers")
    config = _read_spec(args.config, "--config") or config_cls()
    if not isinstance(config, config_cls):
        got = type(config).__name__
        raise ConfigError(f"--algo {args.algo} needs a {config_cls.__name__}, got a {got}", "--config")
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.workers and config.num_envs % args.workers:
        config = dataclasses.replace(config, num_envs=args.workers * max(1, -(-config.num_envs // args.workers)))
    rollouts = None
    spark = None
    if args.workers:
        from pyspark.sql import SparkSession

        from deepspark.rl import SparkRollouts
        from deepspark.spark import local_spark

        running = SparkSession.getActiveSession()  # embedding code's session: use it, leave it running
        session = running if running is not None else local_spark(args.master, app_name="deepspark-rl")
        spark = None if running is not None else session
        rollouts = SparkRollouts(session, num_workers=args.workers)
    listeners = []
    if args.stats:
        from deepspark.stats import SQLiteStatsStorage

        listeners.append(RLStatsListener(SQLiteStatsStorage(args.stats)))
    try:
        agent = cls(args.env, _read_spec(args.network, "--network"), config, rollouts=rollouts)
        agent.train(args.steps, listeners=listeners, progress=not args.no_progress)
        agent.save(args.output)
        if args.eval_episodes > 0:
            print(f"{args.algo} on {args.env}: {agent.evaluate(args.eval_episodes)} (greedy)")
        print(json.dumps({"steps": agent.steps, "episodes": agent.episodes, "archive": args.output}))
        agent.close()
    finally:
        if spark is not None:
            spark.stop()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from deepspark.rl import load_agent

    if args.episodes < 1:
        raise ConfigError(f"expected a positive int, got {args.episodes}", "--episodes")
    agent = load_agent(args.archive)
    result = agent.evaluate(args.episodes, seed=args.seed)
    print(f"{agent.algorithm} on {agent.env_name}: {result} (greedy)")
    return 0


__all__ = ["add_rl_commands"]
