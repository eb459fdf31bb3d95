"""Collector overhead and vectorization scaling: env steps per second of torchrl-cli's rollout
collector with the policy acting, against raw stepping of the same vector env."""

import itertools
import statistics
import time
from collections.abc import Callable

import torch
from threadpoolctl import threadpool_limits

from torchrl_cli.config import load_default
from torchrl_cli.envs import GymEnv
from torchrl_cli.envs.factory import build_env
from torchrl_cli.run.build import build_agent
from torchrl_cli.tracking.logger import Logger

ROLLOUT_STEPS = 2048  # env steps per collect() call, split over the copies


def rate(step: Callable[[], int], seconds: float) -> float:
    """Env steps per second of calling ``step`` (which returns the env steps it took)."""
    step()  # warm-up
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        steps += step()
    return steps / elapsed


def raw_stepper(env: GymEnv) -> Callable[[], int]:
    """Random actions (drawn in advance) straight into the vector env."""
    env.reset(seed=0)
    actions = itertools.cycle([env.vec.action_space.sample() for _ in range(64)])

    def step() -> int:
        env.step(next(actions))
        return env.n_envs

    return step


def collector_stepper(env: GymEnv, vectorization: str) -> Callable[[], int]:
    """torchrl-cli's Collector.collect with the default CartPole-v1 policy acting on ``env``."""
    n = env.n_envs
    cfg = load_default(
        "cartpole_solve",
        [f"env.n_envs={n}", f"env.vectorization={vectorization}",
         f"agent.n_steps={max(1, ROLLOUT_STEPS // n)}", "device=cpu"],
    )
    logger = Logger(None, progress=False, histograms=False,
                    mode="full", table_every_s=0.0)
    agent = build_agent(cfg, env, torch.device("cpu"), logger)

    def step() -> int:
        agent.collector.collect(agent.values)
        return agent.collector.n_steps * n

    return step


def measure(n_envs: int, vectorization: str, seconds: float, repeats: int) -> dict[str, float]:
    """Median raw and collector steps/s, interleaved; the env is built once for both."""
    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")  # numpy acting: one thread, as in training
    cfg = load_default("cartpole_solve", [f"env.vectorization={vectorization}"])
    env = build_env(cfg.env, n_envs)
    try:
        raw, collect = raw_stepper(env), collector_stepper(env, vectorization)
        raws, collects = [], []
        for _ in range(repeats):
            raws.append(rate(raw, seconds))
            collects.append(rate(collect, seconds))
        return {
            "vectorization": env.vectorization,
            "raw": statistics.median(raws),
            "collector": statistics.median(collects),
        }
    finally:
        env.close()
