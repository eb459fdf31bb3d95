"""Fail fast, with one line, when a sweep names a Ray cluster that cannot be reached."""

import os
import socket
from pathlib import Path

from torchrl_cli.errors import ConfigError

ADDRESS_KEY = "hydra.launcher.ray.init.address"
CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")  # written by `ray start --head`


def ray_address(overrides: list[str]) -> str:
    """host:port of the cluster the ray_cluster preset will connect to."""
    given = next((o.split("=", 1)[1] for o in overrides if o.startswith(f"{ADDRESS_KEY}=")), "auto")
    if given != "auto":
        return given
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    if CURRENT_CLUSTER.exists():
        return CURRENT_CLUSTER.read_text().strip()
    raise ConfigError(
        "hydra/launcher=ray_cluster found no running Ray cluster; start one with "
        f"`ray start --head` or give {ADDRESS_KEY}=HOST:PORT"
    )


def check_ray_cluster(overrides: list[str], timeout: float = 3.0) -> None:
    """Connect to the head's port; raise ConfigError naming the address when that fails."""
    address = ray_address(overrides).removeprefix("ray://")
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"Ray cluster at {address} is not reachable ({err}); start it with "
            f"`ray start --head` or fix {ADDRESS_KEY}"
        ) from None
