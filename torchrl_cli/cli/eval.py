"""``torchrl eval <run folder>``: replay a checkpoint's policy, as a table, a video or a window."""

import itertools
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from torchrl_cli.agents.evaluation import EVAL_SEED_OFFSET, CappedEnv, run_episodes
from torchrl_cli.cli.usage import EVAL, wants_help
from torchrl_cli.errors import ConfigError
from torchrl_cli.run.checkpoint import refuse_symlink
from torchrl_cli.run.folder import open_run
from torchrl_cli.tracking.console import make_console

OPTIONS = EVAL.types()
VIDEO_DIR = "videos"


def eval_command(args: list[str], console: Console | None = None) -> int:
    from torchrl_cli.envs.factory import build_env
    from torchrl_cli.run.policy import policy_from_checkpoint

    if wants_help(args):
        print(EVAL.help())
        return 0
    console = console or make_console()
    run_dir, options, cfg, checkpoint = open_run("eval", args, OPTIONS)
    path = checkpoint.path
    episodes = options.get("episodes", cfg.eval_episodes)
    if episodes < 1:
        raise ConfigError(f"episodes={episodes} must be at least 1")
    seed = options.get("seed", cfg.seed + EVAL_SEED_OFFSET)  # the final evaluation's seeds
    video, render = options.get("video", False), options.get("render", False)
    if video and render:
        raise ConfigError(
            "video=true records frames the env renders off screen, and render=true shows them "
            "in a window instead; choose one"
        )
    if render:
        check_display()
    policy = policy_from_checkpoint(cfg, checkpoint)
    from torchrl_cli.envs.pettingzoo_env import is_pettingzoo, render_modes

    agents_env = is_pettingzoo(cfg.env.id)
    if video and agents_env:
        modes = render_modes(cfg.env.id, dict(cfg.env.kwargs))
        if "rgb_array" not in modes:
            raise ConfigError(
                "video=true records the frames an env renders as rgb_array, and the "
                f"PettingZoo env {cfg.env.id} renders {', '.join(modes) or 'none'} (its "
                "metadata's render_modes); drop video=true"
            )
    env_cfg, video_dir = cfg.env.copy(), None
    if video or render:
        env_cfg.kwargs = {**env_cfg.kwargs, "render_mode": "human" if render else "rgb_array"}
        env_cfg.vectorization = "sync"  # copies must be made in order: each records its own
    if video:
        check_video_support()
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # rgb_array frames need no window
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        video_dir = make_video_dir(run_dir / VIDEO_DIR, f"{path.stem}_{stamp}")
    with warnings.catch_warnings():  # each copy's recorder finds the folder of the one before
        warnings.filterwarnings("ignore", message=".*Overwriting existing videos")
        extra = [recorder(video_dir, agents_env)] if video else []
        env = CappedEnv(
            build_env(
                env_cfg, episodes, evaluation=True, extra_wrappers=extra, agent_cfg=cfg.agent
            ),
            cfg.eval_max_episode_steps,
            lambda text: console.print(f"[yellow]warning[/yellow]: {text}", markup=True),
        )
    try:
        checkpoint.check_env(env.get_state_info(), env.get_action_info())
        console.print(
            f"[bold]torchrl eval[/bold] {cfg.agent.name} on {cfg.env.id}: {path.name} "
            f"({checkpoint.env_steps} env steps), {episodes} deterministic episodes, seed {seed}"
        )
        agents = env.n_agents  # many agents: every agent of each episode's copy
        with episode_progress(console, episodes * agents) as on_progress:
            returns, lengths = run_episodes(
                policy, env, episodes * agents, seed, on_progress=on_progress
            )
    finally:
        env.close()
    console.print(results_table(returns, lengths, agents))
    if video_dir is not None:
        videos = name_videos(video_dir)
        console.print(f"{len(videos)} videos in {video_dir}")
    return 0


@contextmanager
def episode_progress(console: Console, episodes: int) -> Iterator[Callable[[int, int], None]]:
    """On a terminal, a transient bar of the finished episodes and the steps taken (episodes
    that all end together still show it moving); ``run_episodes``' ``on_progress`` callback
    (elsewhere it does nothing: the header line says what runs)."""
    if not console.is_terminal:
        yield lambda done, steps: None
        return
    with Progress(
        TextColumn("evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("episodes, step {task.fields[steps]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("evaluating", total=episodes, steps=0)
        yield lambda done, steps: progress.update(task, completed=done, steps=steps)


def results_table(returns: list[float], lengths: list[int], agents: int = 1) -> Table:
    """One row per statistic, like the training tables: eight columns side by side would be cut
    to fit an 80-column console (a return of -1051.28 printed as -1051.…). With many
    ``agents``, ``returns`` holds each agent's of each episode (copy-major): the statistics are
    over agents' returns, the team return (each episode's sum over its agents) beside them."""
    table = Table(title="returns" if agents == 1 else "returns per agent")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    r, n = np.asarray(returns), np.asarray(lengths)
    team = [] if agents == 1 else [("team mean", f"{r.reshape(-1, agents).sum(1).mean():.2f}")]
    for name, value in (
        ("episodes", str(len(r) // agents)),
        *([("agents", str(agents))] if agents > 1 else []),
        ("mean", f"{r.mean():.2f}"),
        *team,
        ("std", f"{r.std():.2f}"),
        ("min", f"{r.min():.2f}"),
        ("max", f"{r.max():.2f}"),
        ("mean length", f"{n.mean():.1f}"),
        ("min length", str(n.min())),
        ("max length", str(n.max())),
    ):
        table.add_row(name, value)
    return table


def make_video_dir(videos: Path, name: str) -> Path:
    """``videos/<name>/``, made here: neither folder may be a symlink (the recorder would
    write its files wherever it points)."""
    for folder in (videos, videos / name):
        refuse_symlink(folder)
        try:
            folder.mkdir(exist_ok=folder == videos)
        except OSError as err:
            raise ConfigError(f"cannot make {folder} ({err.strerror}); remove it") from None
        if not folder.is_dir() or folder.is_symlink():
            raise ConfigError(f"{folder} is not a folder; remove it")
    return videos / name


def recorder(video_dir: Path, agents_env: bool = False):
    """A wrapper factory giving copy ``i`` (made in order, sync) a RecordVideo of its first
    episode, the one the evaluation counts; for a PettingZoo env (``agents_env``) a
    ``ParallelRecorder``, which writes the same file."""
    index = itertools.count()
    if agents_env:
        from torchrl_cli.envs.parallel_video import ParallelRecorder

        return lambda env: ParallelRecorder(env, video_dir, f"copy{next(index)}")

    def wrap(env: gym.Env) -> gym.Env:
        return gym.wrappers.RecordVideo(
            env,
            str(video_dir),
            episode_trigger=lambda episode: episode == 0,
            name_prefix=f"copy{next(index)}",
            disable_logger=True,
        )

    return wrap


def name_videos(video_dir: Path) -> list[Path]:
    """``copy<i>-episode-0.mp4`` to ``episode_<i>.mp4``."""
    videos = []
    for path in sorted(video_dir.glob("copy*-episode-0.mp4")):
        i = int(path.name.removeprefix("copy").split("-", 1)[0])
        videos.append(path.rename(video_dir / f"episode_{i:03d}.mp4"))
    return sorted(videos)


def check_display() -> None:
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise ConfigError(
            "render=true needs a display, and none is set (DISPLAY is empty); "
            "record a video instead: video=true"
        )


def check_video_support() -> None:
    try:
        import moviepy  # noqa: F401  RecordVideo writes MP4 files with it
    except ImportError:
        raise ConfigError("video=true needs moviepy: pip install 'torchrl-cli[video]'") from None
