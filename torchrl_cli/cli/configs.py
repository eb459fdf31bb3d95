"""``torchrl configs``: what can be chosen in each config group."""

from rich.console import Console
from rich.table import Table

from torchrl_cli.config import config_dir
from torchrl_cli.config.store import ATARI_TUNED, env_files, tuned_files

GROUPS = ("agent", "env", "net", "experiment")


def options(group: str) -> list[str]:
    if group == "env":
        return sorted(env_files())
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def tuned_pairs() -> list[str]:
    agents = sorted(p.name for p in (config_dir() / "tuned").iterdir() if p.is_dir())
    return [f"{agent} + {env}" for agent in agents for env in sorted(tuned_files(agent))]


def print_configs(console: Console) -> None:
    table = Table(title="torchrl-cli configs (choose with group=option)", title_justify="left")
    table.add_column("group", style="cyan")
    table.add_column("options")
    for group in GROUPS:
        table.add_row(group, ", ".join(options(group)))
    agent, env = ATARI_TUNED
    table.add_row(
        "tuned",
        ", ".join(tuned_pairs()) + "\n(applied automatically for the pair; "
        f"{agent} + {env} applies to every ALE id without its own file)",
    )
    console.print(table)
    console.print(
        "env also takes any registered Gymnasium id without a file, e.g. "
        'env=Acrobot-v1 (list them: python -c "import gymnasium; '
        'gymnasium.pprint_registry()")'
    )
