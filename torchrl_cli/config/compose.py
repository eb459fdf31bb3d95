"""Compose the config for a command line and turn Hydra's errors into one-line messages.

The CLI calls ``check_overrides`` before handing the command line to Hydra, so that bad input
fails with a clear message and exit code 2 before any run folder is created.
"""

import copy
import inspect
from collections.abc import Callable

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException, OverrideParseException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from torchrl_cli.config import CONFIG_NAME, config_dir, register_configs
from torchrl_cli.config.store import SCHEMA_SUFFIX, env_imports
from torchrl_cli.errors import ConfigError, did_you_mean

# Config-group nodes that are built from their ``_target_``, whose options take different
# arguments (GAE takes gae_lambda, DiscountedReturns does not). A file applied after the group's
# option (a tuned pair, an experiment) may set a key for the default option; when another option
# is chosen, that key is dropped rather than handed to a target that does not take it.
TARGET_GROUP_NODES = ("agent.advantage",)
# hydra/launcher options that a plugin stores (the shipped presets build on them) -> the extra
# that installs the plugin
LAUNCHER_EXTRAS = {"joblib": "sweep", "ray": "ray", "submitit_slurm": "slurm",
                   "submitit_local": "slurm"}


def foreign_keys(cfg: DictConfig) -> dict[str, list[str]]:
    """Keys of each of ``TARGET_GROUP_NODES`` that its ``_target_`` does not take."""
    found = {}
    for path in TARGET_GROUP_NODES:
        node = OmegaConf.select(cfg, path, throw_on_missing=False)
        if not isinstance(node, DictConfig) or not isinstance(node.get("_target_"), str):
            continue
        try:
            params = inspect.signature(get_object(node._target_)).parameters
        except Exception:  # an unknown target: building it reports that
            continue
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        extra = [str(k) for k in node if not str(k).startswith("_") and k not in params]
        if extra:
            found[path] = extra
    return found


def drop_foreign_keys(cfg: DictConfig) -> DictConfig:
    """``cfg`` without the keys ``foreign_keys`` finds (a copy; ``cfg`` itself when none)."""
    foreign = foreign_keys(cfg)
    if not foreign:
        return cfg
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        for path, keys in foreign.items():
            node = OmegaConf.select(cfg, path)
            for key in keys:
                node.pop(key)
    return cfg


def _check_foreign_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """A key the chosen option does not take, set on the command line: one-line error."""
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    for path, keys in foreign_keys(cfg).items():
        for key in keys:
            if f"{path}.{key}" in given:
                node = OmegaConf.select(cfg, path)
                # what the target takes: the node's keys less every key it does not take
                takes = [k for k in node if not str(k).startswith("_") and k not in keys]
                raise ConfigError(
                    f"{path}.{key}: {node._target_.rsplit('.', 1)[-1]} takes no {key} "
                    f"(it takes {', '.join(map(str, takes)) or 'nothing'}); drop the override "
                    f"or choose an option that takes it"
                )


def compose_config(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """The composed config (as ``torchrl train`` would build it: without keys an option does
    not take, see ``drop_foreign_keys``), or ConfigError. ``with_hydra``: with its ``hydra``
    node, as Hydra's own entry composes it for a run."""
    register_configs(overrides)
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        try:
            cfg = compose(CONFIG_NAME, overrides=overrides, return_hydra_config=with_hydra)
        except MissingConfigException as err:
            raise ConfigError(_missing_option(err, overrides)) from None
        except OverrideParseException as err:
            raise ConfigError(parse_error(err)) from None
        except Exception as err:  # Hydra wraps OmegaConf's errors in its own
            cause = err.__cause__
            for broken in (err, cause):
                if isinstance(broken, yaml.YAMLError):
                    raise ConfigError(yaml_problem(broken)) from None
            if isinstance(cause, ConfigAttributeError | ConfigKeyError):
                raise ConfigError(_unknown_key(cause.full_key, overrides)) from None
            if isinstance(cause, ValidationError):
                line = str(cause).splitlines()[0]
                raise ConfigError(f"bad value for {cause.full_key}: {line}") from None
            if any(o.lstrip("+").startswith("env.atari") for o in overrides):
                # Hydra cannot merge into the null env.atari of a non-ALE env
                raise ConfigError(
                    "env.atari applies to ALE games only (env=ALE/<game>-v5); this env has no "
                    "Atari preprocessing to set"
                ) from None
            raise ConfigError(str(err).splitlines()[0]) from None
    _check_foreign_overrides(cfg, overrides)
    return drop_foreign_keys(cfg)


def yaml_problem(err: yaml.YAMLError) -> str:
    """A config file that is not YAML, named, with the place and the problem the parser saw."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or getattr(err, "context", None)
    problem = problem or str(err).splitlines()[0]
    if mark is None or mark.name.startswith("<"):
        return f"a config file is not valid YAML ({problem}); correct it"
    return (f"config file {mark.name} is not valid YAML ({problem}, line {mark.line + 1}, "
            f"column {mark.column + 1}); correct the file, or move it out of the config folder")


def check_overrides(
    overrides: list[str],
    check: Callable[[DictConfig], object],
    multirun: bool = False,
    with_hydra: bool = False,
) -> DictConfig:
    """Compose every value a sweep would try and ``check`` each config (the CLI passes
    ``run.build.check_run``); return the first job's config (``with_hydra``: with its ``hydra``
    node, see ``compose_config``).

    Each sweep (``key=a,b,c``) is checked one value at a time, the others at their first value.
    Sweeps need ``multirun``.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as err:
        raise ConfigError(parse_error(err)) from None
    choices = []
    for override in parsed:
        key = override.get_key_element()
        if key.lstrip("+~") == "env.id":
            raise ConfigError(
                f"'{override.input_line}' would keep the other env's settings; "
                f"choose the env with env={override.value()}"
            )
        if override.is_sweep_override():
            if not multirun:
                raise ConfigError(
                    f"'{override.input_line}' is a sweep; add -m (--multirun) to "
                    "run one job per value, or give a single value"
                )
            try:
                values = list(override.sweep_string_iterator())
            except Exception:  # interval sweeps (Optuna) have no values to list
                values = []
            choices.append([f"{key}={v}" for v in values])
        else:
            choices.append([override.input_line])
    first = [c[0] if c else None for c in choices]
    cfg = compose_config([o for o in first if o is not None], with_hydra=with_hydra)
    check(cfg)
    for i, options in enumerate(choices):
        for option in options[1:]:
            variant = [*first[:i], option, *first[i + 1 :]]
            check(compose_config([o for o in variant if o is not None]))
    return cfg


def parse_error(err: OverrideParseException) -> str:
    """The one line for an override Hydra cannot parse."""
    return f"cannot parse override '{err.override}': {err.message.splitlines()[0]}"


def _missing_option(err: MissingConfigException, overrides: list[str]) -> str:
    group, _, name = (err.missing_cfg_file or "").rpartition("/")
    if group == "env" or group.startswith("env/"):
        from torchrl_cli.envs.gym_env import unknown_env

        env_id = f"{group[4:]}/{name}" if "/" in group else name
        return unknown_env(env_id, env_imports(overrides))
    if group == "hydra/launcher" and name in LAUNCHER_EXTRAS:
        return (
            f"hydra/launcher '{name}' comes with a Hydra plugin that is not installed; "
            f"pip install 'torchrl-cli[{LAUNCHER_EXTRAS[name]}]'"
        )
    options = [o for o in (err.options or []) if not o.endswith(SCHEMA_SUFFIX)]
    if not group:
        return str(err).splitlines()[0]
    return (
        f"unknown {group} '{name}'{did_you_mean(name, options)}; "
        f"choose one of: {', '.join(options)}"
    )


def _unknown_key(full_key: str, overrides: list[str]) -> str:
    parent, _, leaf = full_key.rpartition(".")
    hint = ""
    try:  # suggest the closest key of the same node, composed without the bad override
        base = compose(
            CONFIG_NAME,
            overrides=[o for o in overrides if not o.lstrip("+~").startswith(full_key + "=")],
        )
        node = OmegaConf.select(base, parent) if parent else base
        if isinstance(node, DictConfig):
            hint = did_you_mean(leaf, [str(k) for k in node.keys()])
    except Exception:
        pass
    return (
        f"unknown config key '{full_key}'{hint}; `torchrl train --cfg job` shows every key "
        f"(add a new one with +{full_key}=...)"
    )
