"""The user's config folder (``--config-dir DIR`` or ``TORCHRL_CONFIG_DIR=DIR``): a file there
takes the place of the shipped ``conf/`` file of the same name, in every group (``tuned/<agent>/
<env>.yaml``, ``env/<id>.yaml``, ``agent/``, ``net/``, ``experiment/``, ``hydra/launcher/``...),
and a new name adds an option. Hydra looks a file up along its search path and takes the first
match: the folder goes in ahead of the package's ``conf/``."""

import os
from pathlib import Path

from hydra.plugins.search_path_plugin import SearchPathPlugin

from torchrl_cli.errors import ConfigError
from torchrl_cli.utils import config_dir

ENV_VAR = "TORCHRL_CONFIG_DIR"
FLAG, SHORT_FLAG = "--config-dir", "-cd"
# the root config: the callbacks and the defaults list every command relies on
ROOT_FILE = "config.yaml"


def take_config_dir(args: list[str]) -> list[str]:
    """``args`` without ``--config-dir DIR`` (``--config-dir=DIR``, ``-cd DIR``): the folder,
    checked, becomes ``TORCHRL_CONFIG_DIR`` (absolute) for this process and the processes it
    starts (sweep workers), in place of Hydra's own flag, whose folder comes after ``conf/``."""
    rest, given = [], None
    args = iter(args)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name not in (FLAG, SHORT_FLAG):
            rest.append(arg)
            continue
        given = value if eq else next(args, "")
        if not given:
            raise ConfigError(f"{name} needs a folder: {name} DIR")
    if given is not None:
        os.environ[ENV_VAR] = str(check_folder(Path(given), f"{FLAG} {given}"))
    return rest


def check_folder(path: Path, source: str) -> Path:
    """``path`` made absolute once it is a folder that may be put ahead of ``conf/``."""
    if not path.expanduser().is_dir():
        what = "is not a folder" if path.expanduser().exists() else "does not exist"
        raise ConfigError(f"config folder {source} {what}; create it or name another")
    path = path.expanduser().absolute()
    if (path / ROOT_FILE).is_file():
        raise ConfigError(
            f"config folder {source} holds {ROOT_FILE}, which would replace torchrl-cli's root "
            f"config; rename it (an experiment/<name>.yaml file sets values for a run)"
        )
    return path


def user_config_dir() -> Path | None:
    """The user's config folder, absolute, or None when ``TORCHRL_CONFIG_DIR`` is unset or
    empty; ConfigError when it names no folder."""
    value = os.environ.get(ENV_VAR, "")
    return check_folder(Path(value), f"{ENV_VAR}={value}") if value else None


def config_dirs() -> list[Path]:
    """The folders a config file is looked up in, first match wins: the user's, then conf/."""
    user = user_config_dir()
    return [user, config_dir()] if user else [config_dir()]


def find_config(relative: str) -> Path | None:
    """The file ``relative`` (``tuned/ppo_clip/CartPole-v1.yaml``) that Hydra would load."""
    for root in config_dirs():
        if (root / relative).is_file():
            return root / relative
    return None


def group_files(group: str, nested: bool = False) -> dict[str, Path]:
    """Option name -> the file Hydra loads for it, for every option of ``group`` in either
    folder; ``nested``: options in subfolders too (``env/ALE/Pong-v5.yaml`` is ``ALE/Pong-v5``)."""
    found: dict[str, Path] = {}
    for root in reversed(config_dirs()):  # the user's last: it replaces the shipped file
        folder = root / group
        for path in folder.rglob("*.yaml") if nested else folder.glob("*.yaml"):
            found[str(path.relative_to(folder).with_suffix(""))] = path
    return dict(sorted(found.items()))


def is_user_file(path: Path) -> bool:
    user = user_config_dir()
    return user is not None and path.is_relative_to(user)


class UserConfigSearchPath(SearchPathPlugin):
    """Puts the user's config folder on Hydra's search path right before the package's conf/
    (the "main" entry), for ``torchrl train`` and the compose API alike."""

    def manipulate_search_path(self, search_path) -> None:
        user = user_config_dir()
        if user is not None:
            search_path.prepend("torchrl-cli user config", f"file://{user}", anchor="main")


def register_search_path() -> None:
    """Let Hydra find ``UserConfigSearchPath`` (a plugin class registered by hand: it lives in
    this package, not in ``hydra_plugins``); checks the folder first."""
    from hydra.core.plugins import Plugins

    user_config_dir()
    plugins = Plugins.instance()
    if UserConfigSearchPath not in plugins.discover(SearchPathPlugin):
        plugins.register(UserConfigSearchPath)
