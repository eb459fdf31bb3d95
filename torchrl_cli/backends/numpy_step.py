"""The numpy backend's minibatch step: PPO-clip's (forward, hand-derived
backward, gradient clipping and Adam) for a PPOClipModel and a ValueModel whose networks are
plain MLPs on the CPU; ``update_unfit`` says why a model cannot train this way.

Why: rl-zoo3's CartPole PPO makes 20 gradient steps per 256 env steps, and eager PyTorch
spends most of each (~1.1 ms) dispatching ~150 small ops and recording autograd; numpy does
the same arithmetic in under half of that (docs/performance.md). The torch backend's step
(``torch_step``) stays the reference: tests check these gradients against autograd and this
Adam against torch.optim.Adam. Parameters and Adam's moments are copied into flat arrays when
an update starts and written back when it ends, so outside an update torch holds the only copy
(checkpoints, evaluation and export see nothing of this). The epochs around the step are
``rollout.update.run_epochs``, the same for both backends.
"""

import math
from collections.abc import Mapping
from dataclasses import fields

import numpy as np
import torch

from torchrl_cli.backends.numpy_actor import MEMORY_UNFIT, gaussian_log_probs, sde_log_std
from torchrl_cli.backends.numpy_mlp import Array, NumpyMLP, actions_unfit, layers_unfit
from torchrl_cli.envs.spaces import SpaceKind
from torchrl_cli.models.base import BaseModel
from torchrl_cli.models.batch import Batch
from torchrl_cli.models.distributions import HALF_LOG_2PI
from torchrl_cli.models.ppo_clip import PPOClipModel
from torchrl_cli.models.value import ValueModel


def optimizer_unfit(optimizer: torch.optim.Optimizer) -> str | None:
    """Why numpy cannot run this optimizer's steps (it runs plain Adam, one setting for every
    parameter group), or None."""
    name = type(optimizer).__name__
    if type(optimizer) is not torch.optim.Adam:
        return f"optimizer {name} is not torch.optim.Adam"
    groups = optimizer.param_groups
    keys = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")
    if any(tuple(g[k] for k in keys) != tuple(groups[0][k] for k in keys) for g in groups):
        return "Adam's parameter groups differ"
    for key in ("weight_decay", "amsgrad", "maximize"):
        if groups[0][key]:
            return f"Adam with {key}={groups[0][key]}"
    return None


def adam_settings(optimizer: torch.optim.Optimizer) -> dict:
    group = optimizer.param_groups[0]
    return {"lr": group["lr"], "betas": group["betas"], "eps": group["eps"]}


def update_unfit(model: BaseModel) -> str | None:
    """Why numpy cannot train ``model``, or None when it can."""
    if model.memory is not None:
        return MEMORY_UNFIT
    if type(model) not in STEPS:
        return f"{type(model).__name__} has no numpy update (PPOClipModel and ValueModel do)"
    if isinstance(model, PPOClipModel) and (reason := actions_unfit(model.action_info)):
        return reason
    if isinstance(model, PPOClipModel) and model.action_info.mask is not None:
        return "the env masks its actions (action_mask), which numpy does not score"
    if isinstance(model, PPOClipModel) and model.sde is not None and model.sde.learn_features:
        return "gSDE with agent.policy.sde.learn_features=true has no numpy update"
    return layers_unfit(model.layers) or optimizer_unfit(model.optimizer)


class FlatModel:
    """One model's parameters, gradients and Adam moments as flat float32 arrays, with the
    network's MLP over views of them."""

    def __init__(self, model: BaseModel, adam: dict, mlp: tuple[list[str], list]):
        self.model, self.adam = model, adam
        self.torch_params = [p for g in model.optimizer.param_groups for p in g["params"]]
        sizes = [p.numel() for p in self.torch_params]
        self.offsets = np.cumsum([0, *sizes])
        states = [model.optimizer.state.get(p, {}) for p in self.torch_params]
        self.step = float(states[0]["step"]) if states[0] else 0.0

        def flat(tensors) -> Array:
            return np.concatenate([t.detach().numpy().ravel() for t in tensors])

        self.theta = flat(self.torch_params)
        self.exp_avg = flat(
            s.get("exp_avg", torch.zeros_like(p))
            for s, p in zip(states, self.torch_params, strict=True)
        )
        self.exp_avg_sq = flat(
            s.get("exp_avg_sq", torch.zeros_like(p))
            for s, p in zip(states, self.torch_params, strict=True)
        )
        self.grad = np.zeros_like(self.theta)
        self.param = {id(p): self._view(self.theta, i) for i, p in enumerate(self.torch_params)}
        self.grads = {id(p): self._view(self.grad, i) for i, p in enumerate(self.torch_params)}
        kinds, params = mlp
        self.mlp = NumpyMLP(kinds, [self.param[id(p)] for p in params])
        self.mlp_grads = [self.grads[id(p)] for p in params]

    def _view(self, flat: Array, i: int) -> Array:
        p = self.torch_params[i]
        return flat[self.offsets[i] : self.offsets[i + 1]].reshape(p.shape)

    def optimizer_step(self) -> float:
        """Clip the gradients to the model's norm, one Adam step (torch.optim.Adam's arithmetic);
        returns the gradient norm before clipping."""
        grad = self.grad
        norm = float(np.sqrt(np.dot(grad, grad)))
        if math.isfinite(self.model.clip_grad_norm):
            grad *= min(1.0, self.model.clip_grad_norm / (norm + 1e-6))
        (beta1, beta2), eps = self.adam["betas"], self.adam["eps"]
        self.step += 1
        self.exp_avg += (1 - beta1) * (grad - self.exp_avg)
        self.exp_avg_sq *= beta2
        self.exp_avg_sq += (1 - beta2) * grad * grad
        step_size = self.model.lr / (1 - beta1**self.step)
        denom = np.sqrt(self.exp_avg_sq)
        denom /= math.sqrt(1 - beta2**self.step)
        denom += eps
        self.theta -= step_size * self.exp_avg / denom
        return norm

    @torch.no_grad()
    def write_back(self) -> None:
        """Parameters and Adam's state back into the torch model and optimizer."""
        for i, p in enumerate(self.torch_params):
            p.copy_(torch.from_numpy(self._view(self.theta, i)))
            state = self.model.optimizer.state[p]
            state["step"] = torch.tensor(self.step, dtype=torch.float32)
            state["exp_avg"] = torch.from_numpy(self._view(self.exp_avg, i).copy())
            state["exp_avg_sq"] = torch.from_numpy(self._view(self.exp_avg_sq, i).copy())


def ppo_clip_step(flat: FlatModel, mb: dict[str, Array]) -> dict[str, float]:
    """Loss, gradients (into ``flat.grad``) and diagnostics of PPOClipModel.register_losses."""
    model: PPOClipModel = flat.model
    out = flat.mlp.forward(mb["obs"], keep=True)
    n, eps = len(out), model.ppo_clip_range
    actions = mb["actions"]
    if model.action_info.kind == SpaceKind.DISCRETE:
        shifted = out - out.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        log_p = shifted - np.log(total)
        rows = np.arange(n)
        new_log_probs = log_p[rows, actions]
        probs = exp / total
        entropy = -(probs * log_p).sum(axis=1)
    else:
        if model.sde is None:
            log_std = flat.param[id(model.log_std)]
        else:  # gSDE: the std of each state from its features (the output layer's input)
            latent, log_sigma = flat.mlp.inputs[-1], flat.param[id(model.sde.log_std)]
            log_std, variance = sde_log_std(latent, log_sigma)
        inv_std = np.exp(-log_std)
        z = (actions - out) * inv_std
        new_log_probs = gaussian_log_probs(z, log_std)
        entropy = np.broadcast_to((0.5 + HALF_LOG_2PI + log_std).sum(axis=-1), (n,))
    log_ratio = new_log_probs - mb["log_probs"]
    ratio = np.exp(log_ratio)
    adv = mb["advantages"]
    unclipped, clipped = ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv
    # torch.minimum and clamp pass the gradient through the unclipped term where it is the
    # smaller one or where the ratio is inside the range (both terms equal)
    through = (unclipped < clipped) | ((ratio >= 1 - eps) & (ratio <= 1 + eps))
    d_log_probs = np.where(through, adv * ratio * (-model.loss_coef / n), 0).astype(np.float32)
    coef = model.entropy_coef
    if model.action_info.kind == SpaceKind.DISCRETE:
        d_out = probs * -d_log_probs[:, None]
        d_out[rows, actions] += d_log_probs
        if coef:  # d(-coef * mean H)/dlogits = coef/n * p (log p + H)
            d_out += (coef / n) * probs * (log_p + entropy[:, None])
    else:
        d_out = d_log_probs[:, None] * z * inv_std
        # per sample and action dim; the entropy bonus's is -coef/n (H = sum_j log std_j + c)
        d_log_std = d_log_probs[:, None] * (z * z - 1.0) - coef / n
        if model.sde is None:
            flat.grads[id(model.log_std)][...] = d_log_std.sum(axis=0)
        else:  # through variance_j = sum_i phi_i^2 exp(2 log sigma_ij); phi gets none
            d_variance = d_log_std * 0.5 / variance
            d_sigma_sq = np.dot((latent * latent).T, d_variance)
            flat.grads[id(model.sde.log_std)][...] = d_sigma_sq * 2 * np.exp(2 * log_sigma)
    flat.mlp.backward(d_out.astype(np.float32, copy=False), flat.mlp_grads)
    return {
        "policy_loss": -float(np.minimum(unclipped, clipped).mean()),
        "clip_fraction": float((np.abs(ratio - 1) > eps).mean()),
        "clip_epsilon": eps,
        "entropy": float(entropy.mean()),
        "approx_kl": float(((ratio - 1) - log_ratio).mean()),
    }


def value_step(flat: FlatModel, mb: dict[str, Array]) -> dict[str, float]:
    """Loss, gradients and diagnostics of ValueModel.register_losses."""
    model: ValueModel = flat.model
    values = flat.mlp.forward(mb["obs"], keep=True)[:, 0]
    error = values - mb["returns"]
    loss, d_loss = error * error, 2.0 * error
    if model.clip_range is not None:
        old, clip = mb["values"], model.clip_range
        change = values - old
        clipped_error = old + np.clip(change, -clip, clip) - mb["returns"]
        clipped_loss = clipped_error * clipped_error
        # torch.maximum's gradient goes to the larger term and splits a tie evenly; clamp's
        # passes where the change is inside the range, bounds included
        d_clipped = 2.0 * clipped_error * (np.abs(change) <= clip)
        d_loss = np.where(
            loss > clipped_loss,
            d_loss,
            np.where(loss < clipped_loss, d_clipped, 0.5 * (d_loss + d_clipped)),
        )
        loss = np.maximum(loss, clipped_loss)
    d_values = d_loss * (0.5 * model.loss_coef / len(values))
    flat.mlp.backward(d_values[:, None].astype(np.float32, copy=False), flat.mlp_grads)
    return {"value_loss": 0.5 * float(loss.mean())}


STEPS = {PPOClipModel: ppo_clip_step, ValueModel: value_step}


class NumpyStepper:
    """``rollout.update.Stepper`` in numpy for models (by name) that each pass
    ``update_unfit``: flat copies of their parameters and Adam's moments while open, written
    back by ``sync`` and on exit."""

    def __init__(self, models: Mapping[str, BaseModel]):
        self.models = models

    def __enter__(self) -> "NumpyStepper":
        self.flats = {
            name: FlatModel(model, adam_settings(model.optimizer), NumpyMLP.of(model.layers))
            for name, model in self.models.items()
        }
        # overflow to inf/NaN is the guard's to report (agents.guard), not numpy's to warn about
        self.errstate = np.errstate(all="ignore")
        self.errstate.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.errstate.__exit__(*exc)
        self.sync()

    def load(self, batch: Batch) -> Batch:
        values = (getattr(batch, f.name) for f in fields(batch))
        return Batch(*(None if v is None else v.numpy() for v in values))

    def sync(self) -> None:
        for flat in self.flats.values():
            flat.write_back()

    def step(self, minibatch: Batch, active: Mapping[str, BaseModel]) -> dict[str, float]:
        data = vars(minibatch)  # the steps read fields by name (a dataclass's __dict__)
        terms: dict[str, float] = {}
        for name in active:
            flat = self.flats[name]
            terms.update(STEPS[type(flat.model)](flat, data))
            terms[f"grad_norm_{name}"] = flat.optimizer_step()
        return terms
