"""Shell completion (bash, and zsh through bashcompinit): ``torchrl train -sc install=bash``
prints Hydra's script, which asks ``torchrl -sc query=bash`` for the words that complete the
line in ``COMP_LINE``. The query completes the subcommand, and after ``train`` the groups, their
options and the config's keys (Hydra's own query, told the line without ``train``)."""

import contextlib
import io
import os

from torchrl_cli.errors import ConfigError

SHELLS = ("bash", "zsh")
# zsh runs bash completion functions once bashcompinit is loaded
ZSH_PREAMBLE = "autoload -Uz bashcompinit && bashcompinit"


def shell_completion(args: list[str]) -> int:
    """``-sc install=<shell>``, ``-sc uninstall=<shell>`` or ``-sc query=<shell>``."""
    action = completion_action(args)
    verb, _, shell = action.partition("=")
    if verb not in ("install", "uninstall", "query") or shell not in SHELLS:
        raise ConfigError(
            f"-sc {action}: give install=<shell>, uninstall=<shell> or query=<shell>, "
            f"with a shell of {', '.join(SHELLS)}"
        )
    if verb == "query":
        print(" ".join(query(os.environ.get("COMP_LINE", ""))))
        return 0
    from torchrl_cli.cli.hydra_app import run_hydra

    if verb == "install" and shell == "zsh":
        print(ZSH_PREAMBLE)
    # Hydra names the program in the script from argv[0]: the completed command is `torchrl`
    return run_hydra(["-sc", f"{verb}=bash"], prog="torchrl")


def completion_action(args: list[str]) -> str:
    for i, arg in enumerate(args):
        if arg in ("-sc", "--shell-completion"):
            if i + 1 < len(args):
                return args[i + 1]
            break
        if arg.startswith("--shell-completion="):
            return arg.split("=", 1)[1]
    raise ConfigError("-sc needs install=<shell>, uninstall=<shell> or query=<shell>")


def query(line: str) -> list[str]:
    """The words that complete ``line`` (a ``torchrl ...`` command line, the cursor at its end)."""
    from torchrl_cli.cli import COMMANDS

    words = line.split()
    new_word = not line or line[-1].isspace()
    if len(words) < 2 or (len(words) == 2 and not new_word):
        partial = "" if len(words) < 2 else words[1]
        return [c for c in COMMANDS if c.startswith(partial)]
    if words[1] not in ("train", "tune"):
        return []  # the shell completes file names (run folders) itself
    rest = line.split(None, 2)[2] if len(words) > 2 else ""
    return train_query(rest, words[2:])


def train_query(rest: str, overrides: list[str]) -> list[str]:
    """Hydra's completion of the overrides ``rest`` (the options of the env the line chooses
    included), without the internal schema nodes."""
    from torchrl_cli.cli.hydra_app import run_hydra
    from torchrl_cli.config import register_configs
    from torchrl_cli.config.store import SCHEMA_SUFFIX

    register_configs([o for o in overrides if "=" in o])
    os.environ["COMP_LINE"] = f"torchrl {rest}"
    os.environ["COMP_POINT"] = str(len(os.environ["COMP_LINE"]))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_hydra(["-sc", "query=bash"], prog="torchrl")
    return [w for w in out.getvalue().split() if SCHEMA_SUFFIX not in w and "tuned" not in w]
