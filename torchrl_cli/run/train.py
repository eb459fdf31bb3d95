"""``train(cfg)``: one run from a composed config, top to bottom — set up, build, (restore),
train, evaluate, write the outputs. ``train_seeds``: several seeds as one job."""

import re
import shlex
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.markup import escape
from threadpoolctl import threadpool_limits

from torchrl_cli.agents import PGAgent
from torchrl_cli.agents.evaluation import CappedEnv, Evaluation
from torchrl_cli.agents.signals import StopRequests, stop_on_signal
from torchrl_cli.config.compose import drop_foreign_keys
from torchrl_cli.envs.factory import build_env, preset_clash
from torchrl_cli.errors import ConfigError, FaultError, first_line
from torchrl_cli.nn import resolve_net
from torchrl_cli.run.build import (
    build_agent,
    build_schedule,
    check_run,
    choose_threads,
    resolve_device,
    seed_everything,
    shares_body,
)
from torchrl_cli.run.checkpoint import (
    CHECKPOINT_DIR,
    Checkpoint,
    Checkpoints,
    refuse_symlink,
    run_meta,
    step_checkpoints,
    write_atomically,
)
from torchrl_cli.run.folder import (
    CONFIG_FILE,
    check_new_run,
    checkpoint_fits,
    clear_attempt,
    lock_run,
    run_name,
    tracked_run_name,
)
from torchrl_cli.run.outputs import (
    ERROR_FILE,
    METRICS_FILE,
    MODEL_FILE,
    final_metrics,
    report_end,
    shown_path,
    write_metrics,
    write_model,
)
from torchrl_cli.tracking.base import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    TENSORBOARD,
    Tracker,
    backends,
    close_trackers,
    log_files,
    open_trackers,
)
from torchrl_cli.tracking.console import LOG_FILE, RunConsole, make_console
from torchrl_cli.tracking.logger import Logger


def train(
    cfg: DictConfig,
    run_dir: Path | None = None,
    console: Console | None = None,
    resume: Checkpoint | None = None,
    tag: str | None = None,
    restart: bool = False,
    on_evaluation: Callable[[Evaluation], None] | None = None,
) -> dict:
    """Train the agent ``cfg`` describes; returns the final evaluation's metrics.

    ``run_dir`` receives config.yaml, TensorBoard events, checkpoints/, ``model.pt``,
    ``metrics.json`` and ``train.log``, the console's lines (appended to on a resume; None: no
    files). ``resume``: a checkpoint of this run to go on from (it reopens the checkpoint's
    tracked runs). ``tag`` starts every console line (a sweep's job) and turns the progress bar
    off, since parallel jobs share the screen. ``on_evaluation``: handed each scheduled
    evaluation (``BaseAgent.train``; a tuning trial reports it, and is stopped by the exception
    it raises when pruned).
    """
    cfg = drop_foreign_keys(cfg)
    check_run(cfg)
    screen = console or make_console()
    if run_dir is None:
        run_console = RunConsole(screen, tag=tag)
        return _train_handling_signals(cfg, None, run_console, resume, on_evaluation)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume is None and not restart:  # restart: a run that never checkpointed, again
        check_new_run(run_dir)
    with lock_run(run_dir):  # first: a second process is refused before it touches a file
        refuse_symlink(run_dir / LOG_FILE)  # appended to: never through a symlink
        if restart:
            clear_attempt(run_dir)
        config = OmegaConf.to_yaml(cfg, resolve=True).encode()
        write_atomically(run_dir / CONFIG_FILE, lambda f: f.write(config))
        try:  # opened without following a symlink planted since the check
            run_console = RunConsole(screen, run_dir / LOG_FILE, tag=tag)
        except OSError as err:
            raise ConfigError(
                f"cannot open {run_dir / LOG_FILE} ({err.strerror}); a run folder's entries "
                "must be plain files"
            ) from None
        if restart:
            run_console.print(
                f"{escape(str(run_dir))} has no checkpoint yet: starting it again from the "
                "start, in place",
                soft_wrap=True,
            )
        try:
            return _train_handling_signals(cfg, run_dir, run_console, resume, on_evaluation)
        finally:
            run_console.close()


def _train_handling_signals(
    cfg: DictConfig,
    run_dir: Path | None,
    console: RunConsole,
    resume: Checkpoint | None,
    on_evaluation: Callable[[Evaluation], None] | None,
) -> dict:
    """``_train`` with SIGINT and SIGTERM handled from start-up to exit (also when the process
    inherited SIGINT ignored, as ``cmd &`` in a script does), inside the run's tracked runs
    (``logger.backends``), which get the run folder's files and end as the run does."""
    stops = StopRequests()

    def warn(text: str) -> None:
        console.print(f"[yellow]warning[/yellow]: {escape(text)}")

    name = run_name(cfg.agent.name, cfg.env.id) if run_dir is None else tracked_run_name(run_dir)
    with stop_on_signal(stops, grace_s=cfg.stop_grace_s):
        trackers = open_trackers(
            cfg.logger,
            name=name,
            config=OmegaConf.to_container(cfg, resolve=True),
            folder=run_dir,
            previous=resume.tracking if resume else {},
            warn=warn,
        )
        try:
            metrics = _train(cfg, run_dir, console, resume, stops, trackers, on_evaluation)
        except BaseException as err:  # a second Ctrl-C aborts: the run stays resumable
            aborted = isinstance(err, KeyboardInterrupt)
            close_trackers(trackers, INTERRUPTED if aborted else FAILED, warn)
            raise
        if run_dir is not None:
            files = [run_dir / name for name in (CONFIG_FILE, METRICS_FILE, MODEL_FILE)]
            log_files(trackers, [f for f in files if f.is_file()], warn)
        close_trackers(trackers, INTERRUPTED if metrics["interrupted"] else FINISHED, warn)
        return metrics


def _train(
    cfg: DictConfig,
    run_dir: Path | None,
    console: RunConsole,
    resume: Checkpoint | None,
    stops: StopRequests,
    trackers: list[Tracker],
    on_evaluation: Callable[[Evaluation], None] | None,
) -> dict:
    wall_start = time.perf_counter()
    seed_everything(cfg.seed)
    env = build_env(cfg.env, cfg.env.n_envs, agent_cfg=cfg.agent)
    eval_env = CappedEnv(
        build_env(cfg.env, cfg.eval_episodes, evaluation=True, agent_cfg=cfg.agent),
        cfg.eval_max_episode_steps,
        lambda text: console.print(f"[yellow]warning[/yellow]: {escape(text)}", soft_wrap=True),
    )
    device = resolve_device(cfg.device, cfg.net, env.get_state_info())
    net = resolve_net(cfg.net, env.get_state_info())
    threads, why_threads = choose_threads(cfg.torch_threads, net, job=console.tag is not None)
    torch.set_num_threads(threads)
    # numpy's BLAS too (the numpy backend): OpenBLAS would otherwise start one thread per core,
    # which on small matrices costs more than it gives, 5x under contention
    threadpool_limits(threads, user_api="blas")
    net_name = net.name
    if net_name != cfg.net.name:
        net_name = f"{cfg.net.name}: {net_name}"
    logger = Logger(
        run_dir if TENSORBOARD in backends(cfg.logger) else None,
        console=console,
        progress=cfg.logger.progress and console.tag is None,
        histograms=cfg.logger.histograms,
        mode=cfg.logger.console,
        table_every_s=cfg.logger.table_every_s,
        start_step=resume.env_steps if resume else 0,
        start_seconds=resume.train_seconds if resume else 0.0,
        trackers=trackers,
    )
    if not resume:
        logger.add_text("config", "```\n" + OmegaConf.to_yaml(cfg, resolve=True) + "\n```")
    agent = checkpoints = result = None
    try:
        agent = build_agent(cfg, env, device, logger)
        stops.target = agent.request_stop
        if run_dir is not None:
            checkpoints = Checkpoints(
                run_dir / CHECKPOINT_DIR,
                freq=cfg.checkpoint_freq,
                keep=cfg.keep_checkpoints,
                meta=run_meta(
                    OmegaConf.to_yaml(cfg, resolve=True),
                    cfg.env.id,
                    env.get_state_info(),
                    env.get_action_info(),
                    {tracker.name: tracker.state() for tracker in trackers},
                ),
                start_step=resume.env_steps if resume else 0,
            )
        console.print(
            f"[bold]torchrl train[/bold] {cfg.agent.name} on {cfg.env.id} "
            f"({readable(env.simulator)}, {copies_text(env)}{stack_note(cfg)}, "
            f"net {net_name}{memory_note(cfg)}, device {device}, "
            f"seed {cfg.seed})" + (f" -> {run_dir}" if run_dir else "")
        )
        console.print(agent.backend.describe(), soft_wrap=True, markup=False)
        console.print(
            f"observations {observation_text(env.get_state_info())}"
            f"{body_note(agent)}; torch threads {threads} ({why_threads})",
            soft_wrap=True,
            markup=False,
        )
        if (clash := preset_clash(cfg.env)) is not None:
            console.print(f"[yellow]warning[/yellow]: {escape(clash)}", soft_wrap=True)
        if cfg.env.train_max_episode_steps is not None:
            console.print(
                f"training episodes cut at {cfg.env.train_max_episode_steps} steps "
                "(env.train_max_episode_steps); evaluations keep the env's own limit",
                soft_wrap=True,
            )
        for tracker in trackers:
            console.print(tracker.describe(), soft_wrap=True, markup=False)
        if resume:
            resume.check_env(env.get_state_info(), env.get_action_info())
            restore(agent, cfg, resume, console)
        try:
            result = agent.train(
                build_schedule(cfg),
                eval_env=eval_env,
                checkpoints=checkpoints,
                on_evaluation=on_evaluation,
            )
            final = agent.final_evaluation(eval_env)
            if checkpoints is not None and is_new_best(agent, final):
                agent.best_return = final.mean  # best.pt: the best policy, the final one too
                checkpoints.save_best(agent.state_dict())
        except FaultError as err:  # NaN, an env that raised, a full disk: say how to go on
            raise type(err)(f"{err}; {recovery(run_dir, checkpoints)}") from err
    finally:
        logger.close(final_step=agent.num_steps if agent is not None else None, note=_why(result))
        env.close()
        eval_env.close()
    metrics = final_metrics(cfg, result, final, time.perf_counter() - wall_start)
    if run_dir is not None:
        if cfg.save_model:
            write_model(run_dir, agent)
        write_metrics(run_dir, metrics)
        (run_dir / ERROR_FILE).unlink(missing_ok=True)  # an earlier attempt's failure record
    report_end(console, metrics, run_dir, checkpoints)
    return metrics


def is_new_best(agent: PGAgent, final: Evaluation | None) -> bool:
    """Whether the final evaluation is one of its own (not a scheduled one, which was weighed
    for best.pt already) and beats every evaluation before it."""
    scheduled = any(final is e for e in agent.result.evaluations)
    return final is not None and not scheduled and final.mean > agent.best_return


def recovery(run_dir: Path | None, checkpoints: Checkpoints | None) -> str:
    """How to go on after a fault: the last checkpoint written (every one is finite: the
    guard stops a run before its state is saved) and the resume command."""
    saved = step_checkpoints(checkpoints.folder) if checkpoints is not None else []
    if not saved:
        return (
            "no checkpoint was written before it; start it again in place with "
            f"torchrl train resume={shlex.quote(shown_path(run_dir))}"
            if run_dir is not None
            else "no checkpoint was written before it"
        )
    return (
        f"the last checkpoint (finite, like every one) is {shown_path(saved[-1])}; resume from "
        f"it with torchrl train resume={shlex.quote(shown_path(run_dir))} (after fixing the cause)"
    )


def _why(result) -> str:
    """Why training stopped, for the progress bar's last state."""
    if result is None:
        return "failed"
    if result.interrupted:
        return f"interrupted ({result.interrupted})"
    return "target reached" if result.solved is not None else "done"


def restore(agent: PGAgent, cfg: DictConfig, checkpoint: Checkpoint, console: Console) -> None:
    """Load a checkpoint of this run (``load_run`` checked its env) into a freshly built agent."""
    with checkpoint_fits(checkpoint.path):
        try:
            exact = agent.load_state_dict(checkpoint.agent, seed=cfg.seed)
        except (KeyError, TypeError, IndexError, ValueError) as err:  # forged: one line
            raise ConfigError(
                f"checkpoint {checkpoint.path} does not hold what a resume needs "
                f"({type(err).__name__}: {first_line(err)}); pick another checkpoint"
            ) from None
    console.print(
        f"resumed from {shown_path(checkpoint.path)} at {agent.num_steps} env steps, "
        f"iteration {agent.num_iters}"
    )
    if not exact:
        console.print(
            f"[yellow]warning[/yellow]: {readable(agent.collector.env.state_holder)} envs "
            "cannot be restored mid-episode; their episodes in progress were restarted"
        )


def readable(name: str) -> str:
    """A callable's name in place of its repr: an env registered with a class, a function or a
    ``functools.partial`` as its entry point names its simulator ``<class 'pkg.Env'>`` or
    ``functools.partial(<function make at 0x…>, …)``; the banner shows ``pkg.Env``, ``make``."""
    found = re.search(r"<(?:class|function|built-in function|bound method) '?([\w.<>]+)", name)
    return found.group(1).rpartition("<locals>.")[2] if found else name


def copies_text(env) -> str:
    """``8 envs``; with many agents ``8 envs x 3 agents``."""
    if env.n_agents == 1:
        return f"{env.n_envs} envs"
    return f"{env.n_envs // env.n_agents} envs x {env.n_agents} agents"


def train_seeds(
    cfg: DictConfig, run_dir: Path, console: Console | None = None, tag: str | None = None
) -> dict:
    """Train every seed of ``cfg.seeds`` in turn (run folders ``seed_<s>/``); the job's metrics
    are the means across seeds, so that a tuning objective is not fooled by one lucky seed."""
    per_seed = []
    for seed in cfg.seeds:
        seed_cfg = cfg.copy()
        with open_dict(seed_cfg):
            seed_cfg.seed, seed_cfg.seeds = seed, None
        (run_dir / f"seed_{seed}").mkdir()
        seed_tag = f"{tag[:-1]} seed {seed}]" if tag else None
        per_seed.append(train(seed_cfg, run_dir / f"seed_{seed}", console, tag=seed_tag))
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
    write_metrics(run_dir, metrics)  # atomically, never through a symlink
    return metrics


def observation_text(state_info) -> str:
    """``uint8 (4, 84, 84)``: what the network reads, as the env's wrappers leave it."""
    if state_info.structured:
        count = len(state_info.entries)
        entries = f"{count} entr{'y' if count == 1 else 'ies'}"
        return f"of {entries}, encoded to {tuple(state_info.shape)}"
    return f"{np.dtype(state_info.dtype).name} {tuple(state_info.shape)}"


def body_note(agent) -> str:
    """The banner's note of a body that policy and value share (none without)."""
    return ", one body for policy and value" if shares_body(agent.models) else ""


def stack_note(cfg: DictConfig) -> str:
    """The banner's note of ``env.frame_stack`` (none without)."""
    k = cfg.env.frame_stack
    return f" x {k} stacked frames" if k > 1 else ""


def memory_note(cfg: DictConfig) -> str:
    """The banner's note of ``memory`` (none without)."""
    memory = cfg.memory
    if memory.kind == "none":
        return ""
    layers = f" x {memory.num_layers} layers" if memory.num_layers > 1 else ""
    shared = ", one for policy and value" if memory.shared else ""
    return f" + {memory.kind} {memory.hidden_size}{layers}{shared}"
