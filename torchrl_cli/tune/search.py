"""The search space of a tuning study: ``tune.params`` nests like the config, each leaf a range
(``{low: a, high: b}``, ``log: true``, ``step: s``) or ``{choices: [...]}`` for one config value;
the values a trial draws, rounded, as Hydra overrides."""

import re
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from torchrl_cli.errors import ConfigError, did_you_mean

# what every trial of a study shares, so that their scores (and their reports) compare
BUDGET = (
    "seeds",
    "max_steps",
    "max_iters",
    "max_episodes",
    "eval_freq",
    "eval_episodes",
    "target_return",
)
SIGNIFICANT = 4  # a float trains (and is shown, and written) at this many significant digits
SPEC_KEYS = {"low", "high", "log", "step", "choices"}


@dataclass(frozen=True)
class Param:
    """One searched config key: a range (``low``..``high``, ``log``, ``step``) or ``choices``."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple | None = None

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high))

    def suggest(self, trial) -> Any:
        """The value ``trial`` trains with: Optuna's draw, floats at SIGNIFICANT digits."""
        if self.choices is not None:
            held = trial.suggest_categorical(self.key, [optuna_value(c) for c in self.choices])
            lists = [c for c in self.choices if isinstance(c, tuple) and optuna_value(c) == held]
            return list(lists[0]) if lists else held
        if self.integer and (self.step is None or isinstance(self.step, int)):
            return trial.suggest_int(
                self.key, self.low, self.high, step=self.step or 1, log=self.log
            )
        value = trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)
        if self.step is not None:
            return value
        return min(max(float(f"{value:.{SIGNIFICANT}g}"), self.low), self.high)

    def baseline(self, cfg: DictConfig) -> Any:
        """The config's own value of this key as Optuna holds it (a list choice by its label);
        ConfigError when the search does not contain it."""
        value = OmegaConf.select(cfg, self.key)
        if isinstance(value, ListConfig):
            value = OmegaConf.to_container(value)
        choice = tuple(value) if isinstance(value, list) else value
        if self.choices is not None:
            inside = choice in self.choices
        else:
            inside = isinstance(value, int | float) and self.low <= value <= self.high
        if not inside:
            raise ConfigError(
                f"tune.baseline_first: the config's {override(self.key, value)} is not in "
                f"tune.params.{self.key} {self.describe()}; add it to the search, or set "
                "tune.baseline_first=false"
            )
        return optuna_value(choice)

    def describe(self) -> str:
        if self.choices is not None:
            return "{" + ", ".join(rounded(c) for c in self.choices) + "}"
        scale = "log " if self.log else ""
        step = f" step {rounded(self.step)}" if self.step is not None else ""
        return f"{scale}[{rounded(self.low)}, {rounded(self.high)}]{step}"


def optuna_value(choice: Any) -> Any:
    """A choice as Optuna holds it: itself, or a list choice by its label (Optuna takes single
    values only)."""
    return rounded(choice) if isinstance(choice, tuple) else choice


def rounded(value: Any) -> str:
    """A value for a table or a console line, as the command line writes it: floats at
    SIGNIFICANT digits, booleans and None in YAML's words."""
    if isinstance(value, bool) or value is None:
        return override("", value)[1:]
    if isinstance(value, float):
        return f"{value:.{SIGNIFICANT}g}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(rounded(v) for v in value) + "]"
    return str(value)


def short_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key by its shortest tail that no other key ends with (lr, gae_lambda)."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(o != key and (o == tail or o.endswith("." + tail)) for o in keys):
                break
        names[key] = tail
    return names


def search_space(cfg: DictConfig, fixed: set[str]) -> tuple[list[Param], list[str]]:
    """The ``tune.params`` leaves as Params, and the keys left out because the command line
    sets them (``agent.lr=1e-3`` fixes lr for the whole study); ConfigError on a bad spec."""
    params, skipped = [], []

    def walk(node: DictConfig, prefix: str) -> None:
        for name in node:
            key, child = f"{prefix}{name}", node[name]
            if not isinstance(child, DictConfig):
                raise ConfigError(
                    f"tune.params.{key}={child} is not a search; give {{low: a, high: b}} "
                    "(log: true, step: s) or {choices: [...]}"
                )
            if SPEC_KEYS & set(map(str, child)):
                param = parse_param(key, child, cfg)
                if key in fixed:
                    skipped.append(key)
                else:
                    params.append(param)
            else:
                walk(child, f"{key}.")

    walk(cfg.tune.params, "")
    if not params:
        raise ConfigError(
            "nothing to tune: tune.params is empty"
            + (f" once the command line fixes {', '.join(skipped)}" if skipped else "")
            + "; give ranges or choices under tune.params"
        )
    return params, skipped


def parse_param(key: str, spec: DictConfig, cfg: DictConfig) -> Param:
    where = f"tune.params.{key}"
    unknown = set(map(str, spec)) - SPEC_KEYS
    if unknown:
        bad = sorted(unknown)[0]
        raise ConfigError(
            f"{where}.{bad} is not a search field{did_you_mean(bad, SPEC_KEYS)}; a range is "
            "{low, high, log, step}, a list of values {choices: [...]}"
        )
    if "choices" in spec:
        choices = spec.choices
        if set(map(str, spec)) != {"choices"}:
            raise ConfigError(f"{where} has choices and a range; give one of them")
        if not isinstance(choices, ListConfig) or not choices:
            raise ConfigError(f"{where}.choices={choices} must be a non-empty list of values")
        values = tuple(
            tuple(v) if isinstance(v, list) else v for v in OmegaConf.to_container(choices)
        )
        single = all(not isinstance(v, tuple) for v in values)
        if not all(
            v is None or isinstance(v, bool | int | float | str) for c in values for v in listed(c)
        ) or not (single or all(isinstance(v, tuple) for v in values)):
            raise ConfigError(
                f"{where}.choices={list(values)}: each choice must be a single value, or each "
                "a list of single values (net.hidden: {choices: [[64, 64], [256, 256]]})"
            )
        check_key(key, cfg, lists=not single)
        return Param(key, choices=values)
    low, high, log, step = (
        spec.get("low"),
        spec.get("high"),
        spec.get("log", False),
        spec.get("step"),
    )
    numbers = (low, high) + ((step,) if step is not None else ())
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        raise ConfigError(f"{where} needs numbers low and high (and step); got {dict(spec)}")
    if not low <= high:
        raise ConfigError(f"{where}: low={low} is above high={high}")
    if log and (low <= 0 or step is not None):
        raise ConfigError(f"{where}: a log range needs low > 0 and no step")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}.step={step} must be > 0")
    check_key(key, cfg)
    return Param(key, low, high, bool(log), step)


def listed(choice: Any) -> tuple:
    """A choice's single values: itself, or the items of a list choice."""
    return choice if isinstance(choice, tuple) else (choice,)


def check_key(key: str, cfg: DictConfig, lists: bool = False) -> None:
    """A searched key is a value of the config (a list too, where ``lists``: its choices are
    lists), and not part of the budget every trial shares."""
    if key in ("seed", *BUDGET) or key.startswith("tune."):
        raise ConfigError(
            f"tune.params.{key}: the seeds, budget and evaluation schedule are the same for "
            "every trial, so that their scores compare; set it on the command line instead"
        )
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig) or leaf not in node:
        siblings = [str(k) for k in node] if isinstance(node, DictConfig) else []
        raise ConfigError(
            f"tune.params.{key}: no such config key{did_you_mean(leaf, siblings)}; "
            "`torchrl train --cfg job` shows every key"
        )
    if isinstance(node._get_node(leaf), DictConfig) or (
        isinstance(node._get_node(leaf), ListConfig) and not lists
    ):
        raise ConfigError(
            f"tune.params.{key} is a config node, not a value; search the values inside it"
        )


def override(key: str, value: Any) -> str:
    """``key=value`` as a Hydra override that gives back ``value``."""
    if value is None:
        text = "null"
    elif isinstance(value, list):
        text = "[" + ",".join(override("", v)[1:] for v in value) + "]"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, int | float):
        text = repr(value)
    elif re.fullmatch(r"[A-Za-z_][\w.\-/]*", value) and value not in ("null", "true", "false"):
        text = value
    else:
        text = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{key}={text}"
