"""Small helpers shared across the package (after the seed's ``torchrl.utils``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


RUNS_DIR = "runs"  # where runs, sweeps and studies go, and the default MLflow store


def config_dir() -> Path:
    """The ``conf/`` folder: inside the installed wheel, or at the top of a source checkout."""
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "conf"


def get_obj(config: Any, **kwargs: Any) -> Any:
    """Create the object a ``_target_`` node describes; ``kwargs`` add or replace arguments.

    Containers reach the constructor as plain dicts and lists, not OmegaConf nodes.
    """
    from hydra.utils import instantiate

    return instantiate(config, _convert_="all", **kwargs)


def explained_var(target: torch.Tensor, preds: torch.Tensor) -> float:
    """1 - Var[target - preds] / Var[target]: 1 is a perfect value function, <= 0 is useless."""
    var = target.var()
    if var == 0:
        return float("nan")
    return float(1 - (target - preds).var() / var)

