"""Making the vector env an ``env`` config node describes: its presets (Atari, pixels), its
wrappers and ``gymnasium.make`` options, for training or for evaluation."""

from functools import partial

from omegaconf import DictConfig

from torchrl_cli.envs.atari import is_atari, wrap_atari
from torchrl_cli.envs.base import BaseEnv
from torchrl_cli.envs.envpool_env import atari_options
from torchrl_cli.envs.frame_stack import FrameStack, frame_stack_refusal, stackable
from torchrl_cli.envs.gym_env import GymEnv, check_env_id
from torchrl_cli.envs.native import has_native
from torchrl_cli.envs.pettingzoo_env import PettingZooEnv, is_pettingzoo
from torchrl_cli.envs.pixels import wrap_pixels
from torchrl_cli.errors import ConfigError
from torchrl_cli.utils import get_obj


def build_env(
    env_cfg: DictConfig,
    n_envs: int,
    *,
    evaluation: bool = False,
    extra_wrappers: list = (),
    agent_cfg: DictConfig | None = None,
) -> BaseEnv:
    """The vector env ``env_cfg`` describes; ``evaluation``: without training-only wrappers;
    ``extra_wrappers`` go outside the configured ones (e.g. a video recorder); with
    ``env.frame_stack`` > 1 the last observations stacked over it (``envs.frame_stack``). A
    PettingZoo env (``pettingzoo:<module>``) has ``n_envs`` copies, its rows laid out as
    ``agent_cfg`` (ippo, mappo) says: the agent id, the centralized value's input; its
    ``extra_wrappers`` take a parallel env."""
    if is_pettingzoo(env_cfg.id):
        if agent_cfg is None or "critic" not in agent_cfg:
            raise ValueError(f"{env_cfg.id} is laid out by its agent's config (ippo, mappo)")
        return PettingZooEnv(
            env_cfg.id,
            n_envs=n_envs,
            kwargs=dict(env_cfg.kwargs),
            agent_id=bool(agent_cfg.agent_id),
            central=agent_cfg.critic == "central",
            wrappers=list(extra_wrappers),
        )
    wrappers, kwargs = env_wrappers(env_cfg, evaluation=evaluation)
    env = GymEnv(
        env_cfg.id,
        n_envs=n_envs,
        vectorization=env_cfg.vectorization,
        wrappers=[*wrappers, *extra_wrappers],
        imports=list(env_cfg.imports),
        **kwargs,
    )
    k = env_cfg.frame_stack
    if k == 1:
        return env
    if not stackable(env.get_state_info()):
        env.close()
        raise ConfigError(frame_stack_refusal(env_cfg))
    return FrameStack(env, k)


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


#: gymnasium's image wrappers that redo what the Atari and pixel presets do
IMAGE_WRAPPERS = ("AtariPreprocessing", "FrameStackObservation", "GrayscaleObservation",
                  "ResizeObservation")  # fmt: skip


def preset_clash(env_cfg: DictConfig) -> str | None:
    """Why ``env.wrappers`` likely stacks an image wrapper on the preset that already grays,
    resizes and stacks the frames (a (84, 84, 84) observation, one channel per row, and a
    tenth of the speed), or None."""
    preset = "atari" if env_cfg.atari is not None else "pixels" if env_cfg.pixels else None
    if preset is None:
        return None
    for node in env_cfg.wrappers:
        name = str(node.get("_target_", "")).rsplit(".", 1)[-1]
        if name in IMAGE_WRAPPERS:
            return (
                f"env.wrappers has {name} on top of the env.{preset} preset, which already "
                "grays, resizes and stacks the frames; drop the wrapper, or set "
                f"env.{preset}=null to preprocess with your own wrappers only"
            )
    return None


def wrapper_factory(node: DictConfig):
    """An ``env.wrappers`` node as a callable taking the env. Lists among its arguments become
    tuples: the command line has no tuple syntax, and wrappers such as ResizeObservation insist
    on one (``shape:[64,64]``)."""
    made = get_obj(node, _partial_=True)
    if not isinstance(made, partial):
        return made
    keywords = {k: tuple(v) if isinstance(v, list) else v for k, v in made.keywords.items()}
    return partial(made.func, *made.args, **keywords)
