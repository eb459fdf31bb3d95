"""Registers the structured schema in Hydra's ConfigStore (and the user's config folder on
Hydra's search path) and finds the shipped ``conf/`` folder."""

import re

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from torchrl_cli.config.schema import (
    A2CAgentConfig,
    Config,
    IPPOAgentConfig,
    MAPPOAgentConfig,
    PPOAdaptiveAgentConfig,
    PPOClipAgentConfig,
    SurrogatePGAgentConfig,
    VanillaPGAgentConfig,
)
from torchrl_cli.config.user_dir import find_config, group_files, register_search_path
from torchrl_cli.errors import ConfigError
from torchrl_cli.utils import config_dir

CONFIG_NAME = "config"
SCHEMA_SUFFIX = "_schema"

AGENT_SCHEMAS = {
    "vanilla_pg": VanillaPGAgentConfig,
    "a2c": A2CAgentConfig,
    "surrogate_pg": SurrogatePGAgentConfig,
    "ppo_clip": PPOClipAgentConfig,
    "ppo_adaptive": PPOAdaptiveAgentConfig,
    "ippo": IPPOAgentConfig,
    "mappo": MAPPOAgentConfig,
}


def env_files() -> set[str]:
    """Env ids that have their own file in ``env/`` of conf/ or of the user's config folder
    (nested ids such as ALE/Pong-v5 too)."""
    return set(group_files("env", nested=True))


def tuned_files(agent: str) -> set[str]:
    """Env ids that have a tuned file for ``agent`` in ``tuned/<agent>/`` (either folder)."""
    return set(group_files(f"tuned/{agent}", nested=True))


# The PPO paper used one set of Atari settings for every game: this file's values apply to every
# ALE id without a tuned file of its own.
ATARI_TUNED = ("ppo_clip", "ALE/Pong-v5")
# An ALE env node: the Atari preprocessing with the schema's values, and the Nature CNN.
ATARI_DEFAULTS = [{"override /net@_global_.net": "nature_cnn"}, "_self_"]

_stored_env_ids: set[str] = set()
_schemas_stored: list[bool] = []


def register_configs(overrides: list[str] | tuple = (), quick: bool = False) -> None:
    """Store the schema nodes, and an env node for each id the command line chooses; put the
    user's config folder (``config.user_dir``) on Hydra's search path.

    Only the ids that ``overrides`` name get a node (``env=<id>``, every value of a sweep
    ``env=A,B``, ``hydra.sweeper.params.env=choice(A,B)``): a node per registered Gymnasium id
    made every composition deep-copy hundreds of nodes, and ``--help`` list them all. An id
    without a file of its own gets a generic node (``env=<any registered Gymnasium id>`` works
    with the schema's defaults); ALE ids get the Atari preprocessing, the Nature CNN and the
    Atari tuned values. ``<module>:<EnvId>``, ids of known packages and ids that
    ``env.imports=[...]`` registers get their packages imported first; an id that cannot be
    resolved is left to composition, which reports it (``unknown_env``).

    ``quick`` (shell completion, which only lists keys and options): an id with a file of its
    own is not resolved, since resolving imports the envs and torch (seconds per TAB); all it
    would add is an ALE id's shared Atari tuned values.
    """
    register_search_path()
    cs = ConfigStore.instance()
    if not _schemas_stored:
        _schemas_stored.append(True)
        cs.store(name=f"{CONFIG_NAME}{SCHEMA_SUFFIX}", node=Config)
        for name, node in AGENT_SCHEMAS.items():
            cs.store(group="agent", name=f"{name}{SCHEMA_SUFFIX}", node=node)
    choices = [e for e in env_choices(overrides) if e not in _stored_env_ids]
    if quick:
        choices = [e for e in choices if e not in env_files()]
    if not choices:
        return
    # the envs (and torch, which they import) only when an env is to be resolved
    from torchrl_cli.envs.atari import is_atari
    from torchrl_cli.envs.registry import resolve_env_id

    with_file = env_files()
    atari_agent, atari_file = ATARI_TUNED
    for env_id in choices:
        try:
            resolved = resolve_env_id(env_id, env_imports(overrides))
        except ConfigError:
            continue
        _stored_env_ids.add(env_id)
        atari = ":" not in env_id and is_atari(resolved)
        if atari and env_id not in tuned_files(atari_agent):
            tuned = OmegaConf.load(find_config(f"tuned/{atari_agent}/{atari_file}.yaml"))
            tuned_group, _, tuned_name = f"tuned/{atari_agent}/{env_id}".rpartition("/")
            cs.store(group=tuned_group, name=tuned_name, node=tuned, package="_global_")
        if env_id in with_file:
            continue
        group, _, name = f"env/{env_id}".rpartition("/")
        node = {"defaults": ATARI_DEFAULTS, "id": env_id, "atari": {}} if atari else {"id": env_id}
        cs.store(group=group, name=name, node=node)


def env_choices(overrides) -> list[str]:
    """The env ids that ``env=...`` overrides choose (every value of a sweep), unescaped."""
    found = []
    for override in overrides:
        key, sep, value = str(override).partition("=")
        key = key.lstrip("+")
        if sep and value and (key == "env" or key.endswith("sweeper.params.env")):
            value = re.sub(r"^\s*choice\((.*)\)\s*$", r"\1", value)
            # a sweep's values come back escaped (Hydra writes module:EnvId as module\:EnvId)
            found += [re.sub(r"\\(.)", r"\1", v.strip().strip("'\"")) for v in value.split(",")]
    return found


def env_imports(overrides) -> list[str]:
    """The packages an ``env.imports=[a,b]`` override names."""
    for override in reversed(list(overrides)):
        key, sep, value = str(override).partition("=")
        if sep and key.lstrip("+") == "env.imports":
            return [v.strip().strip("'\"") for v in value.strip("[]").split(",") if v.strip()]
    return []


def load_default(name: str, overrides: list[str] | None = None) -> DictConfig:
    """The config of the experiment preset ``conf/experiment/<name>.yaml``, composed as
    ``torchrl train experiment=<name> <overrides>`` composes it (``overrides``: ``key=value``
    strings)."""
    from hydra import compose, initialize_config_dir

    register_configs(overrides or [])
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose(CONFIG_NAME, overrides=[f"experiment={name}", *(overrides or [])])
