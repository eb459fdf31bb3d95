"""A run folder is data, not code: the ``_target_`` nodes of a config read back from a run
folder (eval, export, resume, load_policy) are built only when an allow-list permits them.

Permitted without asking: this package's networks, models and estimators, ``torch.nn``
layers, ``torch.optim`` optimizers and Gymnasium's wrappers (those that write no files) —
each checked by what it is (a class of the right kind), not by its name alone. Anything else
needs the user's word: ``trust=<prefix>[,<prefix>...]`` on the command line or ``trust=[...]``
in ``load_policy``, naming the modules they vouch for.
"""

import importlib
from collections.abc import Iterable, Iterator

import gymnasium as gym
import torch
from omegaconf import DictConfig, ListConfig

from torchrl_cli.errors import ConfigError

ALLOWED_PREFIXES = ("torchrl_cli.", "torch.nn.", "torch.optim.", "gymnasium.wrappers.")
# Gymnasium wrappers that write files of their own (a path in the config would choose where)
REFUSED = ("gymnasium.wrappers.RecordVideo", "gymnasium.wrappers.RecordEpisodeStatistics")


def targets(node, path: str = "") -> Iterator[tuple[str, str]]:
    """``(key path, target)`` of every ``_target_`` in a config, nested ones included."""
    if isinstance(node, DictConfig | dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield path or "<root>", str(value)
            else:
                yield from targets(value, where)
    elif isinstance(node, ListConfig | list | tuple):
        for i, value in enumerate(node):
            yield from targets(value, f"{path}[{i}]")


def permitted(target: str) -> bool:
    """Whether ``target`` is one of the kinds a run's config may build without being trusted."""
    if not target.startswith(ALLOWED_PREFIXES) or target.startswith(REFUSED):
        return False
    module_name, _, attr = target.rpartition(".")
    try:  # importing this package, torch or gymnasium runs no code of the run folder's
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return False
    if not isinstance(obj, type):
        return False
    from torchrl_cli.rollout.estimators import GAE, DiscountedReturns, FromAdvantage

    kinds = (torch.nn.Module, torch.optim.Optimizer, gym.Wrapper)
    return issubclass(obj, kinds) or obj in (GAE, DiscountedReturns, FromAdvantage)


def check_targets(cfg: DictConfig, source: str, trust: Iterable[str] = ()) -> None:
    """ConfigError naming the first ``_target_`` of ``cfg`` (read from ``source``) that is
    neither permitted nor under a trusted prefix."""
    trusted = tuple(t for t in trust if t)
    for path, target in targets(cfg):
        if permitted(target) or (trusted and target.startswith(trusted)):
            continue
        raise ConfigError(
            f"{source} asks to build {path}._target_={target}, which a run folder may not "
            "name (it could run code); if you trust it, add trust="
            f"{target.rpartition('.')[0]} to the command (load_policy(..., trust=[...]))"
        )


def parse_trust(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())
