"""``torchrl configs``: what can be chosen in each config group; ``torchrl configs <agent> <env>``:
the values that pair's tuned file applies."""

from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from torchrl_cli.config import config_dir
from torchrl_cli.config.store import ATARI_TUNED, env_files, tuned_files
from torchrl_cli.errors import ConfigError, did_you_mean

# every group of conf/ a command line chooses from (tests/test_cli.py checks it against conf/);
# tuned/ is applied by the pair, hydra/ is Hydra's own
GROUPS = ("agent", "agent/advantage", "env", "net", "experiment", "hparams_search")
USAGE = "configs takes no arguments (every group) or <agent> <env> (that pair's tuned values)"


def options(group: str) -> list[str]:
    if group == "env":
        return sorted(env_files())
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def tuned_pairs() -> list[str]:
    agents = sorted(p.name for p in (config_dir() / "tuned").iterdir() if p.is_dir())
    return [f"{agent} + {env}" for agent in agents for env in sorted(tuned_files(agent))]


def configs_command(args: list[str], console: Console) -> int:
    if not args:
        print_configs(console)
    elif len(args) == 2:
        print_tuned(console, *args)
    else:
        raise ConfigError(f"{USAGE}; got {' '.join(args)}")
    return 0


def print_configs(console: Console) -> None:
    table = Table(title="torchrl-cli configs (choose with group=option)", title_justify="left")
    table.add_column("group", style="cyan", no_wrap=True)
    table.add_column("options")
    for group in GROUPS:
        table.add_row(group, ", ".join(options(group)))
    agent, env = ATARI_TUNED
    table.add_row(
        "tuned",
        ", ".join(tuned_pairs()) + "\n(applied automatically for the pair; "
        f"{agent} + {env} applies to every ALE id without its own file; "
        "torchrl configs <agent> <env> shows its values)",
    )
    console.print(table)
    console.print(
        "hparams_search presets are searches: torchrl tune hparams_search=<preset>", soft_wrap=True
    )
    console.print(
        "env also takes any registered Gymnasium id without a file, e.g. "
        'env=Acrobot-v1 (list them: python -c "import gymnasium; '
        'gymnasium.pprint_registry()")'
    )


def tuned_file(agent: str, env: str):
    """The tuned file ``torchrl train agent=<agent> env=<env>`` applies, or None."""
    if env in tuned_files(agent):
        return config_dir() / "tuned" / agent / f"{env}.yaml"
    atari_agent, atari_env = ATARI_TUNED
    if agent == atari_agent and env.startswith("ALE/"):
        return config_dir() / "tuned" / atari_agent / f"{atari_env}.yaml"
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


def print_tuned(console: Console, agent: str, env: str) -> None:
    agents = options("agent")
    if agent not in agents:
        raise ConfigError(
            f"unknown agent '{agent}'{did_you_mean(agent, agents)}; "
            f"choose one of: {', '.join(agents)}"
        )
    path = tuned_file(agent, env)
    if path is None:
        console.print(
            f"no tuned file for {agent} + {env}: the schema's, the agent's and the env's values "
            f"apply (torchrl train agent={agent} env={env} --cfg job prints them)"
        )
        return
    shown = path.relative_to(config_dir().parent)
    table = Table(
        title=f"{agent} + {env}: the values {shown} applies", title_justify="left"
    )
    table.add_column("key", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in flatten(OmegaConf.load(path)):
        table.add_row(key, value)
    comment = [
        line.removeprefix("#").strip()
        for line in path.read_text().splitlines()
        if line.startswith("#") and "@package" not in line
    ]
    if comment:
        console.print(" ".join(comment))
    console.print(table)
