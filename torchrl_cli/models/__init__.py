"""The policy-gradient model family (after the seed's ``torchrl.models``)."""

from torchrl_cli.models.base import BaseModel
from torchrl_cli.models.base_pg import BasePGModel
from torchrl_cli.models.ppo_adaptive import PPOAdaptiveModel
from torchrl_cli.models.ppo_clip import PPOClipModel
from torchrl_cli.models.surrogate_pg import SurrogatePGModel
from torchrl_cli.models.value import ValueModel
from torchrl_cli.models.vanilla_pg import A2CModel, VanillaPGModel

__all__ = [
    "A2CModel",
    "BaseModel",
    "BasePGModel",
    "PPOAdaptiveModel",
    "PPOClipModel",
    "SurrogatePGModel",
    "ValueModel",
    "VanillaPGModel",
]
