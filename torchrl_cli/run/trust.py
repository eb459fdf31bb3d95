"""A run folder is data, not code: the ``_target_`` nodes of a config read back from a run
folder (eval, export, resume, load_policy) are built, and the modules it names are imported,
only when one rule permits them.

The rule, for every module a run folder names (a ``_target_``'s, ``env.imports``, the module
of ``env.id=<module>:<EnvId>``):

- Python's standard library and builtins are never imported or built from a run folder
  (``os.system``, ``builtins.exec``, ``this``), whatever ``trust=`` says; nor are private
  modules (``pkg.__main__`` runs a program when imported);
- a ``_target_`` is permitted without asking when the object it resolves to (as Hydra resolves
  it, aliases followed) is of the right kind — a ``torch.nn`` layer, a ``torch.optim``
  optimizer, this package's networks, models and estimators, a Gymnasium wrapper that writes
  no files and opens no window — and is defined in this package, ``torch.nn``, ``torch.optim``,
  ``gymnasium.wrappers`` or the env's own modules (``env.imports``, the module of ``env.id``);
  the decision is by the object, never by the dotted name alone
  (``gymnasium.wrappers.rendering.RecordVideo`` is ``RecordVideo``);
- ``env.imports`` and the module of ``env.id`` are the env itself: imported (they register
  the id the run trained on);
- anything else needs the user's word: ``trust=<module>[,<module>...]`` on the command line or
  ``trust=[...]`` in ``load_policy``, naming the modules they vouch for.
"""

import sys
from collections.abc import Iterable, Iterator

import gymnasium as gym
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from torchrl_cli.envs.pettingzoo_env import PREFIX as PETTINGZOO
from torchrl_cli.errors import ConfigError

ALLOWED_PREFIXES = ("torchrl_cli.", "torch.nn.", "torch.optim.", "gymnasium.wrappers.")


def refused_classes() -> tuple[type, ...]:
    """Gymnasium wrappers that write files or open windows (a path in the config would choose
    where), or that the tool applies itself: refused whatever name reaches them."""
    wrappers = gym.wrappers
    return (wrappers.RecordVideo, wrappers.RecordEpisodeStatistics, wrappers.HumanRendering)


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


def under(name: str, prefixes: Iterable[str]) -> bool:
    """Whether the dotted ``name`` is one of ``prefixes`` or inside one (``my_pkg`` covers
    ``my_pkg.wrappers.Clip``, not ``my_pkg2``)."""
    for prefix in prefixes:
        prefix = prefix.rstrip(".")
        if prefix and (name == prefix or name.startswith(prefix + ".")):
            return True
    return False


def never(name: str) -> str | None:
    """Why a run folder may never name module or target ``name`` (None: it may, by the rule)."""
    top = name.split(".", 1)[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "builtins":
        return f"it is in Python's standard library ({top}), which a run folder never names"
    if any(part.startswith("_") for part in name.split(".")):
        return "it is a private module or name (importing one may run a program)"
    return None


def env_modules(cfg: DictConfig) -> list[str]:
    """The modules that make the run's env: ``env.imports`` and the module of ``env.id``."""
    env = cfg.get("env") if isinstance(cfg, DictConfig) else None
    if not isinstance(env, DictConfig):
        return []
    imports = env.get("imports")  # .get: the folder's config may be checked raw
    if imports is None:
        imports = []
    # an empty list is a list too (``or []`` made it a Python list, then the string '[]')
    is_list = isinstance(imports, ListConfig | list)
    modules = [str(m) for m in imports] if is_list else [str(imports)]
    env_id = env.get("id")
    if isinstance(env_id, str) and env_id.startswith(PETTINGZOO):  # the module it imports
        modules.append(env_id[len(PETTINGZOO):])
    elif isinstance(env_id, str) and ":" in env_id:
        modules.append(env_id.rpartition(":")[0])
    return modules


def resolve(target: str):
    """The object Hydra would build for ``target`` (its own lookup, aliases followed); None
    when it cannot be found."""
    from hydra._internal.utils import _locate

    try:
        return _locate(target)
    except Exception:  # ImportError, ValueError, or the module's own failure on import
        return None


def permitted(target: str, own: Iterable[str] = ()) -> bool:
    """Whether ``target`` is one of the kinds a run's config may build without being trusted;
    ``own``: the env's modules, whose wrappers (and env classes) count as the env's."""
    own = tuple(own)
    if never(target) or not (target.startswith(ALLOWED_PREFIXES) or under(target, own)):
        return False
    obj = resolve(target)  # imports only below the prefixes checked above
    if not isinstance(obj, type) or issubclass(obj, refused_classes()):
        return False
    module = getattr(obj, "__module__", "") or ""
    if not (module.startswith(ALLOWED_PREFIXES) or under(module, own)):
        return False  # an alias of a class from elsewhere
    from torchrl_cli.rollout.estimators import GAE, DiscountedReturns, FromAdvantage

    kinds = (torch.nn.Module, torch.optim.Optimizer, gym.Wrapper)
    return issubclass(obj, kinds) or obj in (GAE, DiscountedReturns, FromAdvantage)


def check_targets(cfg: DictConfig, source: str, trust: Iterable[str] = ()) -> None:
    """ConfigError naming the first module or ``_target_`` of ``cfg`` (read from ``source``)
    that the rule (module docstring) does not permit and no ``trust`` prefix covers."""
    trusted = tuple(t for t in trust if t)
    own = env_modules(cfg)
    for module in own:
        reason = never(module)
        if reason is not None:
            raise ConfigError(
                f"{source} asks to import env module '{module}', which a run folder may not "
                f"name: {reason}; remove it from {source}"
            )
    for path, target in targets(cfg):
        reason = never(target)
        if reason is not None:
            raise ConfigError(
                f"{source} asks to build {path}._target_={target}, which a run folder may not "
                f"name: {reason}; remove it from {source}"
            )
        if permitted(target, own) or under(target, trusted):
            continue
        raise ConfigError(
            f"{source} asks to build {path}._target_={target}, which a run folder may not "
            "name (it could run code or write files); if you trust it, add trust="
            f"{target.rpartition('.')[0]} to the command (load_policy(..., trust=[...]))"
        )


def check_no_interpolation(cfg: DictConfig, source: str) -> None:
    """ConfigError naming the first value of a run folder's config that holds ``${``: configs
    are written resolved, so one would be an edit, and resolving it could read a secret
    (``${oc.env:AWS_SECRET_ACCESS_KEY}``) into the run's files and its tracking server."""
    container = OmegaConf.to_container(cfg, resolve=False)
    for key, value in leaves(container):
        if isinstance(value, str) and "${" in value:
            raise ConfigError(
                f"{source} sets {key} to an interpolation ({value[:60]!r}); a run folder's "
                "config is written resolved: restore the value (or give it on the command "
                "line)"
            )


def leaves(node, path: str = "") -> Iterator[tuple[str, object]]:
    """``(dotted key, value)`` of every leaf of a nested dict/list."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from leaves(value, f"{path}[{i}]")
    else:
        yield path, node


def parse_trust(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())
