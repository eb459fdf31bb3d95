"""Checkpoints: the whole training state in one file, written atomically, verified on every
read, read without running code.

A checkpoint holds every model and optimizer state, the normalization statistics, the counters,
the evaluations so far, the random states (python, numpy, torch, each env copy), the config and
the ids of the run's tracked runs (MLflow, W&B: ``tracking.base``; none in older files).
Files live in ``<run>/checkpoints/``: ``step_<env steps>.pt`` (the last ``keep`` of them) and
``best.pt`` (the best evaluation so far). They are written to a temporary file (created
exclusively, never through a symlink) and renamed, so a crash or ``kill -9`` at any moment leaves
every checkpoint whole. Each file is an envelope: the serialized state and its SHA-256, checked
on every load, so flipped bits are found (``torch.load`` does not check the zip's CRCs).
"""

import errno
import hashlib
import io
import os
import pickle
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from torchrl_cli.agents.guard import NonFiniteError, first_non_finite
from torchrl_cli.envs.spaces import SpaceInfo
from torchrl_cli.errors import ConfigError, FaultError, first_line

CHECKPOINT_DIR = "checkpoints"
BEST = "best.pt"
LAST = "last"  # the newest step_<n>.pt, what eval, export and resume read by default
FORMAT = 2  # 2: the state inside a SHA-256-checked envelope
_STEP_FILE = re.compile(r"step_(\d+)\.pt")
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def refuse_symlink(path: Path) -> None:
    """ConfigError when a run-folder entry is a symlink: reading or writing through it would
    reach a file outside the run."""
    if path.is_symlink():
        raise ConfigError(
            f"{path} is a symlink; a run folder's entries must be plain files (remove it)"
        )


class DiskFullError(FaultError):
    """A write failed for want of space (ENOSPC, EDQUOT): every run after it would fail too."""


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(file)`` to a temporary file, flushed to disk, then renamed to ``path``: a crash
    or ``kill -9`` leaves either the old file or the new one, whole. The temporary file is
    created exclusively and never through a symlink (a stale one is removed first); a failed
    write (a full disk) removes it and raises FaultError naming the file and the free space."""
    refuse_symlink(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a kill -9 mid-write, or a planted symlink (not followed)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:.1f} MB free there"
        except OSError:
            free = "free space unknown"
        kind = DiskFullError if err.errno in DISK_FULL else FaultError
        raise kind(f"cannot write {path} ({err.strerror}; {free})") from None


def save_checkpoint(path: Path, state: dict) -> None:
    """``state`` in its envelope: ``{"sha256": digest, "payload": torch.save(state) bytes}``."""
    payload = to_bytes(state)
    envelope = {"sha256": hashlib.sha256(payload).hexdigest(), "payload": payload}
    write_atomically(path, lambda f: f.write(to_bytes(envelope)))


def to_bytes(obj) -> bytes:
    """``torch.save`` into memory: written with a plain ``write``, a full disk is an OSError
    (torch's own file writer reports it as an opaque RuntimeError)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def read_checkpoint(path: Path) -> dict:
    """The state ``save_checkpoint`` wrote, verified against its SHA-256; ConfigError naming the
    problem otherwise. Loaded with ``weights_only=True``: tensors and plain data, no code."""
    if path.is_dir():
        raise ConfigError(f"checkpoint {path} is a folder; name a .pt file")
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    refuse_symlink(path)
    envelope = _unpickle(path.read_bytes(), path)
    if not isinstance(envelope, dict) or set(envelope) != {"sha256", "payload"}:
        raise ConfigError(f"{path} is not a torchrl-cli checkpoint (format {FORMAT})")
    if hashlib.sha256(envelope["payload"]).hexdigest() != envelope["sha256"]:
        raise ConfigError(
            f"checkpoint {path} is corrupted (its SHA-256 does not match its contents); "
            f"{intact_hint(path)}"
        )
    return _unpickle(envelope["payload"], path)


def _unpickle(data: bytes, path: Path):
    with warnings.catch_warnings():  # torch's notes on pickle protocols: the error says it all
        warnings.simplefilter("ignore")
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            # a blocked global (a function to call), or a plain pickle stream (PROTO opcode)
            if "GLOBAL" in str(err) or (data[:1] == b"\x80" and 2 <= data[1:2][0] <= 5):
                raise ConfigError(
                    f"checkpoint {path} holds objects that are not plain tensors; refused, "
                    "since loading it could run code"
                ) from None
            reason = first_line(err, limit=None, empty="unreadable")
        except Exception as err:  # damaged bytes fail anywhere in the unpickler (KeyError, ...)
            reason = first_line(err, limit=None)
    raise ConfigError(
        f"checkpoint {path} is truncated or corrupted ({reason[:120]}); {intact_hint(path)}"
    )


def intact_hint(path: Path) -> str:
    """Where to go instead of a damaged checkpoint: the newest intact one beside it."""
    for other in [*reversed(step_checkpoints(path.parent)), path.parent / BEST]:
        if other == path or not other.is_file():
            continue
        try:
            read_checkpoint(other)
        except ConfigError:
            continue
        return f"the newest intact checkpoint is {other}: use checkpoint={other}"
    return f"no intact checkpoint is left in {path.parent}"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file's contents, read by name: this class alone knows the file's layout.

    ``agent`` is ``BaseAgent.state_dict()``; ``state_info``/``action_info`` describe the spaces
    of the env the run trained on; ``config`` is the run's resolved config as YAML; ``tracking``
    holds each tracking backend's state (``{"mlflow": {"run_id": ...}}``), which a resume reopens.
    """

    path: Path
    config: str
    env_id: str
    state_info: SpaceInfo
    action_info: SpaceInfo
    agent: dict
    tracking: dict

    @property
    def env_steps(self) -> int:
        return self.agent["batcher"]["num_steps"]

    @property
    def train_seconds(self) -> float:
        return self.agent["train_seconds"]

    def model_weights(self, name: str) -> dict:
        """The state dict of the agent's model ``name`` (policy, value)."""
        return self.agent["models"][name]

    @property
    def normalizer_weights(self) -> dict:
        return self.agent["batcher"]["state_normalizer"]

    def check_env(self, state_info: SpaceInfo, action_info: SpaceInfo) -> None:
        """ConfigError unless the env's spaces are the ones this checkpoint was trained on
        (checked before any tensor is loaded: a shape error would say less)."""
        for what, saved, env in (
            ("observation", self.state_info, state_info),
            ("action", self.action_info, action_info),
        ):
            if saved != env:
                raise ConfigError(
                    f"checkpoint {self.path} was trained on {what}s {saved.kind} of shape "
                    f"{saved.shape}, but this env ({self.env_id}) has {env.kind} of shape "
                    f"{env.shape}; pick a checkpoint of a run on this env"
                )


def run_meta(
    config: str, env_id: str, state_info: SpaceInfo, action_info: SpaceInfo, tracking: dict
) -> dict:
    """What every checkpoint of a run carries besides its progress."""
    return {
        "config": config,
        "env_id": env_id,
        "state_info": state_info.to_json(),
        "action_info": action_info.to_json(),
        "tracking": tracking,
    }


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` (tensors and plain data; never runs code)."""
    state = read_checkpoint(path)
    fields = ("config", "env_id", "state_info", "action_info", "agent")
    if not isinstance(state, dict) or state.get("format") != FORMAT or not all(
        key in state for key in fields
    ):
        raise ConfigError(f"{path} is not a torchrl-cli checkpoint (format {FORMAT})")
    return Checkpoint(
        path,
        state["config"],
        state["env_id"],
        SpaceInfo.from_json(state["state_info"]),
        SpaceInfo.from_json(state["action_info"]),
        state["agent"],
        state.get("tracking", {}),  # checkpoints from before tracking backends have none
    )


# what every command reads from a checkpoint's agent state (``BaseAgent.state_dict``)
AGENT_KEYS = {
    "": ("models", "optimizers", "batcher", "num_iters", "train_seconds", "next_eval",
         "best_return", "evaluations", "solved", "rng"),
    "models": ("policy",),
    "batcher": ("num_steps", "state_normalizer"),
}


def check_agent_state(agent, path: Path) -> None:
    """ConfigError naming the first entry the agent state lacks (a forged or foreign file
    that passed its checksum would otherwise fail later with a KeyError)."""
    for parent, keys in AGENT_KEYS.items():
        node = agent if not parent else agent.get(parent) if isinstance(agent, dict) else None
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                name = f"agent.{parent + '.' if parent else ''}{key}"
                raise ConfigError(
                    f"checkpoint {path} lacks {name}: not a whole torchrl-cli checkpoint "
                    f"(forged or from another tool); {intact_hint(path)}"
                )


def step_checkpoints(folder: Path) -> list[Path]:
    """The ``step_<n>.pt`` files in ``folder``, oldest first."""
    found = [
        (int(m.group(1)), p)
        for p in folder.glob("step_*.pt")
        if (m := _STEP_FILE.fullmatch(p.name))
    ]
    return [p for _, p in sorted(found)]


def find_checkpoint(run_dir: Path, which: str = LAST) -> Path:
    """The checkpoint ``which`` names in ``run_dir``: ``last``, ``best`` or a file path."""
    if run_dir.is_file():
        raise ConfigError(
            f"{run_dir} is a file, not a run folder; give the run folder (a checkpoint file "
            "goes in checkpoint=<file>)"
        )
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} does not exist")
    folder = run_dir / CHECKPOINT_DIR
    if which not in (LAST, "best"):
        return Path(which)
    if not folder.is_dir():
        raise ConfigError(
            f"{run_dir} has no {CHECKPOINT_DIR}/ folder: not a torchrl-cli run folder, or a run "
            "stopped before its first checkpoint"
        )
    if which == "best":
        if not (folder / BEST).is_file():
            raise ConfigError(f"{run_dir} has no best checkpoint yet: it has not been evaluated")
        return folder / BEST
    steps = step_checkpoints(folder)
    if not steps:
        raise ConfigError(f"{folder} holds no step_<n>.pt checkpoint yet")
    return steps[-1]


def check_finite(agent_state: dict) -> None:
    """NonFiniteError when a model's weights hold a NaN or an infinity (the guard stops such a
    run first; this keeps a checkpoint from ever being written from them)."""
    for model, weights in agent_state["models"].items():
        # tensors only: a model's extra state (PPO-adaptive's beta) is a dict
        name = first_non_finite({k: v for k, v in weights.items() if isinstance(v, torch.Tensor)})
        if name is not None:
            raise NonFiniteError(f"non-finite weights ({model}.{name}); checkpoint not written")


class Checkpoints:
    """Writes a run's checkpoints: every ``freq`` env steps, at the end, and on each new best
    evaluation; keeps the last ``keep`` step files.

    Parameters:
        folder: ``<run>/checkpoints``.
        freq: env steps between checkpoints (0 or less: only at the end and on a signal).
        keep: how many ``step_<n>.pt`` files to keep.
        meta: what describes the run rather than its progress (config, env id, spaces); stored
            in every file so that each one is usable on its own.
        start_step: the env steps already behind a resumed run.
    """

    def __init__(self, folder: Path, *, freq: int, keep: int, meta: dict, start_step: int = 0):
        self.folder = folder
        self.freq = freq
        self.keep = keep
        self.meta = meta
        self.next_step = start_step + freq if freq > 0 else None
        self.last: Path | None = None
        self.last_step: int | None = None
        refuse_symlink(folder)
        folder.mkdir(exist_ok=True)
        for stale in folder.glob(".*.pt.tmp"):  # a kill -9 mid-write; the run's lock is ours
            stale.unlink()

    def due(self, num_steps: int) -> bool:
        return self.next_step is not None and num_steps >= self.next_step

    def save(self, agent_state: dict, num_steps: int) -> Path:
        check_finite(agent_state)  # rotation must never replace a finite checkpoint by NaNs
        path = self.folder / f"step_{num_steps:09d}.pt"
        save_checkpoint(path, self._state(agent_state))
        self.last, self.last_step = path, num_steps
        if self.next_step is not None:
            while self.next_step <= num_steps:
                self.next_step += self.freq
        for old in step_checkpoints(self.folder)[: -self.keep]:
            old.unlink()
        return path

    def save_best(self, agent_state: dict) -> Path:
        check_finite(agent_state)
        path = self.folder / BEST
        save_checkpoint(path, self._state(agent_state))
        return path

    def _state(self, agent_state: dict) -> dict:
        return {"format": FORMAT, **self.meta, "agent": agent_state}
