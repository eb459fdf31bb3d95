"""The policy-gradient model family (after the seed's ``torchrl.models``)."""

from torchrl_cli.models.base import BaseModel
from torchrl_cli.models.base_pg import BasePGModel
from torchrl_cli.models.ppo_clip import PPOClipModel
from torchrl_cli.models.surrogate_pg import SurrogatePGModel
from torchrl_cli.models.value import ValueModel

__all__ = ["BaseModel", "BasePGModel", "PPOClipModel", "SurrogatePGModel", "ValueModel"]
