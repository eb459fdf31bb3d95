"""Many agents: ``n_envs`` copies of a PettingZoo parallel env behind ``BaseEnv``, every (copy,
agent) pair one row of the batch (the PufferLib / SuperSuit layout), so that the collector, GAE
and the update see ordinary rows.

``env=pettingzoo:<module>`` names a module with PettingZoo's ``parallel_env(**kwargs)``
(``mpe2.simple_spread_v3``, ``pettingzoo.butterfly.pistonball_v6``); a module with only the
AEC ``env(**kwargs)`` goes through PettingZoo's ``aec_to_parallel``.

A row holds, in this order (``RowLayout``):

- the agent's observation, flattened (``gymnasium.spaces.flatten``: Box, Discrete as a
  one-hot, MultiDiscrete, MultiBinary, and Dict or Tuple spaces of them) and zero-padded to
  the widest agent's (SuperSuit's ``pad_observations`` convention for agents whose spaces
  differ), then with ``agent_id`` the
  one-hot of the agent's index: what the policy reads (``RowLayout.policy``);
- with ``central``: the copy's global ``state()`` (or, for an env without one, every agent's
  padded observation joined), then the agent's one-hot again: what a centralized value reads
  (MAPPO's agent-specific global state, Yu et al. 2022, https://arxiv.org/abs/2103.01955).

Actions are padded too: Discrete spaces of different sizes to the largest, the extra actions
masked out (``action_mask``); Box spaces to the widest, each agent taking its own leading
entries, clipped to its own bounds.

Agents that are not in a copy's ``agents`` list (not yet arrived, or gone after their
episode ended) are rows with ``valid`` false: a zero observation, reward 0, never done; the
collector leaves them out of the episode statistics and the update out of every loss.
A copy restarts once all of its agents are gone, on the same step (``final_obs`` then holds
each finished row's last observation).
"""

import importlib
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from torchrl_cli.envs.base import BaseEnv, EnvError, EnvStep, env_seeds, raised
from torchrl_cli.envs.snapshot import object_snapshot, restore_object
from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.errors import ConfigError, first_line

PREFIX = "pettingzoo:"
#: packages whose envs are plain Python objects, restored exactly mid-episode on resume
EXACT_PACKAGES = ("mpe2",)
INSTALL = "pip install 'torchrl-cli[multiagent]'"
#: the pip names of import names that differ from them, for the one-line install hint
PIP_NAMES = {"pettingzoo": "'torchrl-cli[multiagent]'", "mpe2": "'torchrl-cli[multiagent]'"}


def is_pettingzoo(env_id: str) -> bool:
    """Whether ``env_id`` names a PettingZoo env (``pettingzoo:<module>``)."""
    return str(env_id).startswith(PREFIX)


def load_module(env_id: str):
    """The module ``pettingzoo:<module>`` names, or a one-line ConfigError: a package that is
    missing (with its pip install), or a module that is not a PettingZoo env."""
    name = env_id[len(PREFIX):]
    if not name:
        raise ConfigError(f"env '{env_id}' names no module; e.g. env={PREFIX}mpe2.simple_spread_v3")
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        missing = (err.name or name).split(".")[0]
        pip = PIP_NAMES.get(missing, missing)
        parts = name.split(".")
        if parts[0] == "pettingzoo" and len(parts) > 2 and missing != "pettingzoo":
            pip = f"'pettingzoo[{parts[1]}]'"  # an env family's own dependencies (pymunk)
        if missing == name.split(".")[0] and missing not in PIP_NAMES:
            raise ConfigError(
                f"env '{env_id}': no module '{name}' (no package '{missing}'); install the "
                f"package that provides it, or name a PettingZoo env module such as "
                f"mpe2.simple_spread_v3"
            ) from None
        raise ConfigError(
            f"env '{env_id}' needs the package '{missing}', which is not installed; "
            f"pip install {pip}"
        ) from None
    except Exception as err:  # PettingZoo's DependencyNotInstalled names its extra itself
        raise ConfigError(
            f"env '{env_id}': cannot import '{name}' ({type(err).__name__}: {first_line(err)})"
        ) from None
    if not callable(getattr(module, "parallel_env", None)) and not callable(
        getattr(module, "env", None)
    ):
        raise ConfigError(
            f"env '{env_id}': module '{name}' is not a PettingZoo env (it has neither "
            "parallel_env() nor env()); name an env module such as mpe2.simple_spread_v3"
        )
    return module


def make_parallel(env_id: str, kwargs: dict):
    """One parallel env of ``env_id`` made with ``kwargs`` (an AEC-only env through
    ``aec_to_parallel``); ConfigError with its own first line when it cannot be made."""
    module = load_module(env_id)
    try:
        if callable(getattr(module, "parallel_env", None)):
            return module.parallel_env(**kwargs)
        from pettingzoo.utils.conversions import aec_to_parallel

        return aec_to_parallel(module.env(**kwargs))
    except Exception as err:
        raise ConfigError(
            f"cannot make env '{env_id}' with env.kwargs={kwargs}: {raised(err)}"
        ) from None


def render_modes(env_id: str, kwargs: dict) -> list[str]:
    """The render modes ``env_id``'s env declares (its ``metadata["render_modes"]``)."""
    env = make_parallel(env_id, kwargs)
    try:
        return list(getattr(env, "metadata", {}).get("render_modes", []))
    finally:
        env.close()


@dataclass(frozen=True)
class RowLayout:
    """Where each part sits in a row: ``[obs | id][state | id]``; ``policy`` and ``value``
    are the ``(start, stop)`` columns each model reads."""

    obs_width: int  # the widest agent's flattened observation
    n_agents: int
    agent_id: bool
    state_width: int  # the global state's (or the joined observations'); 0 without central
    joined: bool  # the central part joins the observations (the env has no state())

    @property
    def local_width(self) -> int:
        return self.obs_width + (self.n_agents if self.agent_id else 0)

    @property
    def central_width(self) -> int:
        if not self.state_width:
            return 0
        return self.state_width + (self.n_agents if self.agent_id else 0)

    @property
    def width(self) -> int:
        return self.local_width + self.central_width

    @property
    def policy(self) -> tuple[int, int]:
        return (0, self.local_width)

    @property
    def value(self) -> tuple[int, int]:
        """The value's columns: the central part with one, else the policy's."""
        return (self.local_width, self.width) if self.central_width else self.policy


#: the spaces ``gymnasium.spaces.flatten`` turns into numbers (Discrete ones one-hot), which
#: a Dict or Tuple observation may nest
FLAT_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def flat_size(space: spaces.Space, env_id: str, agent: str) -> int:
    """The width of ``agent``'s observation flattened (``gymnasium.spaces.flatdim``), or a
    one-line ConfigError naming the part of the space that does not flatten to numbers."""
    part = unflattened(space)
    if part is not None:
        raise ConfigError(
            f"env '{env_id}': agent {agent}'s observation space holds a {part}, which does not "
            "flatten to numbers; torchrl-cli flattens Box, Discrete, MultiDiscrete and "
            "MultiBinary observations and Dict or Tuple spaces of them (wrap the env to give "
            "one)"
        )
    return int(spaces.flatdim(space))


def unflattened(space: spaces.Space) -> str | None:
    """The name of the first part of ``space`` outside ``FLAT_SPACES`` (None: all flatten)."""
    if isinstance(space, spaces.Dict | spaces.Tuple):
        parts = space.spaces.values() if isinstance(space, spaces.Dict) else space.spaces
        return next((name for name in map(unflattened, parts) if name is not None), None)
    return None if isinstance(space, FLAT_SPACES) else type(space).__name__


def joint_actions(act_spaces: list[spaces.Space], env_id: str) -> tuple[SpaceInfo, np.ndarray]:
    """The action space every row takes (padded) and, for Discrete spaces of different sizes,
    the legal actions ``[n_agents, n]`` of each agent (all true otherwise)."""
    if all(isinstance(s, spaces.Discrete) and s.start == 0 for s in act_spaces):
        n = max(int(s.n) for s in act_spaces)
        legal = np.array([[i < s.n for i in range(n)] for s in act_spaces], dtype=bool)
        mask = None if legal.all() else "info"
        return SpaceInfo(SpaceKind.DISCRETE, (), "int64", n=n, mask=mask), legal
    if all(isinstance(s, spaces.Box) and len(s.shape) == 1 for s in act_spaces):
        width = max(s.shape[0] for s in act_spaces)
        low, high = np.full(width, -1.0, np.float32), np.full(width, 1.0, np.float32)
        lows = [s.low for s in act_spaces]
        highs = [s.high for s in act_spaces]
        for i in range(width):  # the widest bounds of the agents that have entry i
            low[i] = min(lo[i] for lo in lows if i < len(lo))
            high[i] = max(hi[i] for hi in highs if i < len(hi))
        info = SpaceInfo(SpaceKind.CONTINUOUS, (width,), "float32", low, high)
        return info, np.ones((len(act_spaces), 1), dtype=bool)
    kinds = sorted({type(s).__name__ for s in act_spaces})
    raise ConfigError(
        f"env '{env_id}': its agents' action spaces ({', '.join(kinds)}) are not all Discrete "
        "or all one-dimensional Box; torchrl-cli pads those two kinds only"
    )


class PettingZooEnv(BaseEnv):
    """``n_envs`` copies of a PettingZoo parallel env, ``n_agents`` rows per copy (copy-major:
    row ``c * n_agents + i`` is agent ``possible_agents[i]`` of copy ``c``).

    Parameters:
        env_id: ``pettingzoo:<module>``.
        n_envs: copies of the env (the batch has ``n_envs * n_agents`` rows).
        kwargs: passed to the module's ``parallel_env`` (or ``env``).
        agent_id: append each agent's one-hot index to its observation (parameters shared
            across agents tell them apart by it).
        central: append the centralized value's input to each row (``RowLayout``).
        wrappers: callables each copy goes through, in order, as it is made (a recorder of
            its first episode: ``torchrl eval RUN video=true``).
    """

    def __init__(
        self,
        env_id: str,
        *,
        n_envs: int,
        kwargs: dict | None = None,
        agent_id: bool = True,
        central: bool = False,
        wrappers: list = (),
    ):
        self.env_id = env_id
        self.kwargs = dict(kwargs or {})
        self.copies = []
        for _ in range(n_envs):  # in order: a wrapper may number the copies
            env = make_parallel(env_id, self.kwargs)
            for wrap in wrappers:
                env = wrap(env)
            self.copies.append(env)
        first = self.copies[0]
        self.agents = list(first.possible_agents)
        self.index = {agent: i for i, agent in enumerate(self.agents)}
        self.n_copies = n_envs
        self.n_agents = k = len(self.agents)
        self.n_envs = n_envs * k
        self.obs_spaces = [first.observation_space(a) for a in self.agents]
        self.obs_sizes = [
            flat_size(space, env_id, a)
            for space, a in zip(self.obs_spaces, self.agents, strict=True)
        ]
        obs_width = max(self.obs_sizes)
        state_space = getattr(first, "state_space", None) if central else None
        if central and isinstance(state_space, spaces.Box):
            state_width, joined = int(np.prod(state_space.shape)), False
        else:
            state_width, joined = (k * obs_width if central else 0), central
        self.layout = RowLayout(obs_width, k, agent_id, state_width, joined)
        self.act_spaces = [first.action_space(a) for a in self.agents]
        self._action_info, self._legal = joint_actions(self.act_spaces, env_id)
        width = self.layout.width
        self._state_info = SpaceInfo(
            SpaceKind.CONTINUOUS,
            (width,),
            "float32",
            np.full(width, -np.inf, np.float32),
            np.full(width, np.inf, np.float32),
        )
        self.action_mask = None
        if self._action_info.mask is not None:
            self.action_mask = np.tile(self._legal, (n_envs, 1))
        self.valid = np.zeros(self.n_envs, dtype=bool)
        self._one_hot = np.eye(k, dtype=np.float32)

    # the protocol
    def get_state_info(self) -> SpaceInfo:
        return self._state_info

    def get_action_info(self) -> SpaceInfo:
        return self._action_info

    @property
    def simulator(self) -> str:
        return self.env_id[len(PREFIX):].split(".")[0]

    @property
    def state_holder(self) -> str:
        return self.simulator

    @property
    def restorable(self) -> bool:
        """Whether the copies snapshot exactly (``EXACT_PACKAGES``); others keep state in
        native objects (pistonball's pymunk space) and restart their episodes on resume."""
        return self.simulator in EXACT_PACKAGES

    def get_state(self) -> list[str]:
        """A JSON snapshot per copy (``envs.snapshot.object_snapshot``): the env, PettingZoo's
        wrappers and the simulator's objects under them."""
        if not self.restorable:
            return []
        return [object_snapshot(env, (self.simulator, "pettingzoo")) for env in self.copies]

    def set_state(self, state: list[str]) -> None:
        if not self.restorable:
            raise ValueError(f"{self.env_id} cannot be restored from a snapshot")
        if len(state) != self.n_copies:
            raise ValueError(f"{len(state)} env snapshots given where {self.n_copies} are needed")
        for c, (env, text) in enumerate(zip(self.copies, state, strict=True)):
            restore_object(env, text)
            self.valid[self.rows(c)] = [a in env.agents for a in self.agents]

    def close(self) -> None:
        for env in self.copies:
            env.close()

    def views(self) -> dict[str, tuple[int, int] | None]:
        """The columns each model reads, ``{"policy": ..., "value": ...}``, and those of the
        agent's one-hot index (``"agent_ids"``, None without ``agent_id``), by which a net
        per agent tells a row's agent."""
        lay = self.layout
        ids = (lay.obs_width, lay.local_width) if lay.agent_id else None
        return {"policy": lay.policy, "value": lay.value, "agent_ids": ids}

    # stepping
    def reset(self, seed: int | None = None) -> np.ndarray:
        seeds = env_seeds(seed, self.n_copies) if seed is not None else [None] * self.n_copies
        obs = np.zeros((self.n_envs, self.layout.width), np.float32)
        for c in range(self.n_copies):
            obs[self.rows(c)] = self._reset_copy(c, seeds[c])
        return obs

    def rows(self, c: int) -> slice:
        return slice(c * self.n_agents, (c + 1) * self.n_agents)

    def _reset_copy(self, c: int, seed: int | None) -> np.ndarray:
        env = self.copies[c]
        try:
            obs, _ = env.reset(seed=seed)
        except Exception as err:
            raise EnvError(f"env {self.env_id} raised {raised(err)} in reset()") from err
        self.valid[self.rows(c)] = [a in env.agents for a in self.agents]
        return self._rows_of(env, obs)

    def _rows_of(self, env, obs: dict) -> np.ndarray:
        """One copy's rows from its observation dict (absent agents: zeros)."""
        state = None
        if self.layout.state_width and not self.layout.joined:
            state = env.state()
        return self.rows_of(obs, state)

    def rows_of(self, obs: dict, state: np.ndarray | None = None) -> np.ndarray:
        """The rows ``[n_agents, width]`` of one copy from its observations by agent (absent
        agents: zeros; each flattened by ``gymnasium.spaces.flatten``: Dict and Tuple entries
        in their space's order, Discrete ones one-hot) and its global state (None: zeros; a
        policy never reads it)."""
        lay, k = self.layout, self.n_agents
        out = np.zeros((k, lay.width), np.float32)
        for agent, o in obs.items():
            i = self.index[agent]
            out[i, : self.obs_sizes[i]] = spaces.flatten(self.obs_spaces[i], o)
        if lay.agent_id:
            out[:, lay.obs_width : lay.local_width] = self._one_hot
        if lay.state_width:
            if lay.joined:
                central = out[:, : lay.obs_width].reshape(-1)
            elif state is None:
                central = np.zeros(lay.state_width, np.float32)
            else:
                central = np.asarray(state, np.float32).reshape(-1)
            start = lay.local_width
            out[:, start : start + lay.state_width] = central
            if lay.agent_id:
                out[:, start + lay.state_width :] = self._one_hot
        return out

    def env_action(self, i: int, action):
        """Agent ``i``'s action as its own space takes it, from its padded row's action."""
        return self._env_action(i, action)

    def _env_action(self, i: int, action):
        space = self.act_spaces[i]
        if isinstance(space, spaces.Discrete):
            return int(action)
        action = np.asarray(action, space.dtype)[: space.shape[0]]
        return np.clip(action, space.low, space.high)

    def step(self, actions: np.ndarray) -> EnvStep:
        n, k, width = self.n_envs, self.n_agents, self.layout.width
        obs = np.zeros((n, width), np.float32)
        reward = np.zeros(n, np.float32)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        final_obs = None
        for c, env in enumerate(self.copies):
            rows = self.rows(c)
            base = c * k
            acting = list(env.agents)
            step_actions = {
                a: self._env_action(self.index[a], actions[base + self.index[a]]) for a in acting
            }
            try:
                o, r, term, trunc, _ = env.step(step_actions)
            except Exception as err:
                raise EnvError(f"env {self.env_id} raised {raised(err)}") from err
            for agent in acting:
                row = base + self.index[agent]
                reward[row] = r.get(agent, 0.0)
                terminated[row] = bool(term.get(agent, False))
                truncated[row] = bool(trunc.get(agent, False)) and not terminated[row]
            copy_obs = self._rows_of(env, o)
            done = terminated[rows] | truncated[rows]
            if done.any():  # the last observations of the finished agents
                if final_obs is None:
                    final_obs = np.zeros_like(obs)
                final_obs[rows] = copy_obs
            if not env.agents:  # every agent is gone: the copy restarts within the step
                copy_obs = self._reset_copy(c, None)
            else:
                self.valid[rows] = [a in env.agents for a in self.agents]
                copy_obs[~self.valid[rows]] = 0.0  # gone agents' rows hold nothing
            obs[rows] = copy_obs
        if final_obs is not None:  # rows that did not finish keep their new observation
            done = terminated | truncated
            final_obs[~done] = obs[~done]
        return EnvStep(
            obs, reward, terminated, truncated, final_obs, self.action_mask, self.valid.copy()
        )
