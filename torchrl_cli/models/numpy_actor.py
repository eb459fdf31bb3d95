"""The rollout collector's acting step in numpy: the policy's forward pass, sampling and
log-probabilities for a handful of observations.

At acting batch sizes eager PyTorch spends its time dispatching ops, not computing: acting on
8 CartPole observations took 38 us in torch against 32 us for the native env step itself, and
numpy's per-op cost is several times lower (docs/performance.md). The arrays here are views of
the model's CPU parameters, so every optimizer step shows through without a copy. Only plain
MLP policies over Discrete or Box actions act this way; any other layer or action space, or a
model on the GPU, keeps the torch path (``numpy_actor`` returns None).
"""

from collections.abc import Callable

import numpy as np

from torchrl_cli.models.distributions import HALF_LOG_2PI
from torchrl_cli.models.numpy_mlp import Array, NumpyMLP, numpy_actions

Actor = Callable[[Array], tuple[Array, Array]]


def numpy_actor(model, rng: np.random.Generator) -> Actor | None:
    """``obs -> (actions, log_probs)`` in numpy with a BasePGModel's current parameters, drawing
    from ``rng``; None when the model cannot act in numpy (see the module docstring)."""
    spec = NumpyMLP.of(model.layers)
    if spec is None or not numpy_actions(model.action_info):
        return None
    kinds, params = spec
    forward = NumpyMLP(kinds, [p.detach().numpy() for p in params]).forward

    if model.action_info["kind"] == "discrete":
        return lambda obs: sample_categorical(forward(obs), rng)
    log_std = model.log_std.detach().numpy()
    return lambda obs: sample_gaussian(forward(obs), log_std, rng)


def sample_categorical(logits: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    """Inverse-CDF sampling from softmax(logits) rows: the first index whose cumulative weight
    reaches a uniform draw in (0, 1] times the row's total (never past the last index, and never
    an action whose probability underflowed to 0)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    cdf = np.exp(shifted).cumsum(axis=1)
    total = cdf[:, -1:]
    draw = (1.0 - rng.random(total.shape, dtype=np.float32)) * total
    actions = (cdf >= draw).argmax(axis=1)
    return actions, shifted[np.arange(len(actions)), actions] - np.log(total[:, 0])


def sample_gaussian(mean: Array, log_std: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    """A diagonal Gaussian with state-independent ``log_std`` (one action dim per column)."""
    actions = mean + np.exp(log_std) * rng.standard_normal(mean.shape, dtype=np.float32)
    # from the stored float32 action, as the update recomputes it (the raw noise can differ
    # from it by rounding where the std is tiny next to the mean)
    z = (actions - mean) * np.exp(-log_std)
    log_probs = (-0.5 * z * z - log_std - np.float32(HALF_LOG_2PI)).sum(axis=1)
    return actions, log_probs
