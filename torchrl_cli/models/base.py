"""BaseModel: a network, its output layer, its optimizer and its training settings."""

import abc
import math
from collections.abc import Callable

import torch
from torch import nn

from torchrl_cli.envs.spaces import SpaceInfo
from torchrl_cli.models.batch import Batch
from torchrl_cli.models.optim import make_optimizer, step_optimizer
from torchrl_cli.nn import ModuleExtended, SequentialExtended
from torchrl_cli.nn.memory import Memory


def schedule(kind: str, start: float, progress: float) -> float:
    """The value of a schedule at ``progress`` in [0, 1] of the run (linear: start -> 0)."""
    return start * (1.0 - progress) if kind == "linear" else start


def leaf_layers(module: nn.Module) -> list[nn.Module]:
    """The layers a (nested) sequential container calls, in order; other modules stay whole."""
    if isinstance(module, SequentialExtended):
        return leaf_layers(module.layers)
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in leaf_layers(child)]
    return [module]


class BaseModel(ModuleExtended, abc.ABC):
    """A torch network plus how it learns (after the seed's ``torchrl.models.BaseModel``).

    Parameters:
        net: body and head built by ``nn_from_config``; ``output_layer`` is appended to it.
        action_info: the env's action space description (sizes the output layer).
        num_epochs: passes over each rollout.
        num_mini_batches: minibatches each pass is split into.
        optimizer: a partial optimizer constructor; it receives this model's parameters.
        clip_grad_norm: global norm the gradients are clipped to (``inf``: no clipping).
        lr_schedule: ``constant`` or ``linear`` (annealed to 0 at the end of the run).
        loss_coef: weight of this model's losses in the summed objective.
        memory: a recurrent layer between the network and the output layer (``memory=``).
        borrowed: parts of ``net`` (and the memory) that another model trains (the value's view
            of the body, ``net.shared_body``, or of the net and memory, ``memory.shared``, it
            shares with the policy): read by this model, kept out of its optimizer.
    """

    #: gain of the output layer's orthogonal init (``init_orthogonal``); subclasses set it
    output_gain: float = 1.0

    def __init__(
        self,
        net: nn.Module,
        *,
        action_info: SpaceInfo,
        num_epochs: int,
        num_mini_batches: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        clip_grad_norm: float,
        lr_schedule: str,
        loss_coef: float,
        memory: Memory | None = None,
        borrowed: nn.Module | None = None,
    ):
        super().__init__()
        self.net = net
        self.memory = memory
        self.latent_shape = tuple(net.out_shape if memory is None else memory.out_shape)
        self.out = self.output_layer(self.latent_shape, action_info)
        self.layers = [*leaf_layers(net), self.out]  # what forward calls, in order
        self.num_epochs = num_epochs
        self.num_mini_batches = num_mini_batches
        self.clip_grad_norm = clip_grad_norm
        self.lr_schedule = lr_schedule
        self.loss_coef = loss_coef
        foreign = set() if borrowed is None else {id(p) for p in borrowed.parameters()}
        own = [p for p in self.parameters() if id(p) not in foreign]
        self.optimizer = make_optimizer(optimizer, own)
        self.initial_lr = [group["lr"] for group in self.optimizer.param_groups]

    @staticmethod
    @abc.abstractmethod
    def output_layer(input_shape: tuple[int, ...], action_info: SpaceInfo) -> nn.Module:
        """The final layer, appended to the network's head."""

    @abc.abstractmethod
    def register_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Named loss terms (keys ``loss_*``, already weighted) and diagnostics (other keys)."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # the leaf layers one after another, as the nested containers would call them, minus a
        # Python call per container: this runs on every acting step and every minibatch
        if self.memory is not None:
            raise TypeError("a model with a memory steps with a state: use step() or over()")
        for layer in self.layers:
            obs = layer(obs)
        return obs

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The network's output, before the memory and the output layer."""
        for layer in self.layers[:-1]:
            obs = layer(obs)
        return obs

    def head(self, latent: torch.Tensor) -> torch.Tensor:
        """The output layer on the memory's (or the network's) output."""
        return self.out(latent)

    def initial_state(self, n: int) -> torch.Tensor | None:
        """The memory's state for ``n`` fresh rows (None: feed-forward)."""
        return None if self.memory is None else self.memory.initial_state(n)

    def latent_step(
        self, obs: torch.Tensor, state: torch.Tensor, first: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One vector step of the memory on ``obs`` ``[N, ...]``: its output and new state."""
        x = self.features(obs)
        return self.memory.step(x.reshape(x.shape[0], -1), state, first)

    def step(
        self, obs: torch.Tensor, state: torch.Tensor | None, first: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The output for one vector step and the state after it (feed-forward: ``self(obs)``
        and None)."""
        if self.memory is None:
            return self(obs), None
        latent, state = self.latent_step(obs, state, first)
        return self.head(latent), state

    def unroll(
        self, obs: torch.Tensor, state: torch.Tensor, first: torch.Tensor, keep: bool = False
    ):
        """The memory over each row's sequence ``obs [n, T, ...]`` from ``state``, with resets
        where ``first [n, T]``: outputs ``[n, T, H]``, the states before each step (``keep``)
        and the state after the last (``nn.Memory.unroll``). The network runs once over all
        ``n * T`` observations."""
        n, steps = first.shape
        x = self.features(obs.flatten(0, 1))
        return self.memory.unroll(x.reshape(n, steps, -1), state, first, keep)

    def latent_over(self, batch: Batch) -> torch.Tensor:
        """The memory's output for every row of ``batch`` (whole env sequences of
        ``batch.seq_len`` rows each, in order), from each sequence's stored state; once per
        batch inside ``one_forward`` (a memory the policy and the value share)."""

        def unrolled() -> torch.Tensor:
            steps = batch.seq_len
            n = len(batch) // steps
            obs = batch.obs.view(n, steps, *batch.obs.shape[1:])
            state = batch.states[self.memory.key][::steps]
            return self.unroll(obs, state, batch.first.view(n, steps))[0].flatten(0, 1)

        return self.memory.once(batch, unrolled)

    def over(self, batch: Batch) -> torch.Tensor:
        """The output for every row of ``batch``: ``self(batch.obs)``, or with a memory each
        env sequence stepped through from its stored state (``latent_over``)."""
        if self.memory is None:
            return self(batch.obs)
        return self.head(self.latent_over(batch))

    def stop_early(self, terms: dict[str, torch.Tensor]) -> bool:
        """Whether the current batch's remaining epochs should be skipped (after a minibatch)."""
        return False

    def on_batch_end(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Called once after the batch's update; returns diagnostics to log."""
        return {}

    def set_progress(self, progress: float) -> None:
        """Move the schedules to ``progress`` (fraction of the run done, in [0, 1])."""
        for group, lr in zip(self.optimizer.param_groups, self.initial_lr, strict=True):
            group["lr"] = schedule(self.lr_schedule, lr, progress)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def optimizer_step(self) -> torch.Tensor:
        """Clip the gradients, step the optimizer; returns the gradient norm before clipping."""
        params = (p for group in self.optimizer.param_groups for p in group["params"])
        grads = [p.grad for p in params if p.grad is not None]
        # clip_grad_norm_'s arithmetic without its per-call checks and grouping (~25 us a call)
        grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        if math.isfinite(self.clip_grad_norm):
            torch._foreach_mul_(grads, (self.clip_grad_norm / (grad_norm + 1e-6)).clamp(max=1.0))
        step_optimizer(self.optimizer)
        return grad_norm

    def init_orthogonal(self, skip: nn.Module | None = None) -> None:
        """Orthogonal weights, zero biases: sqrt(2) gain in hidden layers, ``output_gain`` last
        (a PPO implementation detail, Engstrom et al. 2020); ``skip``: parts another model
        owns and has initialized (a shared body or memory)."""
        skipped = set() if skip is None else {id(m) for m in skip.modules()}
        for module in self.net.modules():
            if isinstance(module, nn.Linear | nn.Conv2d) and id(module) not in skipped:
                nn.init.orthogonal_(module.weight, math.sqrt(2))
                nn.init.zeros_(module.bias)
        for module in self.out.modules():
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight, self.output_gain)
                nn.init.zeros_(module.bias)
        if self.memory is not None and id(self.memory) not in skipped:
            # gain 1 and zero biases (as CleanRL's LSTM agents)
            for name, param in self.memory.named_parameters():
                if name.startswith("rnn.weight"):
                    nn.init.orthogonal_(param, 1.0)
                elif name.startswith("rnn.bias"):
                    nn.init.zeros_(param)
