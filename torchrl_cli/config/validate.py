"""Range and consistency checks on a composed config, before anything is built."""

import importlib
import inspect
import math
import re

import gymnasium as gym
import torch
from omegaconf import DictConfig, OmegaConf

from torchrl_cli.config.schema import BACKENDS, CRITICS, GUARD_MODES, SCHEDULES
from torchrl_cli.envs.atari import check_atari
from torchrl_cli.envs.envpool_env import check_supported as check_envpool
from torchrl_cli.envs.factory import env_wrappers
from torchrl_cli.envs.frame_stack import frame_stack_refusal, stackable, stacked_info
from torchrl_cli.envs.gym_env import (
    VECTORIZATION_CHOICES,
    check_env_id,
    mujoco_warnings_once,
    simulator_of,
)
from torchrl_cli.envs.native import check_native
from torchrl_cli.envs.pettingzoo_env import PettingZooEnv, is_pettingzoo
from torchrl_cli.envs.pixels import check_pixels
from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind, action_info, state_info
from torchrl_cli.errors import ConfigError, first_line
from torchrl_cli.nn import check_hidden, resolve_net, with_hidden
from torchrl_cli.nn.memory import KINDS
from torchrl_cli.tracking.base import check_backends

# Strings that build a path (the run folder's name) or a console line must be names: a newline
# in agent.name would write a line of its own into train.log
NAME = re.compile(r"[A-Za-z0-9][\w.+-]{0,99}", re.ASCII)
ENV_ID = re.compile(r"[\w.+-]+(?:[:/][\w.+-]+)*", re.ASCII)  # ALE/Pong-v5, my_pkg.envs:MazeEnv
DEVICES = ("auto", "cpu", "cuda")
MAX_WRAPPERS = 100  # each wrapper is a frame deep in every step: thousands overflow the stack
SEED_LIMIT = 2**32  # numpy's legacy seeding takes 0 .. 2**32 - 1
INITS = ("orthogonal", "default")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_names(cfg: DictConfig) -> None:
    """ConfigError unless ``agent.name``, ``net.name`` and ``env.id`` are names (letters,
    digits and ``_ . + -``; ``/`` and ``:`` too in an env id): they name the run folder and
    start console lines. Also checked on a config read back from a run folder."""
    for key, pattern, allowed in (
        ("agent.name", NAME, "letters, digits and _ . + -"),
        ("net.name", NAME, "letters, digits and _ . + -"),
        ("env.id", ENV_ID, "letters, digits, _ . + - and / or : between parts"),
    ):
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not (
            isinstance(value, str) and len(value) <= 200 and pattern.fullmatch(value)
        ):
            raise ConfigError(f"{key}={str(value)[:80]!r} is not a name; use {allowed}")


def validate(cfg: DictConfig) -> tuple[SpaceInfo, SpaceInfo]:
    """Raise ConfigError naming the first bad value and what would be valid; returns the env's
    observation and action spaces (one copy is made to see them). Checks without building any
    network or model (``run.build.check_run`` adds the checks that need them)."""
    check_names(cfg)
    agent, env = cfg.agent, cfg.env
    gym_id = check_env_id(env.id, list(env.imports))
    if is_pettingzoo(gym_id):
        spaces = check_many_agents(cfg)
    else:
        _check(
            "critic" not in agent,
            f"agent={agent.name} trains the agents of a PettingZoo env; choose one with "
            "env=pettingzoo:<module> (e.g. env=pettingzoo:mpe2.simple_spread_v3), or "
            "agent=ppo_clip for a Gymnasium env",
        )
        check_atari(gym_id, env.atari)
        check_pixels(env.pixels)
        train_limit = env.train_max_episode_steps
        _check(
            train_limit is None or train_limit >= 1,
            f"env.train_max_episode_steps={train_limit} must be at least 1 "
            "(null: the env's own limit)",
        )
        spaces = check_spaces(env, gym_id)
    net = resolve_net(cfg.net, spaces[0], env.id)  # a named net must fit the observations
    check_hidden("net", cfg.net.hidden, cfg.net.activation)
    _check(env.n_envs >= 1, f"env.n_envs={env.n_envs} must be at least 1")
    _check(
        env.vectorization in VECTORIZATION_CHOICES,
        f"env.vectorization='{env.vectorization}' must be one of "
        f"{', '.join(VECTORIZATION_CHOICES)}",
    )
    if env.vectorization == "envpool":
        check_envpool(gym_id, env.wrappers, env.kwargs)
    if env.vectorization == "native":  # here too, so that a refusal leaves no run folder
        check_native(gym_id, [*env.wrappers, *([env.atari] if env.atari is not None else [])])
    _check(env.frame_stack >= 1, f"env.frame_stack={env.frame_stack} must be at least 1")
    _check(env.clip_states > 0, f"env.clip_states={env.clip_states} must be > 0")
    _check(env.clip_reward > 0, f"env.clip_reward={env.clip_reward} must be > 0")
    _check(cfg.net.init in INITS, f"net.init='{cfg.net.init}' must be one of {', '.join(INITS)}")
    _check(cfg.device in DEVICES, f"device='{cfg.device}' must be one of {', '.join(DEVICES)}")
    _check(
        cfg.device != "cuda" or torch.cuda.is_available(),
        "device=cuda but torch sees no CUDA device; use device=auto or device=cpu",
    )
    _check(agent.n_steps >= 1, f"agent.n_steps={agent.n_steps} must be at least 1")
    _check(0 < agent.gamma <= 1, f"agent.gamma={agent.gamma} must be in (0, 1]")
    _check(math.isfinite(agent.lr) and agent.lr > 0, f"agent.lr={agent.lr} must be > 0 and finite")
    for seed in [cfg.seed, *(cfg.seeds or [])]:
        _check(
            0 <= seed < SEED_LIMIT,
            f"seed {seed} is out of range; seeds are integers from 0 to {SEED_LIMIT - 1}",
        )
    if "gae_lambda" in agent.advantage:
        lam = agent.advantage.gae_lambda
        _check(0 <= lam <= 1, f"agent.advantage.gae_lambda={lam} must be in [0, 1]")
    batch_size = agent.n_steps * env.n_envs
    for name in ("policy", "value"):
        model = agent.get(name)
        if model is None:
            continue
        key = f"agent.{name}"

        def where(field: str, model=model, key=key) -> str:
            """The key the user sets: the agent's, when the model takes it by interpolation."""
            shared = OmegaConf.is_interpolation(model, field)
            return f"agent.{field}" if shared else f"{key}.{field}"

        own_net = model.get("net") or {}
        check_hidden(f"{key}.net", own_net.get("hidden"), own_net.get("activation"))
        with_hidden(net, own_net)  # a net.hidden without an activation to copy
        _check(
            name != "value" or not net.get("shared_body") or not any(own_net.values()),
            f"{key}.net sets the value's own body, but net.shared_body=true gives it the "
            "policy's; drop one of the two",
        )
        _check(
            name != "value" or not cfg.memory.shared or not any(own_net.values()),
            f"{key}.net sets the value's own net, but memory.shared=true gives it the "
            "policy's net and memory; drop one of the two",
        )
        lr = model.optimizer.get("lr")
        _check(isinstance(lr, int | float) and lr > 0, f"{key}.optimizer.lr={lr} must be > 0")
        check_optimizer(f"{key}.optimizer", model.optimizer)
        _check(model.loss_coef > 0, f"{key}.loss_coef={model.loss_coef} must be > 0")
        if "entropy_coef" in model:
            _check(model.entropy_coef >= 0, f"{key}.entropy_coef={model.entropy_coef} must be >= 0")
        if "sde" in model and model.sde.enabled:
            check_sde(model.sde, spaces[1], env.id)
        _check(
            model.num_epochs >= 1, f"{where('num_epochs')}={model.num_epochs} must be at least 1"
        )
        _check(
            model.num_mini_batches >= 1,
            f"{where('num_mini_batches')}={model.num_mini_batches} must be at least 1",
        )
        if memory_kind(cfg) != "none":
            _check(
                model.num_mini_batches <= env.n_envs,
                f"{where('num_mini_batches')}={model.num_mini_batches} is more than env.n_envs="
                f"{env.n_envs}: with memory={memory_kind(cfg)} a minibatch holds whole env "
                f"sequences; use at most {env.n_envs}",
            )
        _check(
            batch_size // model.num_mini_batches >= 2,
            f"{where('num_mini_batches')}={model.num_mini_batches} is too many for a batch of "
            f"{batch_size} samples (agent.n_steps x env.n_envs); use at most {batch_size // 2}",
        )
        _check(
            model.clip_grad_norm > 0,
            f"{where('clip_grad_norm')}={model.clip_grad_norm} must be > 0 (inf disables "
            "clipping)",
        )
        _check(
            model.lr_schedule in SCHEDULES,
            f"{where('lr_schedule')}='{model.lr_schedule}' must be one of {', '.join(SCHEDULES)}",
        )
        if "clip_schedule" in model:
            _check(
                model.clip_schedule in SCHEDULES,
                f"{key}.clip_schedule="
                f"'{model.clip_schedule}' must be one of {', '.join(SCHEDULES)}",
            )
        if "ppo_clip_range" in model:
            _check(
                model.ppo_clip_range > 0, f"{key}.ppo_clip_range={model.ppo_clip_range} must be > 0"
            )
        if model.get("clip_range") is not None:
            _check(model.clip_range > 0, f"{key}.clip_range={model.clip_range} must be > 0")
        if "kl_target" in model:
            _check(model.kl_target > 0, f"{key}.kl_target={model.kl_target} must be > 0")
            _check(
                model.kl_early_stop is None or model.kl_early_stop > 0,
                f"{key}.kl_early_stop={model.kl_early_stop} must be > 0, or null for never",
            )
        if "kl_penalty" in model:
            _check(model.kl_penalty > 0, f"{key}.kl_penalty={model.kl_penalty} must be > 0")
    _check(
        not agent.recompute_advantages or agent.value is not None,
        "agent.recompute_advantages=true re-evaluates the value model, but agent.value is "
        "null; drop one of the two",
    )
    for key in ("max_steps", "max_iters", "max_episodes"):
        _check(cfg[key] == -1 or cfg[key] > 0, f"{key}={cfg[key]} must be > 0, or -1 for none")
    _check(
        any(cfg[k] > 0 for k in ("max_steps", "max_iters", "max_episodes")),
        "no training budget: set max_steps, max_iters or max_episodes",
    )
    _check(cfg.seeds is None or len(cfg.seeds) >= 1, "seeds=[] needs at least one seed")
    _check(
        cfg.seeds is None or len(set(cfg.seeds)) == len(cfg.seeds),
        f"seeds={list(cfg.seeds or [])} repeats a seed; give each seed once",
    )
    _check(cfg.eval_episodes >= 1, f"eval_episodes={cfg.eval_episodes} must be at least 1")
    cap, grace = cfg.eval_max_episode_steps, cfg.stop_grace_s
    _check(cap >= 1, f"eval_max_episode_steps={cap} must be at least 1")
    _check(grace > 0, f"stop_grace_s={grace} must be > 0")
    _check(
        cfg.keep_checkpoints >= 1,
        f"keep_checkpoints={cfg.keep_checkpoints} must be at least 1 (resume needs one)",
    )
    _check(
        cfg.torch_threads is None or cfg.torch_threads >= 1,
        f"torch_threads={cfg.torch_threads} must be at least 1 (or null: chosen per net)",
    )
    _check(cfg.logger.log_freq >= 1, f"logger.log_freq={cfg.logger.log_freq} must be at least 1")
    check_guard(cfg.guard)
    _check(
        cfg.logger.console in ("full", "table", "quiet"),
        f"logger.console={cfg.logger.console} is not a console mode; choose full, table or quiet",
    )
    _check(
        cfg.logger.table_every_s >= 0,
        f"logger.table_every_s={cfg.logger.table_every_s} must be at least 0",
    )
    _check(
        agent.backend in BACKENDS,
        f"agent.backend={agent.backend} must be one of {', '.join(BACKENDS)}",
    )
    check_memory(cfg.memory)
    _check(
        not cfg.memory.shared or agent.value is not None,
        "memory.shared=true shares the policy's memory with the value, but agent.value=null "
        "trains none; drop memory.shared",
    )
    check_backends(cfg.logger)  # last: it may import mlflow or wandb, and probe a server
    return spaces


def check_sde(sde: DictConfig, action: SpaceInfo, env_id: str) -> None:
    """gSDE takes Box actions and a sample_freq of -1 or at least 1."""
    _check(
        action.kind == SpaceKind.CONTINUOUS,
        f"agent.policy.sde.enabled=true needs Box actions, but env '{env_id}' has "
        f"{action.kind} actions; drop it",
    )
    _check(
        sde.sample_freq == -1 or sde.sample_freq >= 1,
        f"agent.policy.sde.sample_freq={sde.sample_freq} must be at least 1, or -1 for new "
        "noise at rollout starts only",
    )


def memory_kind(cfg: DictConfig) -> str:
    return cfg.memory.kind


def check_memory(memory: DictConfig) -> None:
    """A known kind, at least one unit and one layer, a memory to share where it is shared."""
    _check(
        memory.kind in KINDS,
        f"memory.kind={memory.kind} is not a memory; choose one of {', '.join(KINDS)} "
        "(memory=lstm)",
    )
    _check(
        memory.hidden_size >= 1, f"memory.hidden_size={memory.hidden_size} must be at least 1"
    )
    _check(memory.num_layers >= 1, f"memory.num_layers={memory.num_layers} must be at least 1")
    _check(
        not memory.shared or memory.kind != "none",
        "memory.shared=true shares a memory between policy and value, but memory=none has "
        "none; add memory=lstm or memory=gru, or drop memory.shared",
    )


def check_guard(guard: DictConfig) -> None:
    _check(
        guard.mode in GUARD_MODES,
        f"guard.mode={guard.mode} must be one of {', '.join(GUARD_MODES)}",
    )
    for key in ("kl_factor", "kl_limit", "entropy_floor"):
        _check(guard[key] > 0, f"guard.{key}={guard[key]} must be > 0")


EXTRAS = {"box2d": "box2d", "mujoco": "mujoco", "ale_py": "atari"}


def check_many_agents(cfg: DictConfig) -> tuple[SpaceInfo, SpaceInfo]:
    """A PettingZoo env (``env=pettingzoo:<module>``): an agent that trains many (ippo,
    mappo), the options it steps with, and one copy made to see its rows' spaces."""
    agent, env = cfg.agent, cfg.env
    _check(
        "critic" in agent,
        f"env '{env.id}' has many agents; choose agent=ippo (a value per agent from its own "
        f"observation) or agent=mappo (a centralized value), not agent={agent.name}",
    )
    _check(
        agent.critic in CRITICS,
        f"agent.critic={agent.critic} must be one of {', '.join(CRITICS)}",
    )
    _check(
        agent.share_parameters or agent.agent_id,
        "agent.share_parameters=false needs agent.agent_id=true (a net per agent tells a row's "
        "agent by its one-hot index)",
    )
    _check(
        env.vectorization in ("auto", "sync"),
        f"env.vectorization={env.vectorization}: a PettingZoo env's copies step in this "
        "process; use env.vectorization=auto or sync",
    )
    for key, value, allowed in (
        ("env.wrappers", list(env.wrappers), "[]"),
        ("env.atari", env.atari, "null"),
        ("env.train_max_episode_steps", env.train_max_episode_steps, "null"),
    ):
        _check(
            not value,
            f"{key} is not supported with a PettingZoo env ({env.id}); use {key}={allowed} "
            "(an episode's length: the env's own kwargs, e.g. +env.kwargs.max_cycles=25)",
        )
    _check(
        cfg.memory.kind == "none",
        f"memory={cfg.memory.kind} is not supported with many agents yet; use memory=none",
    )
    _check(
        agent.backend != "numpy",
        f"agent.backend=numpy cannot serve agent={agent.name} (its nets read parts of each "
        "row); use agent.backend=auto or torch",
    )
    made = PettingZooEnv(
        env.id, n_envs=1, kwargs=dict(env.kwargs), agent_id=agent.agent_id,
        central=agent.critic == "central",
    )
    try:
        return made.get_state_info(), made.get_action_info()
    finally:
        made.close()


def check_spaces(env_cfg: DictConfig, gym_id: str) -> tuple:
    """Make one copy of the env (presets and wrappers applied, as training will) and check
    that its spaces are supported."""
    if env_cfg.vectorization == "envpool" and env_cfg.atari is not None:
        # EnvPool preprocesses in C++; Gymnasium's wrappers make the same spaces to check
        env_cfg = OmegaConf.merge(env_cfg, {"vectorization": "sync"})
    check_wrapper_targets(env_cfg.wrappers)
    try:
        wrappers, kwargs = env_wrappers(env_cfg)
    except ConfigError:
        raise
    except Exception as err:  # Hydra's own failure to build a wrapper's partial
        raise ConfigError(f"env.wrappers cannot be built: {first_line(err)}") from None
    if simulator_of(gym_id) == "mujoco":
        mujoco_warnings_once()
    try:
        env = gym.make(gym_id, **kwargs)
    except gym.error.DependencyNotInstalled as err:
        extra = EXTRAS.get(simulator_of(gym_id))
        hint = f"pip install 'torchrl-cli[{extra}]'" if extra else "install its package"
        raise ConfigError(
            f"env '{env_cfg.id}' needs a package that is not installed "
            f"({first_line(err)}); {hint}"
        ) from None
    except Exception as err:
        raise ConfigError(
            f"cannot make env '{env_cfg.id}' with env.kwargs="
            f"{dict(env_cfg.kwargs)}: {type(err).__name__}: {first_line(err, empty='(no message)')}"
        ) from None
    try:
        presets = len(wrappers) - len(env_cfg.wrappers)
        for i, wrap in enumerate(wrappers):
            try:
                env = wrap(env)
            except ConfigError:
                raise
            except Exception as err:
                what = (
                    f"env.wrappers entry {dict(env_cfg.wrappers[i - presets])}"
                    if i >= presets
                    else "the env's preprocessing preset"
                )
                raise ConfigError(
                    f"{what} failed: {type(err).__name__}: {first_line(err, empty='(no message)')}"
                ) from None
        state = stacked(env_cfg, state_info(env.observation_space, env_cfg.id))
        return state, action_info(env.action_space, env_cfg.id)
    finally:
        env.close()


def stacked(env_cfg: DictConfig, state: SpaceInfo) -> SpaceInfo:
    """The observations as ``env.frame_stack`` gives them (ConfigError for images inside a
    Dict or Tuple)."""
    k = env_cfg.frame_stack
    if k <= 1:  # below 1: its own one-line error
        return state
    if not stackable(state):
        raise ConfigError(frame_stack_refusal(env_cfg))
    return stacked_info(state, k)


def check_wrapper_targets(wrappers) -> None:
    """ConfigError naming the first ``env.wrappers`` entry that is not a node with a
    ``_target_`` that can be imported (Hydra's own error is a long chained traceback)."""
    if len(wrappers) > MAX_WRAPPERS:
        raise ConfigError(
            f"env.wrappers lists {len(wrappers)} wrappers; at most {MAX_WRAPPERS} are supported"
        )
    from hydra._internal.utils import _locate

    for i, node in enumerate(wrappers):
        target = node.get("_target_") if isinstance(node, DictConfig) else None
        if not isinstance(target, str):
            raise ConfigError(
                f"env.wrappers[{i}] is not a node with a _target_ ({str(node)[:80]}); give "
                "e.g. {_target_: gymnasium.wrappers.ClipAction}"
            )
        try:
            _locate(target)
        except Exception as err:
            reason = first_line(str(err).replace("\n", " ").split("Are you sure")[0].strip())
            raise ConfigError(
                f"env.wrappers[{i}]._target_={target} cannot be imported ({reason}); name an "
                "importable wrapper class, e.g. gymnasium.wrappers.ClipAction"
            ) from None


def check_optimizer(key: str, node: DictConfig) -> None:
    """Every optimizer argument must be a parameter of the chosen optimizer class."""
    module, _, name = str(node._target_).rpartition(".")
    try:  # not hydra's get_class: it logs three lines of its own before raising
        cls = getattr(importlib.import_module(module), name)
        if not isinstance(cls, type):
            raise TypeError(name)
    except Exception:
        raise ConfigError(
            f"{key}._target_={node._target_} is not an importable class; use e.g. "
            "torch.optim.Adam, torch.optim.RMSprop or torch.optim.SGD"
        ) from None
    params = inspect.signature(cls.__init__).parameters
    for name in node:
        if not str(name).startswith("_") and name not in params:
            raise ConfigError(
                f"{key}.{name} is not a parameter of {node._target_}; remove it with ~{key}.{name}"
            )
