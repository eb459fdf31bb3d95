"""What each benchmark runs: thresholds, evaluation cadence, budgets and the shared
hyperparameters, for the full benchmark and for the smoke variant (same code, tiny budgets)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Solve:
    """A time-to-solve task (BENCHMARKS.md): evaluate every ``eval_every`` env steps with 20
    deterministic episodes on a separate env; solved at the first mean >= ``threshold``."""

    env_id: str
    threshold: float
    eval_every: int
    # env steps before a seed counts as unsolved; None: each tool's own budget (ours: the tuned
    # file's max_steps, which also sets the linear schedules; SB3: rl-zoo3's n_timesteps)
    budget: int | None
    experiment: str  # our preset: the tool's default config for the pair plus the threshold


@dataclass(frozen=True)
class Budgets:
    seeds: tuple[int, ...]
    cartpole: Solve
    pendulum: Solve
    throughput_steps: int
    collector_seconds: float  # per measurement; each measurement is repeated `repeats` times
    repeats: int
    collector_envs: tuple[int, ...]
    scaling_envs: tuple[int, ...]


EVAL_EPISODES = 20

FULL = Budgets(
    seeds=(0, 1, 2, 3, 4),
    cartpole=Solve("CartPole-v1", 475.0, 2048, None, "cartpole_solve"),
    pendulum=Solve("Pendulum-v1", -200.0, 8192, None, "pendulum_solve"),
    throughput_steps=100_000,
    collector_seconds=1.0,
    repeats=3,
    collector_envs=(1, 8, 64),
    scaling_envs=(1, 4, 8, 16, 64, 256),
)

# Same code path with thresholds every policy meets at its first evaluation: checks the
# machinery (runs, clocks, ratios, the report), not the learning.
SMOKE = Budgets(
    seeds=(0,),
    cartpole=Solve("CartPole-v1", 0.0, 2048, 4096, "cartpole_solve"),
    pendulum=Solve("Pendulum-v1", -2000.0, 8192, 16_384, "pendulum_solve"),
    throughput_steps=2048,
    collector_seconds=0.1,
    repeats=1,
    collector_envs=(1, 8),
    scaling_envs=(1, 4),
)

# rl-zoo3's tuned PPO for CartPole-v1 (hyperparams/ppo.yml): both tools train with exactly these
# in the same-hyperparameter throughput benchmark, with 64x64 tanh nets for policy and value.
ZOO_CARTPOLE = {
    "n_envs": 8,
    "n_steps": 32,
    "batch_size": 256,
    "n_epochs": 20,
    "gamma": 0.98,
    "gae_lambda": 0.8,
    "learning_rate": 1e-3,  # linearly annealed to 0
    "clip_range": 0.2,  # linearly annealed to 0
}

# rl-zoo3's tuned PPO for Pendulum-v1 (Stable-Baselines3's side of the Pendulum time-to-solve).
ZOO_PENDULUM = {
    "n_envs": 4,
    "n_steps": 1024,
    "batch_size": 64,
    "n_epochs": 10,
    "gamma": 0.9,
    "gae_lambda": 0.95,
    "learning_rate": 1e-3,
    "clip_range": 0.2,
    "use_sde": True,
    "sde_sample_freq": 4,
}

TARGETS = {  # ours / SB3 (time ratios: at most; speed ratios: at least)
    "cartpole_time": 0.25,
    "throughput": 3.0,
    "pendulum_time": 0.33,
    "collector_8": 0.5,
}

WHOLE_TARGETS = {  # the whole-process section (bench/perf/whole.py)
    "cartpole_ratio": 0.20,  # ours / SB3, median whole-process time-to-solve: at most
    "pendulum_ratio": 0.25,
    "ready_over_floor": 0.8,  # start-up to the first env step minus the import floor (s): at most
    "help_over_floor": 2.0,  # torchrl train --help / the import floor: at most
    "exit": 0.3,  # seconds from the last line to the exit, worst run: at most
    "eval_share": 0.15,  # evaluation seconds / whole process of a default run: at most
}
