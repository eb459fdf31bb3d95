"""Trained policies outside training: ``load_policy`` in Python, ``export_policy`` for torch
alone. Both act as the final evaluation does: frozen normalization, greedy actions, clipping."""

from collections.abc import Iterable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from torchrl_cli.envs.encode import batch_size_of, example_obs, make_encoder
from torchrl_cli.envs.frame_stack import STACKED_LAYOUTS
from torchrl_cli.envs.gym_env import check_env_id
from torchrl_cli.envs.spaces import (
    MASK_KEY,
    SpaceInfo,
    SpaceKind,
    image_chw,
    image_layout,
    to_env_action,
)
from torchrl_cli.models.distributions import greedy_action
from torchrl_cli.run.checkpoint import LAST, Checkpoint
from torchrl_cli.run.folder import load_run, load_weights


class GreedyPolicy(nn.Module):
    """Raw observations ``[B, *obs]`` (dicts or tuples of them for Dict and Tuple spaces) to
    greedy actions ``[B, *action]``: the observation encoder (``envs.encode``; None for a
    plain Box), the state normalizer with its frozen statistics, the policy network, the most
    likely action (the most likely legal one for a masked env: ``obs["action_mask"]`` for a
    Dict observation that holds it, else the ``action_mask`` argument, the env's
    ``info["action_mask"]``), and Box actions clipped to the bounds."""

    def __init__(
        self,
        normalizer: nn.Module,
        model: nn.Module,
        action_info: SpaceInfo,
        encoder: nn.Module | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.normalizer = normalizer.eval()
        self.model = model.eval()
        self.action_info = action_info
        self.mask = action_info.mask  # obs, info or None
        self.clipped = action_info.kind == SpaceKind.CONTINUOUS
        if self.clipped:
            self.register_buffer("low", torch.as_tensor(action_info.low))
            self.register_buffer("high", torch.as_tensor(action_info.high))
        self.requires_grad_(False)  # acting only: exported outputs carry no autograd graph
        self.eval()

    def forward(self, obs, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.mask == "obs" and action_mask is None:
            action_mask = obs[MASK_KEY]
        if self.encoder is not None:
            obs = self.encoder(obs)
        return self.act_encoded(obs, action_mask)

    def act_encoded(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None):
        """``forward`` on observations already encoded (as ``GymEnv`` gives them)."""
        params = self.model(self.normalizer.normalize(obs))
        return self.clip(greedy_action(params, self.action_info, action_mask))

    def clip(self, action: torch.Tensor) -> torch.Tensor:
        return torch.clamp(action, self.low, self.high) if self.clipped else action

    def step_encoded(
        self, obs: torch.Tensor, state: torch.Tensor, action_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A policy with a memory: greedy actions for encoded observations and the state
        before the step (``model.initial_state(n)``'s zeros at an episode start), and the state
        after it."""
        no_reset = torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)
        latent, state = self.model.latent_step(self.normalizer.normalize(obs), state, no_reset)
        params = self.model.out(latent)
        return self.clip(greedy_action(params, self.action_info, action_mask)), state


class Policy:
    """A callable from an observation as the env that ``make_env()`` builds gives it (one, or
    a batch; a dict of arrays for a Dict space, a tuple for a Tuple space) to an action as the
    env takes it; ``module`` is the underlying ``GreedyPolicy``. A masked env's legal actions
    come from the observation (its ``action_mask`` entry) or, for an env that gives them in
    its info, as ``policy(obs, action_mask=info["action_mask"])``.

    A policy with a memory (``memory=lstm|gru``) carries its state from call to call, one row
    per observation of the batch: ``reset()`` starts every row over (call it before each new
    episode, or ``end_episodes(done)`` for the rows whose episode ended), or step it with an
    explicit state, ``actions, state = policy.step(obs, state)`` from
    ``state = policy.initial_state(batch size)``. ``recurrent`` says which kind it is."""

    def __init__(
        self,
        module: GreedyPolicy,
        state_info: SpaceInfo,
        action_info: SpaceInfo,
        env_cfg: DictConfig | None = None,
    ):
        self.module = module
        self.state_info = state_info
        self.action_info = action_info
        self.env_cfg = env_cfg
        self.state: torch.Tensor | None = None  # a memory's state between calls

    @property
    def recurrent(self) -> bool:
        """Whether the policy has a memory (``memory=lstm|gru``) and carries a state."""
        return self.module.model.memory is not None

    def initial_state(self, n: int) -> torch.Tensor:
        """A memory's state for ``n`` rows at an episode start (zeros)."""
        return self.module.model.initial_state(n)

    def reset(self) -> None:
        """Every row starts a new episode at the next call."""
        self.state = None

    def end_episodes(self, done: np.ndarray) -> None:
        """The rows flagged in ``done`` start a new episode at the next call."""
        if self.state is not None:
            keep = torch.as_tensor(~np.asarray(done, dtype=bool)).view(-1, 1, 1, 1)
            self.state = self.state * keep

    @torch.inference_mode()
    def step(self, obs, state: torch.Tensor, action_mask=None) -> tuple[np.ndarray, torch.Tensor]:
        """A policy with a memory, stepped with an explicit state: actions and the state after
        the step (``state``: ``initial_state(n)`` at an episode start, else the last call's)."""
        if not self.recurrent:
            raise ValueError("this policy has no memory: call policy(obs)")
        return self._act(obs, action_mask, state)

    @torch.inference_mode()
    def __call__(self, obs, action_mask=None) -> np.ndarray:
        """The action for one observation, or the actions for a batch, as the env takes them.

        ``obs`` is what ``make_env()`` gives (a dict of arrays for a Dict space, a tuple for a
        Tuple space); ``action_mask``: the legal actions of an env that gives them in its info
        (``info["action_mask"]``). A policy with a memory carries its state to the next call.
        """
        if not self.recurrent:
            return self._act(obs, action_mask)
        actions, self.state = self._act(obs, action_mask, self.state, carried=True)
        return actions

    def _act(self, obs, action_mask=None, state=None, carried: bool = False):
        encoded = self._encoded(obs)
        single = False if encoded else batch_size_of(self.state_info, obs) is None
        batch = torch.as_tensor(np.asarray(obs)) if encoded else _batched(obs, single)
        mask = None if action_mask is None else _batched(action_mask, single)
        if mask is None and self.action_info.mask == "info":
            raise ValueError(
                "this policy acts among the legal actions, which its env gives in the info: "
                "call policy(obs, action_mask=info['action_mask'])"
            )
        if self.recurrent:
            if not encoded:
                if self.action_info.mask == "obs" and mask is None:
                    mask = batch[MASK_KEY]
                if self.module.encoder is not None:
                    batch = self.module.encoder(batch)
            if state is None and carried:
                state = self.initial_state(batch.shape[0])
            actions, state = self.module.step_encoded(batch, state, mask)
            actions = to_env_action(actions, self.action_info)
            return (actions[0] if single else actions), state
        if encoded:
            actions = self.module.act_encoded(batch, mask)
        else:
            actions = self.module(batch, mask)
        actions = to_env_action(actions, self.action_info)
        return actions[0] if single else actions

    def _encoded(self, obs) -> bool:
        """Whether ``obs`` is a batch already encoded, as ``GymEnv`` gives it (``torchrl
        eval``), rather than raw: an array for a Dict or Tuple space, or a batch of the encoded
        shape where that differs from the raw one (a Discrete observation's one-hots)."""
        if not self.state_info.entries:
            return False
        if self.state_info.structured:
            return not isinstance(obs, dict | tuple)
        shape = tuple(np.shape(obs)[1:])
        return shape == tuple(self.state_info.shape) != tuple(self.state_info.entries[0].shape)

    def make_env(self, render_mode: str | None = None, evaluation: bool = True) -> gym.Env:
        """One copy of the run's env, as training built it (the packages it needs imported,
        the presets and ``env.wrappers`` applied; ``evaluation``: without training-only
        wrappers): its observations are what this policy takes."""
        from torchrl_cli.envs.factory import env_wrappers

        if self.env_cfg is None:
            raise ValueError("this policy was built without its run's env config")
        wrappers, kwargs = env_wrappers(self.env_cfg, evaluation=evaluation)
        gym_id = check_env_id(self.env_cfg.id, list(self.env_cfg.imports))
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        env = gym.make(gym_id, **kwargs)
        for wrap in wrappers:
            env = wrap(env)
        k = self.env_cfg.frame_stack
        if k > 1:  # the last k observations of the episode, oldest first, as training's
            env = stacked_env(env, k)
        return env


def stacked_env(env: gym.Env, k: int) -> gym.Env:
    """``env`` with the last ``k`` observations joined as ``env.frame_stack`` joins them: a
    vector's concatenated ``[k * D]``, an image's along its channels ``[k * C, H, W]``, a Dict
    or Tuple's entry by entry (each leaf ``[k, ...]``, as the policy's entries describe them;
    the legal actions of a Dict's ``action_mask`` entry are the newest's alone)."""
    space = env.observation_space
    layout = image_layout(space) if isinstance(space, gym.spaces.Box) else None
    stacked = gym.wrappers.FrameStackObservation(env, k, padding_type="reset")
    if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        if not (isinstance(space, gym.spaces.Dict) and MASK_KEY in space.spaces):
            return stacked
        box = space.spaces[MASK_KEY]
        spaces = {**stacked.observation_space.spaces, MASK_KEY: box}
        return gym.wrappers.TransformObservation(
            stacked, lambda obs: {**obs, MASK_KEY: obs[MASK_KEY][-1]}, gym.spaces.Dict(spaces)
        )
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return gym.wrappers.FlattenObservation(stacked)
    if layout is None:
        env.close()
        raise ValueError(
            f"env.frame_stack={k} over {type(space).__name__} observations stacks their "
            "encoded vectors, which make_env does not give; use torchrl eval"
        )
    # k raw frames [k, *frame] as the encoder lays one stack out: channels first, k * C of them
    joined = STACKED_LAYOUTS.get(layout, layout)
    box = stacked.observation_space
    low, high = (image_chw(np.asarray(bound), joined) for bound in (box.low, box.high))
    return gym.wrappers.TransformObservation(
        stacked,
        lambda obs: image_chw(np.asarray(obs), joined),
        gym.spaces.Box(low, high, low.shape, box.dtype),
    )


def _batched(obs, single: bool):
    """A raw observation structure as tensors with a batch dim."""
    if isinstance(obs, dict):
        return {k: _batched(v, single) for k, v in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_batched(v, single) for v in obs)
    array = np.asarray(obs)
    if array.dtype.kind not in "biuf":  # strings (a Text entry, dropped by the encoder)
        return array
    return torch.as_tensor(array[None] if single else array)


class AgentsPolicy:
    """The policy of a multi-agent run (``env=pettingzoo:<module>``), acting for every agent of
    one env from its dict of observations, as a PettingZoo parallel env gives them:

        actions = policy(observations)  # {agent: action} for each agent observed
        observations, rewards, terminations, truncations, infos = env.step(actions)

    ``policy.rows`` is the ``Policy`` on the rows the training env gave (what ``torchrl
    export`` exports); ``make_env()`` makes a parallel env of the run's."""

    def __init__(self, rows: Policy, layout):
        self.rows = rows
        self.layout = layout  # a PettingZooEnv of one copy: the run's rows and spaces
        self.agents = list(layout.agents)

    @property
    def recurrent(self) -> bool:
        return False

    def __call__(self, observations: dict) -> dict:
        """``{agent: action}`` for each agent in ``observations`` (``{agent: observation}``)."""
        unknown = [a for a in observations if a not in self.layout.index]
        if unknown:
            raise ValueError(f"unknown agents {unknown}; this policy acts for {self.agents}")
        rows = self.layout.rows_of(observations)
        present = [self.layout.index[a] for a in observations]
        mask = self.layout.action_mask
        actions = self.rows(rows[present], None if mask is None else mask[present])
        return {
            agent: self.layout.env_action(i, actions[j])
            for j, (agent, i) in enumerate(zip(observations, present, strict=True))
        }

    def make_env(self, render_mode: str | None = None):
        """A PettingZoo parallel env of the run's, with its kwargs (and ``render_mode``)."""
        from torchrl_cli.envs.pettingzoo_env import make_parallel

        kwargs = dict(self.rows.env_cfg.kwargs)
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        return make_parallel(self.rows.env_cfg.id, kwargs)


def load_policy(
    run_dir: str | Path, checkpoint: str = LAST, trust: Iterable[str] = ()
) -> Policy | AgentsPolicy:
    """The deterministic policy of a run folder's checkpoint, ready to act:

        policy = load_policy("runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1")
        action = policy(obs)

    Args:
        run_dir: a run folder (its ``config.yaml`` and ``checkpoints/``).
        checkpoint: ``last``, ``best`` (the best evaluation so far) or a checkpoint file.
        trust: module prefixes whose ``_target_``s the run's config may build beyond the
            default allowlist (only for a run folder you trust: building a target runs its
            code).

    Returns:
        A ``Policy``; for a multi-agent run (``env=pettingzoo:<module>``) an
            ``AgentsPolicy``, which acts for every agent from a dict of observations,
            ``actions = policy(observations)``.
    """
    cfg, ckpt = load_run(Path(run_dir), checkpoint, trust)
    policy = policy_from_checkpoint(cfg, ckpt)
    from torchrl_cli.envs.pettingzoo_env import is_pettingzoo

    if not is_pettingzoo(cfg.env.id):
        return policy
    from torchrl_cli.envs.factory import build_env

    return AgentsPolicy(policy, build_env(cfg.env, 1, evaluation=True, agent_cfg=cfg.agent))


def policy_from_checkpoint(cfg: DictConfig, checkpoint: Checkpoint) -> Policy:
    """The policy of ``checkpoint``, of a run with config ``cfg``."""
    from torchrl_cli.run.build import build_model, build_normalizer, config_views, per_agent

    state_info, action_info = checkpoint.state_info, checkpoint.action_info
    views = config_views(cfg)
    model = build_model(
        cfg.agent.policy, cfg.net, state_info, action_info, (cfg.memory, "policy"),
        views["policy"], per_agent=per_agent(cfg, views),
    )
    load_weights(model, checkpoint.model_weights("policy"), checkpoint.path)
    normalizer = build_normalizer(cfg, state_info)
    load_weights(normalizer, checkpoint.normalizer_weights, checkpoint.path)
    module = GreedyPolicy(normalizer, model, action_info, make_encoder(state_info))
    return Policy(module, state_info, action_info, cfg.env)


def export_policy(policy: Policy, out: Path) -> Path:
    """Write ``policy`` as a ``torch.export`` program (batch size free): it runs with torch
    alone, ``torch.export.load(out).module()(obs)``, on raw observations of the env's dtype
    (dicts or tuples of tensors for Dict and Tuple spaces). A masked env's legal actions, int8
    flags ``[B, n]``: the observation dict's ``action_mask`` entry, or the second argument
    (``module()(obs, action_mask)``) for an env that gives them in its info."""
    args = tuple(example_inputs(policy, 2).values())
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple(tree_map(lambda _: {0: batch}, arg) for arg in args)
    with torch.no_grad():
        program = torch.export.export(policy.module, args, dynamic_shapes=dynamic)
    torch.export.save(program, out)
    return out


class RecurrentStep(nn.Module):
    """A policy with a memory as one step with its state explicit, what ``torchrl export``
    writes for it: ``(obs, state[, action_mask]) -> (action, state after)``, ``state``
    ``[B, parts, num_layers, hidden]`` (``parts``: 2 for an LSTM's h and c, 1 for a GRU),
    zeros at an episode start."""

    def __init__(self, greedy: GreedyPolicy):
        super().__init__()
        self.greedy = greedy

    def forward(self, obs, state: torch.Tensor, action_mask: torch.Tensor | None = None):
        greedy = self.greedy
        if greedy.mask == "obs" and action_mask is None:
            action_mask = obs[MASK_KEY]
        if greedy.encoder is not None:
            obs = greedy.encoder(obs)
        return greedy.step_encoded(obs, state, action_mask)


#: random steps a recurrent export is checked on against the torch policy, per batch size
RECURRENT_CHECK_STEPS = 16


def export_recurrent(policy: Policy, out: Path) -> Path:
    """``export_policy`` for a policy with a memory: a ``torch.export`` program of
    ``RecurrentStep`` (batch size free), checked to give the torch policy's actions and states
    over ``RECURRENT_CHECK_STEPS`` steps of random observations, each step's state fed back,
    before it is written (a FaultError and nothing written otherwise)."""
    module = RecurrentStep(policy.module).eval()
    inputs = example_inputs(policy, 2)
    state = policy.initial_state(2)
    args = (inputs["obs"], state, *([inputs["action_mask"]] if "action_mask" in inputs else []))
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple(tree_map(lambda _: {0: batch}, arg) for arg in args)
    with torch.no_grad():
        program = torch.export.export(module, args, dynamic_shapes=dynamic)
    exported = program.module()
    rng = np.random.default_rng(0)
    for n in (1, 3):
        want_state = got_state = policy.initial_state(n)
        for _ in range(RECURRENT_CHECK_STEPS):
            step_inputs = example_inputs(policy, n, rng)
            extra = [step_inputs["action_mask"]] if "action_mask" in step_inputs else []
            with torch.no_grad():
                want, want_state = module(step_inputs["obs"], want_state, *extra)
                got, got_state = exported(step_inputs["obs"], got_state, *extra)
            if not (torch.equal(want, got) and torch.allclose(want_state, got_state, atol=1e-6)):
                from torchrl_cli.errors import FaultError

                raise FaultError("the exported recurrent policy differs from the torch policy "
                                 "on random observations; nothing written")
    torch.export.save(program, out)
    return out


def example_inputs(policy: Policy, batch: int, rng: np.random.Generator | None = None) -> dict:
    """The exported policy's arguments for ``batch`` samples, by name: ``obs`` (raw, as
    ``example_obs`` makes them: zeros, or random with ``rng``; a plain Box as float32, uint8
    frames as uint8) and, for an env that gives the legal actions in its info, ``action_mask``
    (int8 flags, at least one legal action a row; for a Dict observation that holds them, they
    are its ``action_mask`` entry)."""
    obs = example_obs(policy.state_info, batch, rng)
    if not policy.state_info.entries and policy.state_info.dtype != "uint8":
        obs = obs.float()  # float32 in, as before; uint8 frames stay uint8
    source, n = policy.action_info.mask, policy.action_info.n or 0
    mask = torch.ones((batch, n), dtype=torch.int8)
    if rng is not None and n:
        flags = rng.integers(2, size=(batch, n), dtype=np.int8)
        flags[np.arange(batch), rng.integers(n, size=batch)] = 1
        mask = torch.as_tensor(flags)
    if source == "obs":
        obs = {**obs, MASK_KEY: mask}
    return {"obs": obs, "action_mask": mask} if source == "info" else {"obs": obs}


def tree_map(fn, tree):
    """``fn`` of each tensor of a structure of dicts and tuples, in the same structure."""
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(tree_map(fn, v) for v in tree)
    return fn(tree)
