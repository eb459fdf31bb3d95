"""The non-finite guard: a run stops (or skips the update) at the first NaN or infinity in what
it collects or learns, instead of training on, and rotating its good checkpoints away, with
garbage. It also warns, without stopping, when the policy diverges short of NaN.

Checked once per iteration, on tensors already at hand: the rollout's observations, rewards
and values, every update diagnostic (losses, gradient norms, KL, entropy) and every parameter
after the update; on a GPU that is one host sync per check, never one per env step.
"""

import copy
import math
import statistics
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from torchrl_cli.errors import FaultError
from torchrl_cli.models.batch import Rollout

# observations beyond this magnitude are refused like infinite ones: sqrt(float32's max) is
# 1.8e19, so their squares (a variance, a norm) overflow
HUGE_OBS = 1e18


class NonFiniteError(FaultError):
    """A non-finite value reached the training state (the guard in ``stop`` mode)."""


def first_non_finite(values: dict[str, torch.Tensor | np.ndarray | list[float]]) -> str | None:
    """The name of the first entry holding a NaN or an infinity, or None."""
    for name, value in values.items():
        if isinstance(value, torch.Tensor):
            bad = value.is_floating_point() and not bool(torch.isfinite(value).all())
        else:
            bad = not np.isfinite(np.asarray(value, dtype=np.float64)).all()
        if bad:
            return name
    return None


def non_finite_parameter(models: dict[str, torch.nn.Module]) -> str | None:
    """``<model>.<parameter>`` of the first parameter that is not finite, or None (one host
    sync for all of them)."""
    named = [(f"{m}.{p}", t) for m, model in models.items() for p, t in model.named_parameters()]
    finite = torch.stack([torch.isfinite(t).all() for _, t in named])
    if bool(finite.all()):
        return None
    return named[int((~finite).nonzero()[0])][0]


@dataclass
class Guard:
    """Parameters (see ``config.schema.GuardConfig``):
        mode: ``stop`` (raise NonFiniteError) or ``skip`` (undo the iteration and go on).
        kl_factor: warn when an update's approx KL exceeds this multiple of its running median.
        kl_limit: warn when an update's approx KL exceeds this, whatever the median.
        entropy_floor: warn when a discrete policy's entropy falls below this.
    """

    mode: str
    kl_factor: float
    kl_limit: float
    entropy_floor: float
    skipped: int = 0
    kl_history: deque = field(default_factory=lambda: deque(maxlen=100))
    warned_entropy: bool = False
    last_kl_warning: int = -(10**9)

    def rollout_problem(self, rollout: Rollout, raw_rewards: np.ndarray) -> str | None:
        """What in a fresh rollout is not finite (observations, rewards, values), or None.
        Observations beyond HUGE_OBS count too: finite, but float32 squares them to infinity
        (a norm, the first layer's sums), so a policy would learn blind. (The running
        normalization keeps its statistics in float64: what it gives is in [-clip, clip].)"""
        if rollout.obs.dtype != torch.uint8 and rollout.obs.numel():
            peak = float(rollout.obs.abs().amax())  # NaN when any is NaN
            if not math.isfinite(peak):
                return "observations"
            if peak > HUGE_OBS:
                return (f"observations (finite, but up to {peak:.3g} in magnitude: beyond "
                        f"{HUGE_OBS:g}, float32 arithmetic on them overflows; "
                        "env.running_normalize_states=true scales them, in float64)")
        if not np.isfinite(raw_rewards).all():
            return "rewards"
        name = first_non_finite(
            {
                "values": rollout.values,
                "last_values": rollout.last_values,
                "final_values": rollout.final_values,
            }
        )
        return None if name is None else f"value estimates ({name})"

    @staticmethod
    def update_problem(
        diagnostics: dict[str, list[float]], models: dict[str, torch.nn.Module]
    ) -> str | None:
        """What an update left non-finite (a diagnostic such as a loss or a gradient norm, or
        a parameter), or None."""
        # explained variance is NaN by definition when the returns are constant
        name = first_non_finite({k: v for k, v in diagnostics.items() if k != "explained_variance"})
        if name is not None:
            return f"losses/{name}"
        name = non_finite_parameter(models)
        return None if name is None else f"parameter {name}"

    @staticmethod
    def snapshot(agent) -> dict:
        """What ``skip`` restores: every model and optimizer state, and the normalizers'."""
        collector = agent.collector
        return copy.deepcopy(
            {
                "models": {n: m.state_dict() for n, m in agent.models.items()},
                "optimizers": {n: m.optimizer.state_dict() for n, m in agent.models.items()},
                "state_normalizer": agent.normalizer.state_dict(),
                "reward_scaler": collector.reward_scaler.state_dict(),
            }
        )

    @staticmethod
    def restore(agent, snapshot: dict) -> None:
        for name, model in agent.models.items():
            model.load_state_dict(snapshot["models"][name])
            model.optimizer.load_state_dict(snapshot["optimizers"][name])
        agent.normalizer.load_state_dict(snapshot["state_normalizer"])
        agent.collector.reward_scaler.load_state_dict(snapshot["reward_scaler"])

    def divergence(
        self, diagnostics: dict[str, list[float]], iteration: int, discrete: bool
    ) -> str | None:
        """A warning when the update's KL jumped or a discrete policy's entropy collapsed."""
        kl = float(np.mean(diagnostics["approx_kl"])) if diagnostics.get("approx_kl") else None
        warning = None
        if kl is not None:
            median = statistics.median(self.kl_history) if len(self.kl_history) >= 10 else None
            jumped = median is not None and median > 0 and kl > self.kl_factor * median
            if (kl > self.kl_limit or jumped) and iteration - self.last_kl_warning >= 50:
                self.last_kl_warning = iteration
                base = f"{self.kl_factor:g}x its running median {median:.3g}" if jumped else (
                    f"above guard.kl_limit={self.kl_limit:g}"
                )
                warning = (
                    f"approx KL {kl:.3g} is {base}: the policy is diverging; "
                    "a smaller agent.lr (or clip range) would keep updates small"
                )
            self.kl_history.append(kl)
        entropy = diagnostics.get("entropy")
        if discrete and entropy and not self.warned_entropy:
            mean = float(np.mean(entropy))
            if math.isfinite(mean) and mean < self.entropy_floor:
                self.warned_entropy = True
                warning = (
                    f"policy entropy {mean:.2g} has collapsed (below guard.entropy_floor="
                    f"{self.entropy_floor:g}): the policy is deterministic and no longer explores"
                )
        return warning
