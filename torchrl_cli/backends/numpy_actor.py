"""The numpy backend's actor: the policy's forward pass, sampling, log-probabilities and
observation normalization in numpy, one vector step at a time (``rollout.actor.Actor``).

At acting batch sizes eager PyTorch spends its time dispatching ops, not computing: acting on
8 CartPole observations took 38 us in torch against 32 us for the native env step itself, and
numpy's per-op cost is several times lower (docs/performance.md). The arrays here are views of
the model's CPU parameters and the normalizer's buffers, so every optimizer step and statistics
update shows through without a copy. ``acting_unfit`` says why a policy cannot act this way.
"""

from collections.abc import Callable

import numpy as np
import torch

from torchrl_cli.backends.numpy_mlp import Array, NumpyMLP, actions_unfit, layers_unfit
from torchrl_cli.envs import StateNormalizer
from torchrl_cli.envs.spaces import SpaceKind
from torchrl_cli.models import BasePGModel
from torchrl_cli.models.batch import ActOut, State
from torchrl_cli.models.distributions import HALF_LOG_2PI
from torchrl_cli.models.sde import VARIANCE_EPS

#: why numpy serves no model with a memory (acting or update)
MEMORY_UNFIT = "memory=lstm/gru has no numpy step: its recurrent cell runs in torch"


def acting_unfit(policy: BasePGModel, normalizer: StateNormalizer) -> str | None:
    """Why ``policy`` (behind ``normalizer``) cannot act in numpy, or None when it can."""
    if policy.memory is not None:
        return MEMORY_UNFIT
    if normalizer.low.device.type != "cpu":
        return f"the normalizer is on {normalizer.low.device.type}"
    if policy.action_info.mask is not None:
        return "the env masks its actions (action_mask), which numpy does not sample"
    return layers_unfit(policy.layers) or actions_unfit(policy.action_info)


class NumpyActor:
    """``rollout.actor.TorchActor`` in numpy: numpy arrays in and out, drawing from ``rng``
    (the run's acting stream, saved in checkpoints); the policy must pass ``acting_unfit``."""

    def __init__(self, policy: BasePGModel, normalizer: StateNormalizer, rng: np.random.Generator):
        self.policy, self.normalizer, self.rng = policy, normalizer, rng
        self.begin_rollout(0)

    def initial_state(self, n: int) -> State:
        return None

    def begin_rollout(self, n: int) -> None:
        """Views of the parameters and statistics as they are now, the normalizer's mode."""
        self.policy_fn = numpy_policy(self.policy, self.rng)
        self.observe = numpy_normalizer(self.normalizer, self.normalizer.training)
        self.final = numpy_normalizer(self.normalizer, update_stats=False)

    def act(
        self, obs: np.ndarray, state: State, first: np.ndarray, mask: None, t: int
    ) -> ActOut:
        obs = np.asarray(obs)  # a rollout's first step: the collector's tensor (a view)
        sde = self.policy.sde
        if sde is not None and sde.due(t):  # gSDE: new noise matrices, one per env
            self.policy_fn.resample(len(obs))
        return ActOut(*self.policy_fn(obs))

    def normalize_final(self, obs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.final(obs))

    def greedy(self) -> Callable[..., np.ndarray]:
        return numpy_greedy(self.policy, self.normalizer)


def numpy_policy(model: BasePGModel, rng: np.random.Generator):
    """``obs -> (actions, log_probs)`` in numpy with the model's current parameters (views),
    drawing from ``rng``; the model must pass ``acting_unfit``. With gSDE it is a
    ``NumpySDEPolicy`` (``resample`` draws its noise matrices)."""
    kinds, params = NumpyMLP.of(model.layers)
    mlp = NumpyMLP(kinds, [p.detach().numpy() for p in params])
    if model.sde is not None:
        return NumpySDEPolicy(mlp, model.sde.log_std.detach().numpy(), rng)
    forward = mlp.forward
    if model.action_info.kind == SpaceKind.DISCRETE:
        return lambda obs: sample_categorical(forward(obs), rng)
    log_std = model.log_std.detach().numpy()
    return lambda obs: sample_gaussian(forward(obs), log_std, rng)


class NumpySDEPolicy:
    """gSDE's acting (``BasePGModel.select_action`` with ``models.sde.StateDependentNoise``)
    in numpy: the action is mean + phi^T W with phi the MLP's last hidden features and one
    matrix W per env, drawn from N(0, sigma^2) by ``resample``; the log-probabilities are the
    state-dependent Gaussian's (``sde_log_std``)."""

    def __init__(self, mlp: NumpyMLP, log_sigma: Array, rng: np.random.Generator):
        self.mlp, self.log_sigma, self.rng = mlp, log_sigma, rng  # log_sigma: a view
        self.weights: Array | None = None  # [n_envs, latent_dim, n_actions]

    def resample(self, n_envs: int) -> None:
        """One new W per env with the current sigma."""
        draw = self.rng.standard_normal((n_envs, *self.log_sigma.shape), dtype=np.float32)
        self.weights = draw * np.exp(self.log_sigma)

    def __call__(self, obs: Array) -> tuple[Array, Array]:
        if self.weights is None or len(self.weights) != len(obs):
            raise RuntimeError("gSDE noise needs resample(n_envs) for this batch of envs first")
        mean = self.mlp.forward(obs, keep=True)
        latent = self.mlp.inputs[-1]  # what the output layer read
        actions = mean + np.matmul(latent[:, None, :], self.weights)[:, 0]
        log_std = sde_log_std(latent, self.log_sigma)[0]
        return actions, gaussian_log_probs((actions - mean) * np.exp(-log_std), log_std)


def sde_log_std(latent: Array, log_sigma: Array) -> tuple[Array, Array]:
    """gSDE's log std per state and action dim (``StateDependentNoise.log_std_of``):
    0.5 log(sum_i phi_i^2 sigma_ij^2 + VARIANCE_EPS), and the variance inside the log."""
    variance = np.dot(latent * latent, np.exp(2 * log_sigma)) + np.float32(VARIANCE_EPS)
    return 0.5 * np.log(variance), variance


def numpy_greedy(model: BasePGModel, normalizer: StateNormalizer):
    """``raw obs -> greedy actions`` in numpy (``models.distributions.greedy_action`` of the
    network's output: the argmax, or the Gaussian's mean) for deterministic evaluation, with
    the current parameters (views); the model must pass ``acting_unfit``."""
    kinds, params = NumpyMLP.of(model.layers)
    forward = NumpyMLP(kinds, [p.detach().numpy() for p in params]).forward
    normalize = numpy_normalizer(normalizer, update_stats=False)
    # action_mask: always None here (acting_unfit refuses masked envs); Actor.greedy's signature
    if model.action_info.kind == SpaceKind.DISCRETE:
        return lambda obs, action_mask=None: forward(normalize(obs)).argmax(-1)
    return lambda obs, action_mask=None: forward(normalize(obs))


def numpy_normalizer(normalizer: StateNormalizer, update_stats: bool):
    """``StateNormalizer.forward`` (``update_stats``) or ``normalize`` in numpy on views of its
    (CPU) buffers: raw observations to network inputs."""
    if normalizer.dtype == torch.uint8:
        return lambda obs, counted=None: obs
    running = normalizer.running
    update = normalizer.rms.numpy_update() if running and update_stats else None
    low, span, shift = normalizer.low.numpy(), normalizer.span.numpy(), normalizer.shift.numpy()
    mean, var, clip = normalizer.rms.mean.numpy(), normalizer.rms.var.numpy(), normalizer.clip
    fixed = normalizer.fixed

    def forward(obs: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
        obs = obs.astype(np.float32)
        if fixed:
            obs = (obs - low) / span * np.float32(2.0) - shift
        if update is not None:
            rows = obs if counted is None else obs[counted]
            if len(rows):
                update(rows)
        if not running:
            return obs
        std = np.sqrt(var + 1e-8).astype(np.float32)
        return ((obs - mean.astype(np.float32)) / std).clip(-clip, clip)

    return forward


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
    return actions, gaussian_log_probs((actions - mean) * np.exp(-log_std), log_std)


def gaussian_log_probs(z: Array, log_std: Array) -> Array:
    """A diagonal Gaussian's log-density per row (one action dim per column) at the standardized
    actions ``z = (a - mean) / std``, ``log_std`` per column or per row and column."""
    return (-0.5 * z * z - log_std - np.float32(HALF_LOG_2PI)).sum(axis=1)
