"""Registers the structured schema in Hydra's ConfigStore and finds the shipped ``conf/`` folder."""

from pathlib import Path

import gymnasium as gym
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from torchrl_cli.config.schema import (
    A2CAgentConfig,
    Config,
    PPOAdaptiveAgentConfig,
    PPOClipAgentConfig,
    SurrogatePGAgentConfig,
    VanillaPGAgentConfig,
)

CONFIG_NAME = "config"
SCHEMA_SUFFIX = "_schema"

AGENT_SCHEMAS = {
    "vanilla_pg": VanillaPGAgentConfig,
    "a2c": A2CAgentConfig,
    "surrogate_pg": SurrogatePGAgentConfig,
    "ppo_clip": PPOClipAgentConfig,
    "ppo_adaptive": PPOAdaptiveAgentConfig,
}


def config_dir() -> Path:
    """The ``conf/`` folder: inside the installed wheel, or at the top of a source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "conf"


def env_files() -> set[str]:
    """Env ids that have their own file in ``conf/env/`` (nested ids such as ALE/Pong-v5 too)."""
    root = config_dir() / "env"
    return {str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml")}


_stored_env_ids: set[str] = set()


def register_configs() -> None:
    """Store the schema nodes, and a generic env node for each registered id without a file.

    The generic nodes make ``env=<any registered Gymnasium id>`` work with the schema's defaults.
    Ids registered since the last call (a package imported later) are added on the next call.
    """
    cs = ConfigStore.instance()
    if not _stored_env_ids:
        cs.store(name=f"{CONFIG_NAME}{SCHEMA_SUFFIX}", node=Config)
        for name, node in AGENT_SCHEMAS.items():
            cs.store(group="agent", name=f"{name}{SCHEMA_SUFFIX}", node=node)
        _stored_env_ids.update(env_files())
    for env_id in gym.registry:
        if env_id in _stored_env_ids:
            continue
        _stored_env_ids.add(env_id)
        group, _, name = f"env/{env_id}".rpartition("/")
        cs.store(group=group, name=name, node={"id": env_id})


def load_default(name: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose the named experiment preset (the seed's ``Config.from_default``)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose(CONFIG_NAME, overrides=[f"experiment={name}", *(overrides or [])])
