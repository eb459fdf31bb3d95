"""Build the whole stack from a composed config, train it, and write the run's outputs."""

import json
import random
import shlex
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from threadpoolctl import threadpool_limits

from torchrl_cli.agents import PGAgent, TrainResult
from torchrl_cli.agents.base import Evaluation
from torchrl_cli.batcher import Batcher
from torchrl_cli.checkpoint import CHECKPOINT_DIR, Checkpoints, write_atomically
from torchrl_cli.envs import GymEnv, RewardScaler, StateNormalizer, wrap_atari
from torchrl_cli.envs.spaces import info_to_json
from torchrl_cli.logger import Logger
from torchrl_cli.nn import nn_from_config
from torchrl_cli.run_folder import CONFIG_FILE, lock_run
from torchrl_cli.utils import get_obj
from torchrl_cli.validate import validate

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes never reuse training seeds


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str, net_cfg: DictConfig | None = None) -> torch.device:
    """``auto``: CUDA only for nets with convolutions (image observations) when a GPU is there.

    An MLP on low-dimensional observations does a few microseconds of arithmetic per call, so on
    a GPU the kernel launches and the host-device copy of every acting step cost more than they
    save; a conv net over images is the opposite (docs/performance.md).
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and has_conv(net_cfg) else "cpu"
    return torch.device(device)


def has_conv(net_cfg: DictConfig | None) -> bool:
    layers = [] if net_cfg is None else [*net_cfg.body, *net_cfg.head]
    return any("Conv" in str(layer.get("_target_", "")) for layer in layers)


def build_env(
    env_cfg: DictConfig, n_envs: int, *, evaluation: bool = False, extra_wrappers: list = ()
) -> GymEnv:
    """The vector env ``env_cfg`` describes; ``evaluation``: without training-only wrappers;
    ``extra_wrappers`` go outside the configured ones (e.g. a video recorder)."""
    wrappers = [get_obj(node, _partial_=True) for node in env_cfg.wrappers]
    wrappers += extra_wrappers
    kwargs = dict(env_cfg.kwargs)
    if env_cfg.atari is not None:
        wrappers.insert(0, partial(wrap_atari, **env_cfg.atari, training=not evaluation))
        kwargs["frameskip"] = 1  # the preprocessing skips frames itself (and max-pools them)
    return GymEnv(
        env_cfg.id,
        n_envs=n_envs,
        vectorization=env_cfg.vectorization,
        wrappers=wrappers,
        **kwargs,
    )


def build_model(
    model_cfg: DictConfig,
    net_cfg: DictConfig,
    state_info: dict,
    action_info: dict,
    output_gain: float,
):
    net = nn_from_config(net_cfg, state_info, action_info)
    model = get_obj(model_cfg, net=net, action_info=action_info)
    if net_cfg.init == "orthogonal":
        model.init_orthogonal(output_gain)
    return model


def build_normalizer(cfg: DictConfig, state_info: dict) -> StateNormalizer:
    return StateNormalizer(
        state_info,
        running=cfg.env.running_normalize_states,
        fixed=cfg.env.fixed_normalize_states,
        clip=cfg.env.clip_states,
    )


def build_agent(cfg: DictConfig, env: GymEnv, device: torch.device, logger: Logger) -> PGAgent:
    state_info, action_info = env.get_state_info(), env.get_action_info()
    normalizer = build_normalizer(cfg, state_info)
    scaler = RewardScaler(
        env.n_envs, gamma=cfg.agent.gamma, enabled=cfg.env.scale_reward, clip=cfg.env.clip_reward
    )
    policy = build_model(cfg.agent.policy, cfg.net, state_info, action_info, output_gain=0.01)
    value = None
    if cfg.agent.value is not None:
        value = build_model(cfg.agent.value, cfg.net, state_info, action_info, output_gain=1.0)
        value.to(device)
    batcher = Batcher(env, cfg.agent.n_steps, normalizer.to(device), scaler, device, seed=cfg.seed)
    return PGAgent(
        batcher,
        policy_model=policy.to(device),
        value_model=value,
        normalize_advantages=cfg.agent.normalize_advantages,
        advantage=get_obj(cfg.agent.advantage),
        vtarget=get_obj(cfg.agent.vtarget),
        logger=logger,
    )


def run_meta(cfg: DictConfig, env: GymEnv) -> dict:
    """What every checkpoint of a run carries besides its progress."""
    return {
        "config": OmegaConf.to_yaml(cfg, resolve=True),
        "env_id": cfg.env.id,
        "state_info": info_to_json(env.get_state_info()),
        "action_info": info_to_json(env.get_action_info()),
    }


def train(
    cfg: DictConfig,
    run_dir: Path | None = None,
    console: Console | None = None,
    resume: tuple[Path, dict] | None = None,
) -> dict:
    """Train the agent ``cfg`` describes; returns the final evaluation's metrics.

    ``run_dir`` receives config.yaml, TensorBoard events, checkpoints/, ``model.pt`` and
    ``metrics.json`` (None: no files). ``resume``: a checkpoint (path, contents) of this run
    to go on from.
    """
    validate(cfg)
    if run_dir is None:
        return _train(cfg, None, console or Console(), resume)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with lock_run(run_dir):
        config = OmegaConf.to_yaml(cfg, resolve=True).encode()
        write_atomically(run_dir / CONFIG_FILE, lambda f: f.write(config))
        return _train(cfg, run_dir, console or Console(), resume)


def _train(
    cfg: DictConfig, run_dir: Path | None, console: Console, resume: tuple[Path, dict] | None
) -> dict:
    wall_start = time.perf_counter()
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.torch_threads)
    # numpy's BLAS too (the numpy acting and update paths): OpenBLAS would otherwise start one
    # thread per core, which on small matrices costs more than it gives, 5x under contention
    threadpool_limits(cfg.torch_threads, user_api="blas")
    device = resolve_device(cfg.device, cfg.net)
    checkpoint = resume[1]["agent"] if resume else None
    start_step = checkpoint["batcher"]["num_steps"] if checkpoint else 0
    env = build_env(cfg.env, cfg.env.n_envs)
    eval_env = build_env(cfg.env, cfg.eval_episodes, evaluation=True)
    logger = Logger(
        run_dir,
        console=console,
        progress=cfg.logger.progress,
        histograms=cfg.logger.histograms,
        start_step=start_step,
        start_seconds=checkpoint["train_seconds"] if checkpoint else 0.0,
    )
    if not resume:
        logger.add_text("config", "```\n" + OmegaConf.to_yaml(cfg, resolve=True) + "\n```")
    agent = None
    try:
        agent = build_agent(cfg, env, device, logger)
        checkpoints = None
        if run_dir is not None:
            checkpoints = Checkpoints(
                run_dir / CHECKPOINT_DIR,
                freq=cfg.checkpoint_freq,
                keep=cfg.keep_checkpoints,
                meta=run_meta(cfg, env),
                start_step=start_step,
            )
        console.print(
            f"[bold]torchrl train[/bold] {cfg.agent.name} on {cfg.env.id} "
            f"({env.simulator}, {env.n_envs} envs, net {cfg.net.name}, device {device}, "
            f"seed {cfg.seed})" + (f" -> {run_dir}" if run_dir else "")
        )
        if resume:
            restore(agent, cfg, resume, console)
        eval_seed = cfg.seed + EVAL_SEED_OFFSET
        result = agent.train(
            max_iters=cfg.max_iters,
            max_episodes=cfg.max_episodes,
            max_steps=cfg.max_steps,
            log_freq=cfg.logger.log_freq,
            eval_env=eval_env,
            eval_freq=cfg.eval_freq,
            eval_episodes=cfg.eval_episodes,
            eval_seed=eval_seed,
            target_return=cfg.target_return,
            checkpoints=checkpoints,
        )
        final = agent.final_evaluation(result, eval_env, cfg.eval_episodes, eval_seed)
    finally:
        logger.close(final_step=agent.num_steps if agent is not None else None)
        env.close()
        eval_env.close()
    metrics = final_metrics(cfg, result, final, time.perf_counter() - wall_start)
    if run_dir is not None:
        if cfg.save_model:
            model = {name: m.state_dict() for name, m in agent.models.items()} | {
                "state_normalizer": agent.batcher.state_normalizer.state_dict(),
                "reward_scaler": agent.batcher.reward_scaler.state_dict(),
            }
            write_atomically(run_dir / "model.pt", lambda f: torch.save(model, f))
        text = (json.dumps(metrics, indent=2) + "\n").encode()
        write_atomically(run_dir / "metrics.json", lambda f: f.write(text))
    if result.interrupted:
        console.print(
            f"[bold yellow]interrupted[/bold yellow] by {result.interrupted} after "
            f"{metrics['env_steps']} env steps"
        )
        if checkpoints is not None:
            console.print(f"checkpoint saved: {shown_path(checkpoints.last)}")
            console.print(
                f"resume with: [bold]torchrl train resume={shlex.quote(shown_path(run_dir))}"
                "[/bold]",
                soft_wrap=True,
            )
        return metrics
    console.print(
        f"[bold green]final evaluation[/bold green]: mean return "
        f"{metrics['mean_return']:.2f} ± {metrics['std_return']:.2f} over "
        f"{metrics['episodes']} episodes after {metrics['env_steps']} env steps "
        f"({metrics['train_seconds']:.1f} s of training)"
    )
    return metrics


def restore(agent: PGAgent, cfg: DictConfig, resume: tuple[Path, dict], console: Console) -> None:
    """Load a checkpoint into a freshly built agent, after checking that it fits."""
    path, state = resume  # from load_run, which checked that it belongs to this run's env
    exact = agent.load_state_dict(state["agent"], seed=cfg.seed, source=path)
    console.print(
        f"resumed from {shown_path(path)} at {agent.num_steps} env steps, "
        f"iteration {agent.num_iters}"
    )
    if not exact:
        console.print(
            f"[yellow]warning[/yellow]: {agent.batcher.env.state_holder} envs cannot be restored "
            "mid-episode; their episodes in progress were restarted"
        )


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when below it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def final_metrics(
    cfg: DictConfig, result: TrainResult, final: Evaluation | None, wall: float
) -> dict:
    """metrics.json: the final evaluation (null when training was interrupted), budgets spent,
    timings, and every evaluation on the way."""
    solved = result.solved
    return {
        "agent": cfg.agent.name,
        "env": cfg.env.id,
        "seed": cfg.seed,
        "mean_return": final and final.mean,
        "std_return": final and final.std,
        "episodes": final and len(final.returns),
        "returns": final and final.returns,
        "interrupted": result.interrupted,
        "env_steps": result.env_steps,
        "iterations": result.iterations,
        "train_seconds": result.train_seconds,
        "wall_seconds": wall,
        "target_return": cfg.target_return,
        "solved": None
        if solved is None
        else {
            "env_steps": solved.env_steps,
            "train_seconds": solved.train_seconds,
            "mean_return": solved.mean,
        },
        "evaluations": [
            {"env_steps": e.env_steps, "train_seconds": e.train_seconds, "mean_return": e.mean}
            for e in result.evaluations
        ],
    }


def train_seeds(cfg: DictConfig, run_dir: Path, console: Console | None = None) -> dict:
    """Train every seed of ``cfg.seeds`` in turn (run folders ``seed_<s>/``); the job's metrics
    are the means across seeds, so that a tuning objective is not fooled by one lucky seed."""
    per_seed = []
    for seed in cfg.seeds:
        seed_cfg = cfg.copy()
        with open_dict(seed_cfg):
            seed_cfg.seed, seed_cfg.seeds = seed, None
        (run_dir / f"seed_{seed}").mkdir()
        per_seed.append(train(seed_cfg, run_dir / f"seed_{seed}", console))
        if per_seed[-1]["interrupted"]:
            break
    interrupted = next((m["interrupted"] for m in per_seed if m["interrupted"]), None)
    # an interrupted job has no result: a mean over the seeds that happened to finish would mislead
    finals = [] if interrupted else [m["mean_return"] for m in per_seed]
    metrics = {
        "agent": cfg.agent.name,
        "env": cfg.env.id,
        "seeds": [m["seed"] for m in per_seed],
        "mean_return": float(np.mean(finals)) if finals else None,
        "std_return": float(np.std(finals)) if finals else None,
        "env_steps": float(np.mean([m["env_steps"] for m in per_seed])),
        "wall_seconds": float(np.sum([m["wall_seconds"] for m in per_seed])),
        "interrupted": interrupted,
        "per_seed": per_seed,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
