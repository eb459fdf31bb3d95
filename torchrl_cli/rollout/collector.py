"""The collector: the one rollout step loop, from a vector env into preallocated
``[T, N, ...]`` tensors, with an actor (``rollout.actor``) choosing the actions."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from torchrl_cli.envs import BaseEnv, EnvStep, RewardScaler
from torchrl_cli.envs.base import EnvError
from torchrl_cli.envs.snapshot import from_json, to_json
from torchrl_cli.envs.spaces import SpaceKind, to_env_action
from torchrl_cli.models.base import BaseModel
from torchrl_cli.models.batch import Rollout, Truncation
from torchrl_cli.rollout.actor import Actor

#: the buffers an actor's step writes (obs, actions and log-probs, in row t)
ROWS = ("obs", "actions", "log_probs")


@dataclass
class Episode:
    """A finished episode: of one agent, with many agents (``team``: the sum of every agent's
    return in its copy, on the first of the agents that ended the copy's episode)."""

    ret: float
    length: int
    team: float | None = None
    agent: int | None = None  # the agent's index within its copy (many agents)


class Collector:
    """Steps ``env`` ``n_steps`` times per ``collect`` with ``actor`` acting (the seed's
    batcher).

    Observations are normalized once, on arrival, by the actor (``Actor.observe``, which
    updates the statistics in training mode), and stored normalized so that updates see exactly
    what the policy saw. The actor's recurrent state is carried from step to step and across
    rollouts. Episode returns and lengths are tracked on raw rewards.

    ``memories``: models with a memory that do not act (the value model), by name; their state
    is carried across rollouts beside the actor's, stepped when the rollout's values are
    computed (``estimate_values``). The rollout keeps each step's episode starts (``first``)
    and, with memories, every model's state before each step (``states``), from which the
    update steps each env's sequence again.

    Many agents (``env.n_agents > 1``): each row is an agent; the rollout keeps which rows
    held an agent at each step (``valid``), episodes are each agent's (rows that held none
    count nothing) with their copy's team return, and env steps count the copies' steps.
    """

    def __init__(
        self,
        env: BaseEnv,
        actor: Actor,
        n_steps: int,
        reward_scaler: RewardScaler,
        device: torch.device,
        seed: int,
        memories: Mapping[str, BaseModel] | None = None,
    ):
        self.env = env
        self.memories = dict(memories or {})
        self.actor = actor
        self.n_steps = n_steps
        self.reward_scaler = reward_scaler
        self.device = device
        n, info = env.n_envs, env.get_action_info()
        state_shape = tuple(env.get_state_info().shape)
        action_shape = tuple(info.shape)
        integer = info.kind in (SpaceKind.DISCRETE, SpaceKind.MULTI_DISCRETE)
        action_dtype = torch.long if integer else torch.float32
        t = (n_steps, n)
        self.buffers = Rollout(
            obs=torch.zeros(*t, *state_shape, dtype=actor.normalizer.dtype, device=device),
            actions=torch.zeros(*t, *action_shape, dtype=action_dtype, device=device),
            log_probs=torch.zeros(t, device=device),
            values=torch.zeros(t, device=device),
            rewards=torch.zeros(t, device=device),
            terminated=torch.zeros(t, dtype=torch.bool, device=device),
            truncated=torch.zeros(t, dtype=torch.bool, device=device),
            final_values=torch.zeros(t, device=device),
            last_values=torch.zeros(n, device=device),
            first=torch.zeros(t, dtype=torch.bool, device=device),
        )
        self.agents = env.n_agents  # rows per copy
        self.env_valid = None  # many agents: the rows that held an agent at each step
        if self.agents > 1:
            self.buffers.valid = torch.ones(t, dtype=torch.bool, device=device)
            self.env_valid = np.ones(t, dtype=bool)
        self.masked = info.mask is not None  # the env gives its legal actions
        if self.masked:
            self.buffers.masks = torch.zeros(*t, info.n, dtype=torch.bool, device=device)
        self.action_info = info
        # per-step env outputs land in numpy rows, converted once per rollout (a torch tensor
        # per step per field cost more than the copy)
        self.env_rewards = np.zeros(t, dtype=np.float32)
        self.env_terminated = np.zeros(t, dtype=bool)
        self.env_truncated = np.zeros(t, dtype=bool)
        self.env_first = np.zeros(t, dtype=bool)
        # numpy views of the buffers an actor in numpy writes through (CPU buffers only)
        self.rows = None
        if device.type == "cpu":
            self.rows = replace(self.buffers, **{k: getattr(self.buffers, k).numpy() for k in ROWS})
        self.obs = self.observe(env.reset(seed=seed), env.valid)
        self.valid = self.env_rows()  # the rows holding an agent at self.obs
        self.mask = self.legal()  # the legal actions at self.obs (None: unmasked)
        self.first = np.ones(n, dtype=bool)  # the rows whose self.obs begins an episode
        self.state = self.initial_state()  # the memories' states at self.obs (None: none)
        if self.state is not None:
            self.buffers.states = {k: v.new_zeros(t + v.shape[1:]) for k, v in self.state.items()}
        self.episode_returns = np.zeros(n)
        self.episode_lengths = np.zeros(n, dtype=np.int64)
        self.team_returns = np.zeros(n // self.agents)  # each copy's sum over its agents
        self.finished: list[Episode] = []
        self.num_steps = 0
        self.num_episodes = 0

    def initial_state(self):
        """Fresh states of the actor and of the other ``memories`` for every env row."""
        n = self.env.n_envs
        state = self.actor.initial_state(n)
        if self.memories:
            state = {**(state or {}), **{k: m.initial_state(n) for k, m in self.memories.items()}}
        return state

    def env_rows(self) -> np.ndarray:
        """The rows holding an agent now (all of them for a single-agent env)."""
        valid = self.env.valid
        return np.ones(self.env.n_envs, dtype=bool) if valid is None else valid.copy()

    def observe(self, obs: np.ndarray, counted: np.ndarray | None = None) -> torch.Tensor:
        """Raw observations as the actor's network inputs, as a tensor on the device; the
        statistics count the rows ``counted`` flags (None: all)."""
        return torch.as_tensor(self.actor.observe(obs, counted), device=self.device)

    def legal(self) -> torch.Tensor | None:
        """The env's legal actions now (``[N, n]`` bools), None when it gives none."""
        if not self.masked:
            return None
        return torch.as_tensor(self.env.action_mask, device=self.device)

    def to_env_action(self, actions: torch.Tensor | np.ndarray) -> np.ndarray:
        """Actions as the env takes them (stored unclipped; see ``envs.to_env_action``)."""
        return to_env_action(actions, self.action_info)

    @torch.inference_mode()
    def collect(self, value_fn: Callable[[torch.Tensor], torch.Tensor]) -> Rollout:
        """Fill the buffers with ``n_steps`` vector steps, the actor choosing the actions.

        ``value_fn(obs) -> values``: values do not change during a rollout, so they are
        computed in one batch at its end. The buffers are reused by the next call (copy what
        must outlive it).
        """
        buf = self.buffers
        truncations = self.steps()
        buf.terminated.copy_(torch.from_numpy(self.env_terminated))
        buf.truncated.copy_(torch.from_numpy(self.env_truncated))
        buf.first.copy_(torch.from_numpy(self.env_first))
        if buf.valid is not None:
            buf.valid.copy_(torch.from_numpy(self.env_valid))
        dones = self.env_terminated | self.env_truncated
        rewards = self.reward_scaler.scale_rollout(self.env_rewards, dones, self.env_valid)
        buf.rewards.copy_(torch.from_numpy(rewards))
        buf.truncations = truncations
        self.estimate_values(buf, value_fn, out=buf, carry=True, valued=self.valued)
        self.num_steps += self.n_steps * self.copies
        return buf

    @property
    def copies(self) -> int:
        """The env's copies (its rows, for single-agent envs): what an env step counts."""
        return self.env.n_envs // self.agents

    def steps(self) -> list[Truncation]:
        """The step loop: ``n_steps`` vector steps from ``self.obs``, the actor's outputs
        written into row ``t`` of the buffers (through numpy views when the actor gives numpy
        arrays); returns the time-limit cuts with their final observations."""
        actor, buf, truncations = self.actor, self.buffers, []
        actor.begin_rollout(self.env.n_envs)
        obs, state, first = self.obs, self.state, self.first
        # the loop's lookups made once (a few microseconds of a small env's step each)
        act, observe, env_step = actor.act, actor.observe, self.env_step
        env_first, env_valid, masks = self.env_first, self.env_valid, buf.masks
        for t in range(self.n_steps):
            env_first[t] = first
            held = self.valid  # the rows holding an agent before the step
            if env_valid is not None:
                env_valid[t] = held
            if state is not None:  # the states before the step (the update starts from them)
                for key, value in state.items():
                    buf.states[key][t] = value
            actions, log_probs, state, values = act(obs, state, first, self.mask, t)
            if values is not None:  # valued in the acting forward (a shared body)
                buf.values[t] = values
            rows = self.rows if isinstance(actions, np.ndarray) else buf
            rows.obs[t], rows.actions[t], rows.log_probs[t] = obs, actions, log_probs
            if masks is not None:  # the update scores the actions under the same mask
                masks[t] = self.mask
            step = env_step(t, actions)
            if step.truncated.any():
                # bootstrap from V(final obs), normalized but not counted in the statistics
                idx = np.flatnonzero(step.truncated)
                truncations.append(Truncation(t, idx, actor.normalize_final(step.final_obs[idx])))
            first = step.terminated | step.truncated
            if step.valid is not None:  # an agent that arrives (or returns) starts an episode
                first = first | (step.valid & ~held)
            obs = observe(step.obs, step.valid)  # absent agents' rows are not counted
        self.obs = torch.as_tensor(obs, device=self.device)
        self.state, self.first = state, first
        self.valued = values is not None  # the actor gave V(obs) at every step
        return truncations

    def estimate_values(
        self,
        rollout: Rollout,
        value_fn: Callable[[torch.Tensor], torch.Tensor] | BaseModel,
        out: Rollout | None = None,
        carry: bool = False,
        valued: bool = False,
    ) -> Rollout:
        """``rollout``'s ``values``, ``last_values`` and ``final_values`` from ``value_fn``
        (``self.obs``: the observation after the rollout's last step), written into ``out``'s
        tensors, or into new ones of a copy of ``rollout`` (``recompute_advantages``).

        ``value_fn`` may be a value model with a memory: each env's sequence is stepped from
        the value state before the rollout's first step (``memory_values``); ``carry``: its
        states before each step go into ``out.states`` and the state after the last step is
        carried to the next rollout; ``valued``: ``out.values`` already holds V of the
        rollout's observations (the actor gave them while acting)."""
        if out is None:
            out = replace(
                rollout,
                values=torch.empty_like(rollout.values),
                last_values=torch.empty_like(rollout.last_values),
                final_values=torch.empty_like(rollout.final_values),
            )
        if isinstance(value_fn, BaseModel) and value_fn.memory is not None:
            return self.memory_values(rollout, value_fn, out, carry)
        if not valued:
            out.values.copy_(value_fn(rollout.obs.flatten(0, 1)).view_as(out.values))
        out.last_values.copy_(value_fn(self.obs))
        out.final_values.zero_()
        truncations = rollout.truncations
        if truncations:
            final_values = value_fn(torch.cat([cut.final_obs for cut in truncations]))
            start = 0
            for cut in truncations:
                out.final_values[cut.t, cut.envs] = final_values[start : start + len(cut.envs)]
                start += len(cut.envs)
        return out

    def memory_values(self, rollout: Rollout, model: BaseModel, out: Rollout, carry: bool):
        """``estimate_values`` for a value model with a memory. A cut episode's bootstrap
        V(final obs) continues that episode: from the state after its last step, no reset."""
        key = model.memory.key
        first = rollout.first.T
        latent, before, end = model.unroll(
            rollout.obs.transpose(0, 1), rollout.states[key][0], first, keep=True
        )
        out.values.copy_(model.head(latent).T)
        starts = torch.as_tensor(self.first, device=self.device)
        out.last_values.copy_(model.step(self.obs, end, starts)[0])
        out.final_values.zero_()
        after = torch.cat([before[:, 1:], end.unsqueeze(1)], 1)  # the state after each step
        for cut in rollout.truncations:
            envs = torch.as_tensor(cut.envs, device=self.device)
            no_reset = torch.zeros(len(envs), dtype=torch.bool, device=self.device)
            final = model.step(cut.final_obs, after[envs, cut.t], no_reset)[0]
            out.final_values[cut.t, envs] = final
        if carry and key in self.memories:  # not a memory shared with the actor's policy
            out.states[key].copy_(before.transpose(0, 1))
            self.state = {**self.state, key: end}
        return out

    def env_step(self, t: int, actions: torch.Tensor | np.ndarray) -> EnvStep:
        """Step the env, record its outputs in row ``t`` and track the episodes; ``mask``
        becomes the legal actions at the new observations (masked envs)."""
        try:
            step = self.env.step(self.to_env_action(actions))
        except EnvError as err:
            at = self.num_steps + (t + 1) * self.copies
            raise EnvError(f"{err} at env step {at}") from err.__cause__
        self.env_rewards[t] = step.reward
        self.env_terminated[t] = step.terminated
        self.env_truncated[t] = step.truncated
        if self.agents > 1:
            self._track_agents(step.reward, step.terminated | step.truncated)
            self.valid = self.env_rows()
        else:
            self._track_episodes(step.reward, step.terminated | step.truncated)
        if self.masked:
            self.mask = torch.as_tensor(step.action_mask, device=self.device)
        return step

    def _track_episodes(self, reward: np.ndarray, done: np.ndarray) -> None:
        self.episode_returns += reward
        self.episode_lengths += 1
        if not done.any():
            return
        for i in np.flatnonzero(done):
            self.finished.append(
                Episode(float(self.episode_returns[i]), int(self.episode_lengths[i]))
            )
            self.episode_returns[i] = 0.0
            self.episode_lengths[i] = 0
            self.num_episodes += 1

    def _track_agents(self, reward: np.ndarray, done: np.ndarray) -> None:
        """``_track_episodes`` with many agents: each row that held an agent adds its reward
        to its episode and its copy's team return; a copy's episode ends when every agent it
        held is done (``num_episodes`` counts those)."""
        valid, k = self.valid, self.agents
        self.episode_returns += reward * valid
        self.episode_lengths += valid
        self.team_returns += (reward * valid).reshape(-1, k).sum(1)
        ended = (done & valid).reshape(-1, k)
        copy_done = ended.any(1) & ~(valid.reshape(-1, k) & ~ended).any(1)
        teams = set(np.flatnonzero(copy_done))
        for i in np.flatnonzero(done & valid):
            copy = i // k
            team = float(self.team_returns[copy]) if copy in teams else None
            teams.discard(copy)
            self.finished.append(
                Episode(float(self.episode_returns[i]), int(self.episode_lengths[i]), team, i % k)
            )
            self.episode_returns[i] = 0.0
            self.episode_lengths[i] = 0
        for copy in np.flatnonzero(copy_done):
            self.team_returns[copy] = 0.0
            self.num_episodes += 1

    def pop_episodes(self) -> list[Episode]:
        episodes, self.finished = self.finished, []
        return episodes

    def state_dict(self) -> dict:
        """Everything a resumed run needs to go on collecting exactly where this one stopped."""
        mask = {} if self.mask is None else {"mask": self.mask.cpu()}
        return {
            **mask,
            # the actor's statistics, under the key checkpoints have always had them
            "state_normalizer": self.actor.normalizer.state_dict(),
            "obs": self.obs.cpu(),
            "episode_returns": torch.from_numpy(self.episode_returns.copy()),
            "episode_lengths": torch.from_numpy(self.episode_lengths.copy()),
            "finished": [[e.ret, e.length, e.team, e.agent] for e in self.finished],
            "num_steps": self.num_steps,
            "num_episodes": self.num_episodes,
            "reward_scaler": self.reward_scaler.state_dict(),
            "env": self.env.get_state(),
            "rng": to_json(self.actor.rng.bit_generator.state),
            "first": torch.from_numpy(self.first.copy()),
            **self.agents_state_dict(),
            **self.memory_state_dict(),
        }

    def agents_state_dict(self) -> dict:
        """Many agents: the rows holding an agent and each copy's team return so far."""
        if self.agents == 1:
            return {}
        return {
            "valid": torch.from_numpy(self.valid.copy()),
            "team_returns": torch.from_numpy(self.team_returns.copy()),
        }

    def memory_state_dict(self) -> dict:
        """The memories' states at ``self.obs`` (none without memories)."""
        if self.state is None:
            return {}
        return {"memory": {k: v.cpu() for k, v in self.state.items()}}

    def load_state_dict(self, state: dict, seed: int) -> bool:
        """Restore ``state_dict()``; returns False when the env could not be restored exactly
        (its simulator keeps state out of reach, or the checkpoint holds no snapshot of it: one
        written before its env could be snapshot): its copies then start new episodes, seeded
        from ``seed`` and the step count."""
        self.actor.normalizer.load_state_dict(state["state_normalizer"])
        self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.num_steps, self.num_episodes = state["num_steps"], state["num_episodes"]
        self.finished = [Episode(e[0], int(e[1]), *e[2:]) for e in state["finished"]]
        self.actor.rng.bit_generator.state = from_json(state["rng"])
        if not self.env.restorable or not len(state["env"]):
            self.obs = self.observe(self.env.reset(seed=seed + self.num_steps), self.env.valid)
            self.mask = self.legal()
            self.first[:] = True
            self.state = self.initial_state()
            self.episode_returns[:] = 0.0
            self.episode_lengths[:] = 0
            self.team_returns[:] = 0.0
            self.valid = self.env_rows()
            self.reward_scaler.returns.zero_()
            return False
        self.env.set_state(state["env"])
        self.obs = state["obs"].to(self.device)
        if self.masked:
            self.mask = state["mask"].to(self.device)
            self.env.action_mask = self.mask.cpu().numpy()
        self.episode_returns[:] = state["episode_returns"].numpy()
        self.episode_lengths[:] = state["episode_lengths"].numpy()
        if "first" in state:  # absent from checkpoints before memories
            self.first = state["first"].numpy().copy()
        if "valid" in state:  # many agents
            self.valid = state["valid"].numpy().copy()
            self.env.valid = self.valid.copy()
            self.team_returns[:] = state["team_returns"].numpy()
        if self.state is not None:
            self.state = {k: v.to(self.device) for k, v in state["memory"].items()}
        return True
