"""A run folder's config.yaml, brought up to today's schema: named migrations applied in order,
then a merge onto the schema, so that keys the schema gained since take their defaults.

The history of the config's format lives here, not in ``.get(key, default)`` calls spread over
the package. A folder records the format that wrote it (``config_version``); folders from before
that key existed are version 0. A migration is a function of the saved config as a plain dict;
one is added (and ``CONFIG_VERSION`` raised) whenever a key's meaning or a ``_target_`` moves,
never for a key that is only new (the schema's default serves it).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from torchrl_cli.config.schema import CONFIG_VERSION, Config
from torchrl_cli.config.store import AGENT_SCHEMAS
from torchrl_cli.errors import ConfigError


@dataclass(frozen=True)
class Migration:
    """Brings a config of format ``version`` to ``version + 1``: what changed, and when."""

    version: int
    name: str
    apply: Callable[[dict], None]


def rename_targets(old_prefix: str, new_prefix: str) -> Callable[[dict], None]:
    """Rewrite every ``_target_`` under ``old_prefix`` to ``new_prefix``, nested ones too."""

    def apply(node: Any) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if isinstance(target, str) and target.startswith(old_prefix):
                node["_target_"] = new_prefix + target[len(old_prefix) :]
            for value in node.values():
                apply(value)
        elif isinstance(node, list):
            for value in node:
                apply(value)

    return apply


MIGRATIONS = (
    # 2026-12-07, "one loop each": the estimators moved with the collector into rollout/
    Migration(0, "estimators moved to torchrl_cli.rollout", rename_targets(
        "torchrl_cli.agents.estimators.", "torchrl_cli.rollout.estimators.")),
)
assert [m.version for m in MIGRATIONS] == list(range(CONFIG_VERSION)), "one per version, in order"


def upgrade(saved: DictConfig, source: str) -> DictConfig:
    """``saved`` (a run folder's config, read from ``source``) at today's format: the
    migrations from its version on, then merged onto the schema of its agent. A folder the tool
    cannot read is a ConfigError naming the format that wrote it."""
    data = OmegaConf.to_container(saved, resolve=False)
    version = data.pop("config_version", 0)
    if not isinstance(version, int) or not 0 <= version <= CONFIG_VERSION:
        raise ConfigError(
            f"{source} has config_version {version!r}; this torchrl-cli reads versions 0 to "
            f"{CONFIG_VERSION}: use the torchrl-cli release that wrote it"
        )
    for migration in MIGRATIONS[version:]:
        migration.apply(data)
    agent = data.get("agent") if isinstance(data.get("agent"), dict) else {}
    name = agent.get("name")
    if name not in AGENT_SCHEMAS:
        raise ConfigError(
            f"{source} names agent {name!r}, which is none of {', '.join(AGENT_SCHEMAS)} "
            f"(config_version {version}); it was not written by this torchrl-cli"
        )
    schema = OmegaConf.structured(Config)
    schema.agent = OmegaConf.structured(AGENT_SCHEMAS[name])
    OmegaConf.set_struct(schema, False)  # keys a run added with +key=value stay
    try:
        cfg = OmegaConf.merge(schema, data)
    except OmegaConfBaseException as err:
        raise ConfigError(
            f"{source} (config_version {version}) does not fit today's schema: "
            f"{str(err).splitlines()[0]}"
        ) from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{source} lacks {', '.join(missing)}, which have no default")
    cfg.config_version = CONFIG_VERSION
    OmegaConf.set_struct(cfg, True)
    return cfg
