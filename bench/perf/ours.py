"""torchrl-cli's side: the same `train(cfg)` that `torchrl train` runs, composed in-process."""

import io

from rich.console import Console

from bench.perf.records import SolveRun, Throughput
from bench.perf.settings import EVAL_EPISODES, ZOO_CARTPOLE, Solve
from torchrl_cli.config import load_default
from torchrl_cli.run.train import train

# Console output off (a logging table is printed outside the training clock anyway).
QUIET = ["logger.progress=false", "logger.log_freq=1000000", "save_model=false"]


def solve_overrides(task: Solve, seed: int) -> list[str]:
    """`torchrl train experiment=<preset> <these>`: the tool's default config for the pair, with
    the protocol's evaluation cadence (and the task's budget, if it sets one)."""
    overrides = [
        f"seed={seed}",
        f"target_return={task.threshold}",
        f"eval_freq={task.eval_every}",
        f"eval_episodes={EVAL_EPISODES}",
    ]
    return overrides + ([f"max_steps={task.budget}"] if task.budget is not None else [])


def time_to_solve(task: Solve, seed: int) -> SolveRun:
    cfg = load_default(task.experiment, [*solve_overrides(task, seed), *QUIET])
    metrics = train(cfg, run_dir=None, console=Console(file=io.StringIO()))
    solved = metrics["solved"]
    return SolveRun(
        seed,
        solved and solved["env_steps"],
        solved and solved["train_seconds"],
        [(e["env_steps"], e["train_seconds"], e["mean_return"]) for e in metrics["evaluations"]],
    )


def zoo_overrides(steps: int) -> list[str]:
    """rl-zoo3's CartPole-v1 PPO hyperparameters as `torchrl train` overrides."""
    zoo = ZOO_CARTPOLE
    minibatches = zoo["n_envs"] * zoo["n_steps"] // zoo["batch_size"]
    return [
        "agent=ppo_clip",
        "env=CartPole-v1",
        "net=mlp",
        f"env.n_envs={zoo['n_envs']}",
        f"agent.n_steps={zoo['n_steps']}",
        f"agent.gamma={zoo['gamma']}",
        f"agent.lr={zoo['learning_rate']}",
        f"agent.advantage.gae_lambda={zoo['gae_lambda']}",
        f"agent.policy.ppo_clip_range={zoo['clip_range']}",
        "agent.policy.clip_schedule=linear",
        "agent.policy.entropy_coef=0.0",
        "agent.value.loss_coef=0.5",
        "agent.value.clip_range=null",
        "agent.normalize_advantages=true",
        "env.running_normalize_states=false",
        "env.scale_reward=false",
        f"agent.num_epochs={zoo['n_epochs']}",
        f"agent.num_mini_batches={minibatches}",
        "agent.lr_schedule=linear",
        "agent.clip_grad_norm=0.5",
        f"max_steps={steps}",
        "eval_freq=0",
        f"eval_episodes={EVAL_EPISODES}",
        "torch_threads=1",
        "device=cpu",
    ]


def throughput(steps: int, seed: int) -> Throughput:
    cfg = load_default("cartpole_solve", [*zoo_overrides(steps), f"seed={seed}", *QUIET])
    metrics = train(cfg, run_dir=None, console=Console(file=io.StringIO()))
    return Throughput(metrics["env_steps"], metrics["train_seconds"], metrics["mean_return"])
