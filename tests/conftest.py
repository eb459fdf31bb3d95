"""Shared fixtures: compose the real config through Hydra, shrunk for fast tests."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

# the suite runs a test per core (make test: pytest -n 2); runs whose threads are chosen per
# net (torch_threads=null) take one each then, in this process and in the CLI's subprocesses
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from torchrl_cli.backends.numpy_step import NumpyStepper
from torchrl_cli.backends.torch_step import TorchStepper
from torchrl_cli.config import CONFIG_NAME, config_dir, register_configs
from torchrl_cli.envs.factory import build_env
from torchrl_cli.rollout.actor import TorchActor
from torchrl_cli.rollout.minibatches import Shuffled
from torchrl_cli.rollout.update import run_epochs
from torchrl_cli.run.build import build_agent, build_schedule
from torchrl_cli.tracking.logger import Logger

REPO = Path(__file__).resolve().parents[1]
#: the tests' own env modules (a user's modules would be on PYTHONPATH): importable in-process
ENVMODS = Path(__file__).resolve().parent / "envmods"
if str(ENVMODS) not in sys.path:
    sys.path.insert(0, str(ENVMODS))
TIMEOUT = 120  # seconds for one command; a tiny run takes a few
needs_envpool = pytest.mark.skipif(
    importlib.util.find_spec("envpool") is None, reason="envpool is not installed"
)
THETA_LIMIT, X_LIMIT = 12 * 2 * np.pi / 360, 2.4  # CartPole's termination bounds


def balance(obs: np.ndarray) -> np.ndarray:
    """A hand-made CartPole controller that holds the pole for the whole 500 steps."""
    return ((obs[:, 2] + 0.5 * obs[:, 3] + 0.01 * obs[:, 0] + 0.1 * obs[:, 1]) > 0).astype(np.int64)
# A tiny run: a few hundred env steps, no progress bar, one short final evaluation.
TINY = ["max_steps=256", "agent.n_steps=32", "env.n_envs=2", "eval_freq=0", "eval_episodes=2",
        "logger.progress=false", "agent.num_epochs=1", "agent.num_mini_batches=2"]


# a short finished run with checkpoints (``finished_run``), for tests that damage a copy of it
RUN = [*TINY, "checkpoint_freq=128", "max_steps=512"]


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The config ``torchrl train <overrides>`` composes (without Hydra's run-time node)."""
    register_configs(overrides or [])
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose(CONFIG_NAME, overrides=overrides or [])


def make_agent(overrides: list[str] | DictConfig, n_envs: int | None = None, seed: int | None = 0,
               env=None):
    """``(agent, env)``: the agent ``build_agent`` makes on CPU with a silent Logger, its
    schedule set from the config (so that ``agent.step()`` can run outside ``train``).

    ``overrides`` are composed with ``compose_config`` (or are an already composed config);
    ``seed`` seeds torch first (None: leave the RNG as it is); the env is ``env`` if given,
    else ``build_env(cfg.env, n_envs)`` (default ``cfg.env.n_envs``), closed here if the agent
    fails to build.
    """
    cfg = overrides if isinstance(overrides, DictConfig) else compose_config(overrides)
    if seed is not None:
        torch.manual_seed(seed)
    own_env = env is None
    if own_env:
        env = build_env(cfg.env, cfg.env.n_envs if n_envs is None else n_envs,
                        agent_cfg=cfg.agent)
    try:
        logger = Logger(None, progress=False, histograms=False,
                        mode="full", table_every_s=0.0)
        agent = build_agent(cfg, env, torch.device("cpu"), logger)
        agent.schedule = build_schedule(cfg)
        return agent, env
    except BaseException:
        if own_env:
            env.close()
        raise


def fit(kind: str, models: dict, batch, num_epochs: int, num_mini_batches: int,
        normalize_advantages: bool, refresh=None) -> dict:
    """One update pass of ``models`` by the update driver with the ``kind`` backend's step
    (``torch`` or ``numpy``), as ``PGAgent.update`` runs it."""
    stepper = NumpyStepper(models) if kind == "numpy" else TorchStepper(models)
    with stepper:
        return run_epochs(models, batch, num_epochs, Shuffled(num_mini_batches), stepper,
                          normalize_advantages=normalize_advantages, refresh=refresh)


def act_in_torch(agent) -> None:
    """Make ``agent``'s collector act with the reference ``TorchActor`` (same normalizer and
    acting stream)."""
    actor = agent.collector.actor
    agent.collector.actor = TorchActor(agent.policy_model, actor.normalizer, actor.rng,
                                       agent.collector.device)


@pytest.fixture
def compose_cfg():
    return compose_config


@pytest.fixture(scope="session")
def torchrl_bin() -> str:
    """The installed ``torchrl`` console script of this interpreter's environment."""
    path = Path(sys.executable).parent / "torchrl"
    return str(path) if path.exists() else shutil.which("torchrl")


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory) -> dict:
    """Environment for CLI subprocesses: no colors, a wide console, unbuffered output, and a
    cache folder of the session's (shell completion's answers), not the user's."""
    env = dict(os.environ)
    env.update({"NO_COLOR": "1", "COLUMNS": "120", "PYTHONUNBUFFERED": "1", "TERM": "dumb",
                "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))})
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def torchrl(binary: str, args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Run ``torchrl <args>`` to completion and capture its output."""
    return subprocess.run([binary, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def assert_no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2, nothing on stdout, one ``torchrl: error:`` line holding every needle."""
    assert_no_traceback(proc)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("torchrl: error: ")
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One short finished CartPole run (``RUN``) with checkpoints, built in-process, once per
    test module."""
    from torchrl_cli.run.train import train

    folder = tmp_path_factory.mktemp("finished") / "run"
    train(compose_config(RUN), run_dir=folder)
    return folder


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A copy of ``finished_run`` for a test to change."""
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder, symlinks=True)
    return folder
