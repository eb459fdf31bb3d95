"""The composition root: the training stack from a composed config (networks, models,
normalization, the backend, the actor, the collector and the agent; the envs come from
``envs.factory``), and the check a run passes before its folder exists. Every factory takes the
config node it reads."""

import math
import os
import random

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from torchrl_cli.agents.base import TrainSchedule
from torchrl_cli.agents.evaluation import EVAL_SEED_OFFSET
from torchrl_cli.agents.guard import Guard
from torchrl_cli.agents.pg import PGAgent
from torchrl_cli.backends import resolve_backend
from torchrl_cli.config.validate import validate
from torchrl_cli.envs import RewardScaler, StateNormalizer
from torchrl_cli.envs.base import BaseEnv
from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.models import BaseModel
from torchrl_cli.nn import (
    Columns,
    PerAgent,
    PixelScale,
    SequentialExtended,
    get_module_list,
    nn_from_config,
    resolve_net,
    with_hidden,
)
from torchrl_cli.nn.memory import Memory
from torchrl_cli.nn.shared import SharedBody
from torchrl_cli.rollout.actor import acting_rng
from torchrl_cli.rollout.collector import Collector
from torchrl_cli.tracking.logger import Logger
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


#: the most torch threads ``torch_threads=null`` gives a conv net
MAX_AUTO_THREADS = 8


def choose_threads(
    requested: int | None, net_cfg: DictConfig, job: bool = False
) -> tuple[int, str]:
    """Torch's (and numpy BLAS's) thread count for a run of the resolved net ``net_cfg``, and
    why, for the banner: ``torch_threads`` when set; else one for nets without convolutions
    (a small net's ops are too short to split) and for a sweep's ``job`` (jobs may run side by
    side), and for conv nets ``OMP_NUM_THREADS`` where it is set, else every core this process
    may use, up to ``MAX_AUTO_THREADS`` (docs/pixels.md measures 1 and 2 on two cores)."""
    if requested is not None:
        return requested, "torch_threads"
    if not has_conv(net_cfg):
        return 1, "auto: no convolutions"
    if job:
        return 1, "auto: a sweep's job, beside others"
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "auto: a conv net, OMP_NUM_THREADS"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cores or 1, MAX_AUTO_THREADS), f"auto: a conv net, {cores} cores"


def has_conv(net_cfg: DictConfig | None) -> bool:
    layers = [] if net_cfg is None else [*net_cfg.body, *net_cfg.head]
    return any("Conv" in str(layer) for layer in layers)  # nested ones too (multi_input)


def build_model(
    model_cfg: DictConfig,
    net_cfg: DictConfig,
    state_info: SpaceInfo,
    action_info: SpaceInfo,
    memory: tuple[DictConfig | None, str] = (None, ""),
    columns: tuple[int, int] | None = None,
    body: SharedBody | None = None,
    per_agent: tuple[int, int] | None = None,
    trunk: BaseModel | None = None,
) -> BaseModel:
    """A model (policy or value) on its own network, initialized as ``net_cfg.init`` says
    (``net=auto``: the net chosen for ``state_info``), its hidden layers as
    ``model_cfg.net`` or else ``net_cfg`` says (``nn.with_hidden``); ``memory``: the
    ``memory`` config node and the model's name (``build_memory``); ``columns``: the part of
    each flat row the model reads (a multi-agent env's ``views``), None: all of it;
    ``per_agent``: the columns of a multi-agent row's one-hot agent index, to build a net per
    agent on ``columns`` (``agent.share_parameters=false``, ``nn.PerAgent``), None: one net.

    ``net.shared_body``: the model built without ``body`` owns a new ``SharedBody`` (the
    policy); a model given one reads it, its own head after it, and leaves its training to
    the owner (the value). ``trunk`` (``memory.shared``): the model reads that model's net
    and memory, its own output layer after them, and leaves their training to it. Nets that
    read pixel frames (``PixelScale``: 36x36 or more) keep their weights channels-last, the
    layout the CPU's convolution kernels run fastest in there; on small grids (minigrid's
    7x7) it is slower, and they stay contiguous (docs/pixels.md)."""
    spec = OmegaConf.to_container(model_cfg, resolve=True)
    own_net = spec.pop("net")
    net_cfg = resolve_net(net_cfg, state_info)
    if trunk is not None:
        borrowed = nn.ModuleList([trunk.net, trunk.memory])
        model = get_obj(spec, _partial_=True)(
            net=trunk.net, action_info=action_info, memory=trunk.memory, borrowed=borrowed
        )
        if net_cfg.init == "orthogonal":  # its output layer: the trunk's owner did the rest
            model.init_orthogonal(skip=borrowed)
        return model
    borrowed = body
    if body is None:
        net_cfg = with_hidden(net_cfg, own_net)
        if net_cfg.get("shared_body") and columns is None:
            body = shared_body(net_cfg, state_info, action_info)
    if columns is None:
        net = nn_from_config(net_cfg, state_info, action_info, body=body)
    elif per_agent is None:
        net = columns_net(net_cfg, state_info, action_info, columns)
    else:
        nets = [columns_net(net_cfg, state_info, action_info, columns)
                for _ in range(per_agent[1] - per_agent[0])]  # fmt: skip
        net = SequentialExtended(PerAgent(nets, per_agent))
        net.out_shape = (len(nets) * math.prod(nets[0].out_shape),)
    extra = {}
    if (made := build_memory(*memory, net.out_shape)) is not None:
        extra["memory"] = made
    if borrowed is not None:
        extra["borrowed"] = borrowed
    # action_info after instantiation: Hydra would turn the SpaceInfo dataclass into a dict
    model = get_obj(spec, _partial_=True)(net=net, action_info=action_info, **extra)
    if net_cfg.init == "orthogonal":
        model.init_orthogonal(skip=borrowed)
    if any(isinstance(m, PixelScale) for m in model.modules()):
        model.to(memory_format=torch.channels_last)
    return model


def shared_body(net_cfg: DictConfig, state_info: SpaceInfo, action_info: SpaceInfo):
    """``net_cfg``'s body layers as one ``SharedBody`` (``net.shared_body``)."""
    layers, shape = get_module_list(net_cfg.body, state_info.shape, action_info, state_info)
    return SharedBody(SequentialExtended(*layers), shape)


def build_models(
    cfg: DictConfig,
    state_info: SpaceInfo,
    action_info: SpaceInfo,
    device: torch.device,
    views: dict[str, tuple[int, int] | None] | None = None,
) -> dict[str, BaseModel]:
    """The run's models by name, policy first, on ``device``: the value (when there is one)
    reads the policy's body where ``net.shared_body`` is on, its net and memory where
    ``memory.shared`` is."""
    views = views or {"policy": None, "value": None, "agent_ids": None}
    models: dict[str, BaseModel] = {}
    for name in ("policy", "value"):
        if cfg.agent[name] is None:
            continue
        body = models["policy"].net.layers[0] if name == "value" and shares_body(models) else None
        trunk = models["policy"] if name == "value" and shares_memory(cfg) else None
        models[name] = build_model(
            cfg.agent[name], cfg.net, state_info, action_info, (cfg.memory, name), views[name],
            body, per_agent(cfg, views), trunk,
        ).to(device)  # fmt: skip
    return models


def shares_memory(cfg: DictConfig) -> bool:
    """Whether the value reads the policy's net and memory (``memory.shared``)."""
    return cfg.memory.kind != "none" and cfg.memory.shared


def per_agent(cfg: DictConfig, views: dict) -> tuple[int, int] | None:
    """The one-hot agent-index columns a net per agent reads (``agent.share_parameters=false``
    on a multi-agent env), else None: one net shared by every row."""
    if "share_parameters" not in cfg.agent or cfg.agent.share_parameters:
        return None
    return views["agent_ids"]


def shares_body(models: dict[str, BaseModel]) -> bool:
    """Whether the policy's body is a SharedBody (a value, if any, reads it)."""
    return isinstance(models["policy"].net.layers[0], SharedBody)


def columns_net(
    net_cfg: DictConfig, state_info: SpaceInfo, action_info: SpaceInfo, columns: tuple[int, int]
):
    """The net of ``net_cfg`` on the columns ``[start, stop)`` of flat rows, a ``Columns``
    layer first."""
    start, stop = columns
    part = SpaceInfo(
        SpaceKind.CONTINUOUS,
        (stop - start,),
        state_info.dtype,
        None if state_info.low is None else state_info.low[start:stop],
        None if state_info.high is None else state_info.high[start:stop],
    )
    inner = nn_from_config(net_cfg, part, action_info)
    net = SequentialExtended(Columns(start, stop), inner)
    net.out_shape = inner.out_shape
    return net


def model_views(env: BaseEnv) -> dict[str, tuple[int, int] | None]:
    """The columns the policy and the value read: a multi-agent env's ``views()``, else all."""
    views = getattr(env, "views", None)
    return views() if views is not None else {"policy": None, "value": None, "agent_ids": None}


def config_views(cfg: DictConfig) -> dict[str, tuple[int, int] | None]:
    """``model_views`` of the env ``cfg`` describes (one copy of a multi-agent env is made to
    read its layout; a single-agent env's models read all of each row)."""
    from torchrl_cli.envs.factory import build_env
    from torchrl_cli.envs.pettingzoo_env import is_pettingzoo

    if not is_pettingzoo(cfg.env.id):
        return {"policy": None, "value": None, "agent_ids": None}
    env = build_env(cfg.env, 1, evaluation=True, agent_cfg=cfg.agent)
    try:
        return model_views(env)
    finally:
        env.close()


def build_memory(memory_cfg: DictConfig | None, key: str, in_shape) -> Memory | None:
    """The ``memory`` node's recurrent layer (between a model's net and its output layer) for
    the model ``key`` reading features of ``in_shape``; None for ``memory=none`` (or no node:
    a model built alone)."""
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


def build_agent(cfg: DictConfig, env: BaseEnv, device: torch.device, logger: Logger) -> PGAgent:
    state_info, action_info = env.get_state_info(), env.get_action_info()
    views = model_views(env)
    normalizer = build_normalizer(cfg, state_info).to(device)
    scaler = RewardScaler(
        env.n_envs, gamma=cfg.agent.gamma, enabled=cfg.env.scale_reward, clip=cfg.env.clip_reward
    )
    models = build_models(cfg, state_info, action_info, device, views)
    policy, value = models["policy"], models.get("value")
    backend = resolve_backend(cfg.agent.backend, policy, models, normalizer)
    # a value that reads the policy's body is valued in the acting step's forward
    acting_value = value if shares_body(models) and value.memory is None else None
    actor = backend.actor(policy, normalizer, acting_rng(cfg.seed), device, acting_value)
    # a value with a memory of its own: the collector carries its state beside the actor's
    own_memory = value is not None and value.memory not in (None, policy.memory)
    memories = {"value": value} if own_memory else {}
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


def check_run(cfg: DictConfig) -> None:
    """Everything a run checks before its folder exists: the config's values (``validate``),
    then, for ``agent.backend=numpy``, that the backend can serve the models as built on the
    env's spaces (ConfigError naming why not)."""
    state, action = validate(cfg)
    if cfg.agent.backend != "numpy":
        return
    device = resolve_device(cfg.device, cfg.net, state)
    models = build_models(cfg, state, action, device)
    resolve_backend("numpy", models["policy"], models, build_normalizer(cfg, state).to(device))
