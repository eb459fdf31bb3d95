"""Building the training stack from a composed config: envs, networks, models, normalization,
the backend, the collector and the agent. Every factory takes the config node it reads."""

import math
import random
from functools import partial

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from torchrl_cli.agents.base import TrainSchedule
from torchrl_cli.agents.evaluation import EVAL_SEED_OFFSET
from torchrl_cli.agents.guard import Guard
from torchrl_cli.agents.logger import Logger
from torchrl_cli.agents.pg import PGAgent
from torchrl_cli.backends import resolve_backend
from torchrl_cli.envs import (
    GymEnv,
    RewardScaler,
    StateNormalizer,
    check_env_id,
    is_atari,
    wrap_atari,
)
from torchrl_cli.envs.envpool_env import atari_options
from torchrl_cli.envs.native import has_native
from torchrl_cli.envs.pixels import wrap_pixels
from torchrl_cli.envs.spaces import SpaceInfo
from torchrl_cli.models import BaseModel
from torchrl_cli.nn import nn_from_config, resolve_net, with_hidden
from torchrl_cli.nn.memory import Memory
from torchrl_cli.rollout.actor import acting_rng
from torchrl_cli.rollout.collector import Collector
from torchrl_cli.utils import get_obj


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(
    device: str, net_cfg: DictConfig | None = None, state_info: SpaceInfo | None = None
) -> torch.device:
    """``auto``: CUDA only for nets with convolutions (image observations) when a GPU is there.

    An MLP on low-dimensional observations does a few microseconds of arithmetic per call, so on
    a GPU the kernel launches and the host-device copy of every acting step cost more than they
    save; a conv net over images is the opposite (docs/performance.md). ``net=auto`` is
    resolved on ``state_info`` first (without it, auto counts as no conv).
    """
    if net_cfg is not None and state_info is not None:
        net_cfg = resolve_net(net_cfg, state_info)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and has_conv(net_cfg) else "cpu"
    return torch.device(device)


def has_conv(net_cfg: DictConfig | None) -> bool:
    layers = [] if net_cfg is None else [*net_cfg.body, *net_cfg.head]
    return any("Conv" in str(layer) for layer in layers)  # nested ones too (multi_input)


def build_env(
    env_cfg: DictConfig, n_envs: int, *, evaluation: bool = False, extra_wrappers: list = ()
) -> GymEnv:
    """The vector env ``env_cfg`` describes; ``evaluation``: without training-only wrappers;
    ``extra_wrappers`` go outside the configured ones (e.g. a video recorder)."""
    wrappers, kwargs = env_wrappers(env_cfg, evaluation=evaluation)
    return GymEnv(
        env_cfg.id,
        n_envs=n_envs,
        vectorization=env_cfg.vectorization,
        wrappers=[*wrappers, *extra_wrappers],
        imports=list(env_cfg.imports),
        **kwargs,
    )


def env_wrappers(env_cfg: DictConfig, *, evaluation: bool = False) -> tuple[list, dict]:
    """The wrappers each copy gets, in order (the presets first: ``env.atari`` for ALE games,
    ``env.pixels`` for other envs with pixel observations; then ``env.wrappers``), and the
    ``gymnasium.make`` kwargs."""
    gym_id = check_env_id(env_cfg.id, list(env_cfg.imports))
    wrappers = [wrapper_factory(node) for node in env_cfg.wrappers]
    kwargs = dict(env_cfg.kwargs)
    train_limit = env_cfg.train_max_episode_steps
    if train_limit is not None and not evaluation:
        kwargs["max_episode_steps"] = train_limit
    pixels = env_cfg.pixels
    if env_cfg.atari is not None and env_cfg.vectorization == "envpool":
        kwargs = atari_options(gym_id, env_cfg.atari, training=not evaluation) | kwargs
    elif env_cfg.atari is not None:
        wrappers.insert(0, partial(wrap_atari, **env_cfg.atari, training=not evaluation))
        kwargs["frameskip"] = 1  # the preprocessing skips frames itself (and max-pools them)
    elif (
        pixels is not None
        and not is_atari(gym_id)
        # never images; a wrapper would rule out their native and EnvPool vector envs
        and not has_native(gym_id)
        and env_cfg.vectorization != "envpool"
    ):
        wrappers.insert(0, partial(wrap_pixels, **pixels))
    return wrappers, kwargs


def wrapper_factory(node: DictConfig):
    """An ``env.wrappers`` node as a callable taking the env. Lists among its arguments become
    tuples: the command line has no tuple syntax, and wrappers such as ResizeObservation insist
    on one (``shape:[64,64]``)."""
    made = get_obj(node, _partial_=True)
    if not isinstance(made, partial):
        return made
    keywords = {k: tuple(v) if isinstance(v, list) else v for k, v in made.keywords.items()}
    return partial(made.func, *made.args, **keywords)


def build_model(
    model_cfg: DictConfig,
    net_cfg: DictConfig,
    state_info: SpaceInfo,
    action_info: SpaceInfo,
    memory: tuple[DictConfig | None, str] = (None, ""),
) -> BaseModel:
    """A model (policy or value) on its own network, initialized as ``net_cfg.init`` says
    (``net=auto``: the net chosen for ``state_info``), its hidden layers as
    ``model_cfg.net`` or else ``net_cfg`` says (``nn.with_hidden``); ``memory``: the
    ``memory`` config node and the model's name (``build_memory``)."""
    spec = OmegaConf.to_container(model_cfg, resolve=True)
    own_net = spec.pop("net")
    net_cfg = with_hidden(resolve_net(net_cfg, state_info), own_net)
    net = nn_from_config(net_cfg, state_info, action_info)
    extra = {}
    if (made := build_memory(*memory, net.out_shape)) is not None:
        extra["memory"] = made
    # action_info after instantiation: Hydra would turn the SpaceInfo dataclass into a dict
    model = get_obj(spec, _partial_=True)(net=net, action_info=action_info, **extra)
    if net_cfg.init == "orthogonal":
        model.init_orthogonal()
    return model


# --- memory (issue 26): the recurrent layer between a model's net and its output layer ---
def build_memory(memory_cfg: DictConfig | None, key: str, in_shape) -> Memory | None:
    """The ``memory`` node's recurrent layer for the model ``key`` reading features of
    ``in_shape``; None for ``memory=none`` (and for run folders from before memories)."""
    if memory_cfg is None or memory_cfg.kind == "none":
        return None
    return Memory(
        memory_cfg.kind, math.prod(in_shape), memory_cfg.hidden_size, memory_cfg.num_layers, key
    )


def build_normalizer(cfg: DictConfig, state_info: SpaceInfo) -> StateNormalizer:
    return StateNormalizer(
        state_info,
        running=cfg.env.running_normalize_states,
        fixed=cfg.env.fixed_normalize_states,
        clip=cfg.env.clip_states,
    )


def build_agent(cfg: DictConfig, env: GymEnv, device: torch.device, logger: Logger) -> PGAgent:
    state_info, action_info = env.get_state_info(), env.get_action_info()
    normalizer = build_normalizer(cfg, state_info).to(device)
    scaler = RewardScaler(
        env.n_envs, gamma=cfg.agent.gamma, enabled=cfg.env.scale_reward, clip=cfg.env.clip_reward
    )
    memory = cfg.get("memory")
    policy = build_model(
        cfg.agent.policy, cfg.net, state_info, action_info, (memory, "policy")
    ).to(device)
    models = {"policy": policy}
    value = None
    if cfg.agent.value is not None:
        value = build_model(
            cfg.agent.value, cfg.net, state_info, action_info, (memory, "value")
        ).to(device)
        models["value"] = value
    backend = resolve_backend(cfg.agent.backend, policy, models, normalizer)
    actor = backend.actor(policy, normalizer, acting_rng(cfg.seed), device)
    memories = {"value": value} if value is not None and value.memory is not None else {}
    collector = Collector(
        env, actor, cfg.agent.n_steps, scaler, device, seed=cfg.seed, memories=memories
    )
    return PGAgent(
        collector,
        policy_model=policy,
        value_model=value,
        normalize_advantages=cfg.agent.normalize_advantages,
        recompute_advantages=cfg.agent.recompute_advantages,
        advantage=get_obj(cfg.agent.advantage),
        vtarget=get_obj(cfg.agent.vtarget),
        backend=backend,
        guard=Guard(**cfg.guard),
        logger=logger,
    )


def build_schedule(cfg: DictConfig) -> TrainSchedule:
    return TrainSchedule(
        max_steps=cfg.max_steps,
        max_iters=cfg.max_iters,
        max_episodes=cfg.max_episodes,
        log_freq=cfg.logger.log_freq,
        eval_freq=cfg.eval_freq,
        eval_episodes=cfg.eval_episodes,
        eval_seed=cfg.seed + EVAL_SEED_OFFSET,
        target_return=cfg.target_return,
    )
