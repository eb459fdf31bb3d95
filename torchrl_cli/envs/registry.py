"""Gymnasium ids from anywhere: the packages that register them, imported when needed.

An env id reaches Gymnasium's registry in one of these ways, tried in order by
``resolve_env_id``:

- ``env.imports=[pkg, ...]``: packages imported first (each registers its ids on import);
- ``<module>:<EnvId>`` (Gymnasium's convention): the module is imported, then ``EnvId`` must be
  an id it registered, or a ``gymnasium.Env`` class it defines (registered here under its name);
- an id that a well-known package registers on import (``KNOWN_PACKAGES``, by id prefix:
  minigrid's ``MiniGrid-*``, ale-py's ``ALE/*``, ...), imported when installed;
- packages that declare a ``gymnasium.envs`` entry point (Gymnasium 1.x no longer loads them
  itself), loaded once when an id is still unknown.

A module that cannot be imported, or that registers no such id, is a one-line ConfigError.
"""

import importlib
import importlib.metadata
import importlib.util
import inspect

import gymnasium as gym

from torchrl_cli.envs.partial import register_partial_envs
from torchrl_cli.envs.pettingzoo_env import is_pettingzoo, load_module
from torchrl_cli.errors import ConfigError, did_you_mean

ALE_NAMESPACE = "ALE/"
ATARI_HINT = "pip install 'torchrl-cli[atari]'"
ENTRY_POINT_GROUP = "gymnasium.envs"

# (id prefix, module that registers it on import, what to pip install)
KNOWN_PACKAGES = (
    (ALE_NAMESPACE, "ale_py", "'torchrl-cli[atari]'"),
    ("MiniGrid-", "minigrid", "minigrid"),
    ("BabyAI-", "minigrid", "minigrid"),
    ("MiniWorld-", "miniworld", "miniworld"),
    *(
        (f"{name}-v", "highway_env", "highway-env")
        for name in (
            "highway", "highway-fast", "merge", "roundabout", "parking", "intersection",
            "racetrack", "exit", "u-turn", "two-way", "lane-keeping",
        )
    ),
    *(
        (prefix, "gymnasium_robotics", "gymnasium-robotics")
        for prefix in (
            "Fetch", "HandManipulate", "HandReach", "AdroitHand", "PointMaze_", "AntMaze_",
            "FrankaKitchen",
        )
    ),
    ("dm_control/", "shimmy", "'shimmy[dm-control]'"),
    ("Safety", "safety_gymnasium", "safety-gymnasium"),
    ("Panda", "panda_gym", "panda-gym"),
    ("mo-", "mo_gymnasium", "mo-gymnasium"),
)

register_partial_envs()  # CartPoleNoVel-v1 and the other partially observed ids

# ids each module registered when this process imported it (for "did you mean")
_registered_by: dict[str, set[str]] = {}
_entry_points_loaded = False


def register_ale() -> bool:
    """Register ALE's ids (ale-py does it on import); False when ale-py is not installed."""
    try:
        import ale_py
    except ImportError:
        return False
    gym.register_envs(ale_py)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no banner on every env made
    return True


def split_env_id(env_id: str) -> tuple[str | None, str]:
    """``<module>:<EnvId>`` as ``(module, EnvId)``; a plain id as ``(None, id)``."""
    module, sep, name = env_id.rpartition(":")
    return (module, name) if sep else (None, env_id)


def import_env_module(module: str, env_id: str):
    """Import ``module`` (which registers ids), remembering which ids it added; one-line
    ConfigError naming the module and its own error's first line when it fails."""
    before = set(gym.registry)
    try:
        mod = importlib.import_module(module)
    except Exception as err:
        first = (str(err).splitlines() or [""])[0]
        raise ConfigError(
            f"env '{env_id}': cannot import module '{module}' ({type(err).__name__}: {first}); "
            "check that it is installed or on PYTHONPATH"
        ) from None
    added = set(gym.registry) - before
    if added or module not in _registered_by:
        _registered_by.setdefault(module, set()).update(added)
    return mod


def resolve_env_id(env_id: str, imports=()) -> str:
    """The registered Gymnasium id that ``env_id`` names, after importing what registers it
    (see the module docstring); ConfigError when nothing does."""
    if is_pettingzoo(env_id):  # many agents: a PettingZoo module, not a Gymnasium id
        load_module(env_id)
        return env_id
    for module in imports or ():
        import_env_module(str(module), env_id)
    module, name = split_env_id(env_id)
    if module is not None:
        return _from_module(module, name, env_id)
    if env_id in gym.registry:
        return env_id
    missing = missing_package(env_id)
    if missing is not None:
        raise ConfigError(f"env '{env_id}': {missing}")
    known = known_package(env_id)
    if known is not None:
        package, pip_name = known
        if importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"env '{env_id}': {package} registers it, and {package} is not installed; "
                f"pip install {pip_name}"
            )
        if package == "ale_py":
            register_ale()
        else:
            import_env_module(package, env_id)
        if env_id in gym.registry:
            return env_id
        close = did_you_mean(env_id, _registered_by.get(package) or gym.registry.keys())
        raise ConfigError(
            f"unknown env '{env_id}': {package} registers no such id{close}; "
            "`torchrl configs` lists the envs"
        )
    load_entry_points()
    if env_id in gym.registry:
        return env_id
    raise ConfigError(
        f"unknown env '{env_id}': not a registered Gymnasium id"
        f"{did_you_mean(env_id, gym.registry.keys())}; `torchrl configs` lists the envs "
        "(an id from another package: env=<module>:<EnvId> or env.imports=[<package>])"
    )


def _from_module(module: str, name: str, env_id: str) -> str:
    mod = import_env_module(module, env_id)
    if name in gym.registry:
        return name
    obj = getattr(mod, name, None)
    if inspect.isclass(obj) and issubclass(obj, gym.Env):
        gym.register(id=name, entry_point=f"{module}:{name}")
        return name
    own = _registered_by.get(module) or {
        i for i, spec in gym.registry.items() if str(spec.entry_point).startswith(module)
    }
    hint = did_you_mean(name, own) or (
        f" (it registers {', '.join(sorted(own)[:5])}{', ...' if len(own) > 5 else ''})"
        if own
        else " (it registers no ids at all)"
    )
    raise ConfigError(
        f"env '{env_id}': module '{module}' registers no env '{name}' and defines no "
        f"gymnasium.Env class of that name{hint}; name one of its ids or classes"
    )


def known_package(env_id: str) -> tuple[str, str] | None:
    """``(module, pip name)`` of the well-known package that registers ``env_id``, if any."""
    for prefix, module, pip_name in KNOWN_PACKAGES:
        if env_id.startswith(prefix):
            return module, pip_name
    return None


def load_entry_points() -> None:
    """Run every ``gymnasium.envs`` entry point once (each registers its package's ids), as
    Gymnasium before 1.0 did at import; a broken plugin is skipped."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for plugin in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = plugin.load()
            if plugin.attr is not None and callable(obj):
                if plugin.name in ("__root__", "__internal__"):
                    obj()
                else:
                    with gym.envs.registration.namespace(plugin.name):
                        obj()
        except Exception:  # noqa: S112  a broken plugin must not break other envs
            continue


def missing_package(env_id: str) -> str | None:
    """For an id that only an uninstalled package would register: what is missing and the fix."""
    if env_id.startswith(ALE_NAMESPACE) and not register_ale():
        return f"Atari envs need ale-py, which is not installed; {ATARI_HINT}"
    return None
