"""``torchrl configs``: what can be chosen in each config group, the options of the user's config
folder marked; ``torchrl configs <agent> <env> [memory]``: the values that pair's env and tuned
files set (its ``tuned_memory`` file for the memory, ``none`` by default), with the file each
comes from."""

import re
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from torchrl_cli.config import config_dir
from torchrl_cli.config.schema import MemoryConfig
from torchrl_cli.config.store import ATARI_TUNED, tuned_files
from torchrl_cli.config.user_dir import (
    ENV_VAR,
    FLAG,
    config_dirs,
    find_config,
    group_files,
    is_user_file,
    take_config_dir,
    user_config_dir,
)
from torchrl_cli.errors import ConfigError, did_you_mean

# every group of conf/ a command line chooses from (tests/test_cli.py checks it against conf/);
# tuned/ and tuned_memory/ are applied by the pair (and its memory), hydra/ is Hydra's own
GROUPS = ("agent", "agent/advantage", "env", "net", "memory", "experiment", "hparams_search")
USAGE = (
    f"configs takes no arguments (every group) or <agent> <env> [memory] (that pair's tuned "
    f"values), and {FLAG} DIR"
)
USER_MARK = " (user)"
PACKAGE_HEADER = re.compile(r"^#\s*@package\s+(\S+)", re.M)


def option_files(group: str) -> dict[str, Path]:
    """Option name -> the file it loads (the user's config folder's over conf/'s)."""
    return group_files(group, nested=group == "env")


def options(group: str) -> list[str]:
    return list(option_files(group))


def marked(name: str, path: Path) -> str:
    return name + (USER_MARK if is_user_file(path) else "")


def tuned_agents(folder: str) -> list[str]:
    """The agents with a folder in ``folder`` (``tuned``, ``tuned_memory``) of either root."""
    found = {p.name for root in config_dirs() for p in root.glob(f"{folder}/*") if p.is_dir()}
    return sorted(found)


def memory_files(agent: str, env: str) -> dict[str, Path]:
    """Memory option -> the ``tuned_memory/<agent>/<env>/<memory>.yaml`` file that the pair
    applies with it."""
    return group_files(f"tuned_memory/{agent}/{env}")


def tuned_pairs() -> list[str]:
    """``agent + env`` for every pair with a tuned file or memory files, the memories named."""
    pairs: dict[tuple[str, str], str] = {
        (agent, env): marked(f"{agent} + {env}", path)
        for agent in tuned_agents("tuned")
        for env, path in group_files(f"tuned/{agent}", nested=True).items()
    }
    for agent in tuned_agents("tuned_memory"):
        for option in group_files(f"tuned_memory/{agent}", nested=True):
            env = option.rpartition("/")[0]
            pairs.setdefault((agent, env), f"{agent} + {env}")
    named = []
    for pair, name in sorted(pairs.items()):
        memories = memory_files(*pair)
        named.append(name + (f" (memory={'|'.join(memories)})" if memories else ""))
    return named


def configs_command(args: list[str], console: Console) -> int:
    from torchrl_cli.cli.usage import CONFIGS, wants_help

    if wants_help(args):
        print(CONFIGS.help())
        return 0
    args = take_config_dir(args)
    if not args:
        print_configs(console)
    elif len(args) in (2, 3):
        print_tuned(console, *args)
    else:
        raise ConfigError(f"{USAGE}; got {' '.join(args)}")
    return 0


def print_configs(console: Console) -> None:
    table = Table(title="torchrl-cli configs (choose with group=option)", title_justify="left")
    table.add_column("group", style="cyan", no_wrap=True)
    table.add_column("options")
    for group in GROUPS:
        table.add_row(group, ", ".join(marked(n, p) for n, p in option_files(group).items()))
    agent, env = ATARI_TUNED
    table.add_row(
        "tuned",
        ", ".join(tuned_pairs()) + "\n(applied automatically for the pair, and its "
        "tuned_memory file for the memory chosen; "
        f"{agent} + {env} applies to every ALE id without its own file; "
        "torchrl configs <agent> <env> \\[memory] shows its values)",
    )
    user = user_config_dir()
    if user is not None:
        console.print(
            f"user config folder: {escape(str(user))} ({FLAG} or {ENV_VAR}); options marked"
            f"{USER_MARK} come from it, its file in place of a shipped one of the same name"
        )
    console.print(table)
    console.print(
        "hparams_search presets are searches: torchrl tune hparams_search=<preset>", soft_wrap=True
    )
    console.print(
        "env also takes any registered Gymnasium id without a file, e.g. "
        'env=FrozenLake-v1 (list them: python -c "import gymnasium; '
        'gymnasium.pprint_registry()")'
    )


def tuned_file(agent: str, env: str) -> Path | None:
    """The tuned file ``torchrl train agent=<agent> env=<env>`` applies, or None."""
    if env in tuned_files(agent):
        return find_config(f"tuned/{agent}/{env}.yaml")
    atari_agent, atari_env = ATARI_TUNED
    if agent == atari_agent and env.startswith("ALE/"):
        return find_config(f"tuned/{atari_agent}/{atari_env}.yaml")
    return None


def flatten(node, prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted key, value)`` of every leaf, in the file's order (lists as one value)."""
    if isinstance(node, DictConfig):
        rows = []
        for key in node:
            if key == "defaults":
                continue
            rows += flatten(node._get_node(key), f"{prefix}{key}.")
        return rows
    value = OmegaConf.to_container(node) if isinstance(node, ListConfig) else node._value()
    return [(prefix.rstrip("."), str(value))]


def file_values(path: Path, package: str) -> list[tuple[str, str]]:
    """``(key in the composed config, value)`` of every value a config file sets; ``package``:
    where its keys go unless its ``# @package`` header says otherwise."""
    header = PACKAGE_HEADER.search(path.read_text())
    package = header.group(1) if header else package
    prefix = "" if package == "_global_" else f"{package}."
    return flatten(OmegaConf.load(path), prefix)


def shown(path: Path) -> str:
    """A shipped file as conf/...; the user's with its full path."""
    return str(path if is_user_file(path) else path.relative_to(config_dir().parent))


def check_option(group: str, name: str) -> None:
    """A one-line ConfigError unless ``name`` is an option of ``group``."""
    known = options(group)
    if name not in known:
        raise ConfigError(
            f"unknown {group} '{name}'{did_you_mean(name, known)}; "
            f"choose one of: {', '.join(known)}"
        )


def print_tuned(
    console: Console, agent: str, env: str, memory: str = MemoryConfig.kind
) -> None:
    """``memory``: the option whose tuned_memory file joins the pair's (the schema's default,
    the ``memory`` choice of conf/config.yaml, unless given)."""
    check_option("agent", agent)
    check_option("memory", memory)
    path, by_memory = tuned_file(agent, env), memory_files(agent, env)
    memory_path = by_memory.get(memory)
    if path is None and memory_path is None:
        console.print(
            f"no tuned file for {agent} + {env}: the schema's, the agent's and the env's values "
            f"apply (torchrl train agent={agent} env={env} --cfg job prints them)"
        )
    env_path = find_config(f"env/{env}.yaml")
    # in conf/config.yaml's order: the env's, the memory's, then the pair's (which wins)
    files = [
        (p, package)
        for p, package in ((env_path, "env"), (memory_path, "_global_"), (path, "_global_"))
        if p
    ]
    values: dict[str, tuple[str, Path]] = {}
    for file, package in files:
        values.update((key, (value, file)) for key, value in file_values(file, package))
    if path is None and all(key == "env.id" for key in values):
        return
    for file, _ in files:
        if is_user_file(file):
            replaced = config_dir() / file.relative_to(user_config_dir())
            if replaced.is_file():
                console.print(f"{escape(str(file))} replaces the shipped {shown(replaced)}")
    for file in (path, memory_path):
        comment = [
            line.removeprefix("#").strip()
            for line in (file.read_text().splitlines() if file else [])
            if line.startswith("#") and "@package" not in line
        ]
        if comment:
            console.print(escape(" ".join(comment)))
    others = [m for m in by_memory if m != memory]
    if others:
        console.print(
            f"with another memory the pair sets other values: torchrl configs {agent} {env} "
            f"<{'|'.join(others)}>"
        )
    title = f"{agent} + {env}" + (f" + memory={memory}" if memory_path else "")
    table = Table(title=f"{title}: the values its env and tuned files set", title_justify="left")
    table.add_column("key", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("file", overflow="fold")
    for key, (value, file) in values.items():
        table.add_row(key, escape(value), escape(shown(file)))
    console.print(table)
