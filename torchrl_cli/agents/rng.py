"""The global random states (python, numpy, torch) as checkpoint-safe data."""

import random

import numpy as np
import torch

from torchrl_cli.envs.snapshot import from_json, to_json


def rng_state() -> dict:
    """The global random states of python, numpy and torch (CPU), as checkpoint-safe data."""
    return {
        "python": random.getstate(),
        "numpy": to_json(np.random.get_state(legacy=False)),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(from_json(state["numpy"]))
    torch.set_rng_state(state["torch"])
