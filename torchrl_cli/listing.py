"""``torchrl configs``: what can be chosen in each config group."""

from rich.console import Console
from rich.table import Table

from torchrl_cli.config import config_dir
from torchrl_cli.config.store import env_files

GROUPS = ("agent", "env", "net", "experiment")


def options(group: str) -> list[str]:
    if group == "env":
        return sorted(env_files())
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def tuned_pairs() -> list[str]:
    root = config_dir() / "tuned"
    return sorted(f"{p.parent.name} + {p.stem}" for p in root.glob("*/*.yaml"))


def print_configs(console: Console) -> None:
    table = Table(title="torchrl-cli configs (choose with group=option)", title_justify="left")
    table.add_column("group", style="cyan")
    table.add_column("options")
    for group in GROUPS:
        table.add_row(group, ", ".join(options(group)))
    table.add_row("tuned", ", ".join(tuned_pairs()) + "\n(applied automatically for the pair)")
    console.print(table)
    console.print(
        "env also takes any registered Gymnasium id without a file, e.g. "
        'env=Acrobot-v1 (list them: python -c "import gymnasium; '
        'gymnasium.pprint_registry()")'
    )
