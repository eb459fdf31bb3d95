"""Structured-config schema: the one place where every default lives.

Each dataclass types one node of the composed config. YAML files under ``conf/`` only state what
differs from these defaults for one option (an env, an agent, a tuned pair). Sizes that the
environment decides (input and output widths) never appear here: they are filled at build time.
"""

from dataclasses import dataclass, field
from typing import Any

from omegaconf import II, MISSING

#: the format of a run folder's config.yaml that this code writes (``config.migrate``)
CONFIG_VERSION = 1
# the choices of keys whose values name behaviours (the code that has them imports these)
SCHEDULES = ("constant", "linear")  # lr_schedule, clip_schedule
BACKENDS = ("auto", "torch", "numpy")  # agent.backend
GUARD_MODES = ("stop", "skip")  # guard.mode
CRITICS = ("local", "central")  # agent.critic (ippo, mappo)


@dataclass
class AtariConfig:
    """The standard Atari preprocessing (Mnih et al. 2015; Machado et al. 2018), applied around
    an ALE env that emulates every frame (``frameskip=1`` is passed to ``gymnasium.make``).

    Games whose action set has FIRE get it pressed after every reset. Episodic life and reward
    clipping apply to the training env only: evaluation reports real game scores.
    """

    noop_max: int = 30  # reset plays a random number (1..noop_max; 0: none) of no-op frames
    frame_skip: int = 4  # repeat each action, max-pool the last two frames
    screen_size: int = 84  # square grayscale frames
    frame_stack: int = 4  # observations hold the last frame_stack frames, oldest first
    episodic_life: bool = True  # training: a lost life ends the episode, not the game
    clip_reward: bool = True  # training: rewards clipped to [-1, 1]


@dataclass
class PixelsConfig:
    """The pixel preset for non-ALE envs whose observations are uint8 frames of at least 36x36
    (CarRacing-v3's 96x96 RGB, ...), applied in this order; ``env.pixels=null`` turns it off.
    Smaller images (minigrid's 7x7 grids) and other observations are left as they are.
    """

    grayscale: bool = True  # RGB to one gray channel
    resize: int | None = 84  # square frames of this side; null: keep the size
    frame_stack: int = 4  # observations hold the last frame_stack frames, oldest first; 1: none


@dataclass
class EnvConfig:
    """One Gymnasium environment id, vectorized ``n_envs`` times.

    ``id`` may be any registered id, ``<module>:<EnvId>`` (the module is imported and registers
    EnvId, or defines a gymnasium.Env class of that name), or an id that a well-known package
    registers (imported when installed); ``imports`` names more packages to import first.
    The run folder's config.yaml keeps both, so later commands import the same.
    """

    id: str = MISSING  # the Gymnasium id (env=<id> chooses it with the env's own file)
    imports: list[str] = field(default_factory=list)  # packages that register ids on import
    n_envs: int = 8  # copies stepped together; a rollout holds n_steps from each
    vectorization: str = "auto"  # auto (native if supported, else sync) | sync | async | native
    #   | envpool (the envpool extra; auto never picks it)
    running_normalize_states: bool = False  # running mean/std of observations, part of the model
    fixed_normalize_states: bool = False  # rescale to [-1, 1] using the Box bounds
    scale_reward: bool = False  # divide rewards by the running std of the discounted return
    clip_states: float = 10.0  # clip normalized observations to [-clip, clip]
    clip_reward: float = 10.0  # clip scaled rewards to [-clip, clip]
    wrappers: list[Any] = field(default_factory=list)  # _target_ nodes, each called with the env
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    # training episodes are cut (a truncation, bootstrapped with the value) after this many
    # steps; evaluation keeps the env's own limit. More episode starts for the same env steps.
    train_max_episode_steps: int | None = None
    # observations hold the last frame_stack of their episode, oldest first, joined (vectors
    # end to end, images along their channels, Dict and Tuple entries each on its own); 1: none
    frame_stack: int = 1
    atari: AtariConfig | None = None  # Atari preprocessing; ALE env files set it ({} = defaults)
    pixels: PixelsConfig | None = field(default_factory=PixelsConfig)  # image obs, non-ALE envs


def adam() -> dict[str, Any]:
    """A torch optimizer node built with ``_partial_`` (parameters are given at build time).

    Untyped, since each optimizer class takes other arguments: switch with e.g.
    ``agent.policy.optimizer._target_=torch.optim.SGD '~agent.policy.optimizer.eps'``.
    """
    return {"_target_": "torch.optim.Adam", "_partial_": True, "lr": "${agent.lr}", "eps": 1e-5}


@dataclass
class ModelNetConfig:
    """One model's own ``hidden`` and ``activation`` (``net``'s keys of the same names), for a
    policy and a value net of different widths or activations; null: the shared ``net``'s."""

    hidden: list[int] | None = None  # this net's hidden widths; null: net.hidden
    activation: str | None = None  # this net's activation; null: net.activation


@dataclass
class ModelConfig:
    """Parameters shared by every model (the seed's BaseModel).

    Policy and value are separate networks with separate optimizers: ``loss_coef`` scales a
    model's loss, which with Adam or RMSprop mostly moves the effective ``clip_grad_norm``.
    Models that share epochs and minibatches train in one pass over each rollout.
    """

    _target_: str = MISSING
    net: ModelNetConfig = field(default_factory=ModelNetConfig)  # its own hidden, activation
    # the agent's update settings unless this model overrides them (vanilla PG's 1-epoch policy)
    num_epochs: int = II("agent.num_epochs")
    num_mini_batches: int = II("agent.num_mini_batches")  # minibatches per epoch
    optimizer: Any = field(default_factory=adam)  # Adam eps 1e-5: a PPO implementation detail
    clip_grad_norm: float = II("agent.clip_grad_norm")  # this model's gradient-norm clip
    lr_schedule: str = II("agent.lr_schedule")  # constant | linear (annealed to 0)
    loss_coef: float = 1.0  # weight of this model's loss in the summed objective


@dataclass
class ValueModelConfig(ModelConfig):
    """State-value regression (the seed's ValueModel)."""

    _target_: str = "torchrl_cli.models.ValueModel"
    loss_coef: float = 0.5  # weight of the value loss in the summed objective
    clip_range: float | None = None  # clip V against its rollout-time prediction; null: off


@dataclass
class SDEConfig:
    """Generalized state-dependent exploration (gSDE, Raffin et al. 2021, SB3's ``use_sde``) for
    Box actions: the exploration noise is the policy's last hidden features phi times a matrix W
    drawn from N(0, sigma^2), one learned sigma per (feature, action), so that an action's std
    is sqrt(sum_i phi_i^2 sigma_ij^2) and the noise changes smoothly with the state. W is drawn
    per env at each rollout start, and again every ``sample_freq`` steps of the rollout."""

    enabled: bool = False  # off: a state-independent std (log_std_init, learned per action dim)
    sample_freq: int = -1  # env steps (per env) between new noise matrices; -1: rollout start only
    learn_features: bool = False  # the std's gradient also trains phi (SB3's learn_features)


@dataclass
class PGModelConfig(ModelConfig):
    """Parameters shared by every policy model (the seed's BasePGModel)."""

    entropy_coef: float = 0.0  # weight of the entropy bonus
    # Box actions: the Gaussian's initial log-std (with sde: of every entry of its noise matrix)
    log_std_init: float = 0.0
    sde: SDEConfig = field(default_factory=SDEConfig)  # Box actions: gSDE exploration


@dataclass
class PPOClipModelConfig(PGModelConfig):
    """PPO with the clipped surrogate objective (Schulman et al. 2017)."""

    _target_: str = "torchrl_cli.models.PPOClipModel"
    ppo_clip_range: float = 0.2  # epsilon: the ratio is clipped to [1 - eps, 1 + eps]
    clip_schedule: str = "constant"  # constant | linear


@dataclass
class VanillaPGModelConfig(PGModelConfig):
    """The policy-gradient-theorem loss -E[log pi(a|s) A]."""

    _target_: str = "torchrl_cli.models.VanillaPGModel"


@dataclass
class A2CModelConfig(VanillaPGModelConfig):
    """Synchronous advantage actor-critic: the PG loss, one step per short rollout."""

    _target_: str = "torchrl_cli.models.A2CModel"


@dataclass
class SurrogatePGModelConfig(PGModelConfig):
    """The unclipped importance-ratio objective L^CPI."""

    _target_: str = "torchrl_cli.models.SurrogatePGModel"
    kl_target: float = 0.01  # d_targ: the KL that kl_early_stop (and PPO-adaptive's beta) scale
    kl_early_stop: float | None = None  # stop the epochs once KL > this x kl_target


@dataclass
class PPOAdaptiveModelConfig(SurrogatePGModelConfig):
    """PPO with the adaptive KL penalty (beta halved/doubled around kl_target, per batch)."""

    _target_: str = "torchrl_cli.models.PPOAdaptiveModel"
    kl_penalty: float = 1.0  # beta's starting value


@dataclass
class VTargetConfig:
    """Value targets computed from the advantages: adv + V."""

    _target_: str = "torchrl_cli.rollout.estimators.FromAdvantage"


@dataclass
class AgentConfig:
    """A policy-gradient agent: rollout length, discount and the models it trains."""

    name: str = MISSING  # the agent's name (run folders and summaries show it)
    n_steps: int = 128  # rollout length per env; a batch holds n_steps * n_envs transitions
    gamma: float = 0.99  # discount factor
    lr: float = 3e-4  # every model's optimizer (agent.<model>.optimizer.lr overrides)
    # the update, for every model (agent.<model>.<key> overrides one model's):
    num_epochs: int = 10  # passes over each rollout
    num_mini_batches: int = 4  # minibatches each pass is split into
    lr_schedule: str = "linear"  # constant | linear (annealed to 0 over the run)
    clip_grad_norm: float = 0.5  # global gradient-norm clipping, per model; inf disables it
    backend: str = "auto"  # auto | torch | numpy: where acting and updates run (see backends/)
    normalize_advantages: bool = True  # per minibatch
    # before each epoch after the first: values, advantages and value targets again, from the
    # value model as the last epoch left it (Tianshou's recompute_advantage)
    recompute_advantages: bool = False
    advantage: Any = MISSING  # the agent/advantage group: gae | discounted_returns
    vtarget: Any = field(default_factory=VTargetConfig)  # a _target_ node: FromAdvantage
    policy: Any = MISSING  # one of the *ModelConfig dataclasses above
    value: ValueModelConfig | None = field(default_factory=ValueModelConfig)  # null: none


@dataclass
class PPOClipAgentConfig(AgentConfig):
    name: str = "ppo_clip"
    policy: PPOClipModelConfig = field(default_factory=PPOClipModelConfig)


@dataclass
class PPOAdaptiveAgentConfig(AgentConfig):
    name: str = "ppo_adaptive"
    policy: PPOAdaptiveModelConfig = field(default_factory=PPOAdaptiveModelConfig)


@dataclass
class SurrogatePGAgentConfig(AgentConfig):
    name: str = "surrogate_pg"
    policy: SurrogatePGModelConfig = field(default_factory=SurrogatePGModelConfig)


@dataclass
class VanillaPGAgentConfig(AgentConfig):
    name: str = "vanilla_pg"
    policy: VanillaPGModelConfig = field(default_factory=VanillaPGModelConfig)


@dataclass
class A2CAgentConfig(AgentConfig):
    name: str = "a2c"
    policy: A2CModelConfig = field(default_factory=A2CModelConfig)


@dataclass
class IPPOAgentConfig(PPOClipAgentConfig):
    """PPO-clip on a PettingZoo env (``env=pettingzoo:<module>``): every agent a row of the
    batch, one policy and one value shared by all agents, or with ``share_parameters=false``
    a network per agent (``nn.PerAgent``) (de Witt et al. 2020, "Is Independent
    Learning All You Need in the StarCraft Multi-Agent Challenge?",
    https://arxiv.org/abs/2011.09533). The value reads each agent's own observation."""

    name: str = "ippo"  # agent=mappo: mappo
    critic: str = "local"  # local: V(agent's own obs) | central: V(the env's global state)
    agent_id: bool = True  # each agent's one-hot index appended to its observation
    # true: one policy and one value for every agent; false: a network per agent (by agent_id)
    share_parameters: bool = True


@dataclass
class MAPPOAgentConfig(IPPOAgentConfig):
    """IPPO with a centralized value on the env's global ``state()`` (the agents' observations
    joined where the env has none), plus the agent's one-hot (Yu et al. 2022, "The Surprising
    Effectiveness of PPO in Cooperative Multi-Agent Games", https://arxiv.org/abs/2103.01955).
    The policy still acts on each agent's own observation."""

    name: str = "mappo"
    critic: str = "central"


@dataclass
class NetConfig:
    """Layer lists built by ``nn_from_config``: a body, then a head that ends in the output layer.

    Each layer is a ``_target_`` node; input sizes are filled from the env (``auto_input_shape``)
    and the output layer is sized from the action space, so no size the env decides is written.
    """

    name: str = MISSING  # the net's name (net=auto: the one chosen, in the banner)
    body: list[Any] = field(default_factory=list)  # layers (_target_ nodes), input sized by the env
    head: list[Any] = field(default_factory=list)  # layers after the body, before the output layer
    init: str = "orthogonal"  # orthogonal (PPO implementation detail) | default (torch's)
    # the fully connected layers that end the body (an MLP's hidden layers), by width; null: as
    # listed. Both nets (agent.<model>.net.hidden: one net's)
    hidden: list[int] | None = None
    activation: str | None = None  # theirs: tanh | relu | elu | gelu | silu; null: as listed
    # one body for the policy and the value, each with its own head after it, run once per
    # input and trained by the policy's optimizer on the summed losses (SB3's shared features
    # extractor); null: the net file's choice (true for the CNNs, false elsewhere)
    shared_body: bool | None = None


@dataclass
class MemoryConfig:
    """``memory=lstm|gru``: a recurrent layer between each model's net and its output layer,
    the policy's and the value's each their own (or one for both: ``shared``), reset at every
    episode start and carried across rollouts; the update steps each env's whole rollout again
    from its stored state, minibatches holding whole env sequences (``agent.num_mini_batches``
    of ``env.n_envs``). Acting and updates run in torch (the numpy backend has no recurrent
    step)."""

    kind: str = "none"  # none | lstm | gru
    hidden_size: int = 64  # units per recurrent layer
    num_layers: int = 1  # stacked recurrent layers
    # one net and memory for both models: the value's output layer reads the policy's memory,
    # and its loss, scaled by agent.value.loss_coef, trains them too; false: each its own
    shared: bool = False


@dataclass
class MlflowConfig:
    """``logger.backends=[...,mlflow]`` (the mlflow extra). MLflow 3 refuses its old file
    store (``./mlruns``) unless MLFLOW_ALLOW_FILE_STORE=true, so the default is its own: an
    SQLite file in the working directory, artifacts in ``./mlruns/`` beside it."""

    # null: $MLFLOW_TRACKING_URI when set, else sqlite:///runs/mlflow.db (artifacts in
    # runs/mlruns/); or http(s)://server:5000, postgresql://..., sqlite:///<file>
    tracking_uri: str | None = None
    experiment: str = "torchrl-cli"  # created on first use


@dataclass
class WandbConfig:
    """``logger.backends=[...,wandb]`` (the wandb extra): Weights & Biases."""

    # offline: files only (wandb sync uploads them) | online: wandb login; null: $WANDB_MODE
    # when set, else offline
    mode: str | None = None
    project: str | None = None  # the W&B project; null: $WANDB_PROJECT when set, else torchrl-cli
    entity: str | None = None  # a team; null: the logged-in user's default
    dir: str | None = None  # where wandb/ goes; null: $WANDB_DIR when set, else the run folder


@dataclass
class LoggerConfig:
    """What a run shows: TensorBoard gets every ``log_freq`` iterations' values whatever the
    console shows; the console (mirrored to train.log in the run folder) is one switch.
    ``backends`` names where the scalars go besides the console (``tracking/base.py``)."""

    backends: list[str] = field(default_factory=lambda: ["tensorboard"])  # | mlflow | wandb
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)  # with backends=[...,mlflow]
    wandb: WandbConfig = field(default_factory=WandbConfig)  # with backends=[...,wandb]
    log_freq: int = 1  # scalars (TensorBoard, trackers) every N iterations (one rollout + update)
    # full: a table every log_freq iterations; table: the first table, one at most every
    # table_every_s seconds and the last, one line per evaluation; quiet: the start, target
    # and end lines only
    console: str = "table"
    table_every_s: float = 60.0  # console=table: wall seconds between tables
    histograms: bool = False  # parameter and action histograms in TensorBoard (costly)
    progress: bool = True  # on a terminal: rich progress bar with steps/s, ETA, evaluations


@dataclass
class GuardConfig:
    """The non-finite guard (on in every run) and the divergence warnings (torchrl_cli/agents/
    guard.py). A NaN or infinity in the observations, rewards, values, losses, gradient norms
    or parameters stops the run (``stop``, exit 1, the checkpoints untouched) or undoes that
    iteration's update and goes on (``skip``, counted as charts/skipped_updates)."""

    mode: str = "stop"  # stop | skip
    kl_factor: float = 20.0  # warn when an update's approx KL exceeds this x its running median
    kl_limit: float = 1.0  # warn when an update's approx KL exceeds this (nats)
    entropy_floor: float = 1e-3  # warn when a discrete policy's entropy falls below this


@dataclass
class SamplerConfig:
    """How ``torchrl tune`` draws each trial's values (Optuna's samplers)."""

    name: str = "tpe"  # tpe | random | cmaes
    # trial k's draw is seeded from the pair (seed, k), k the trials the study held when it was
    # drawn, so that workers joining one study do not draw the same values; null: unseeded
    seed: int | None = 0


@dataclass
class PrunerConfig:
    """When ``torchrl tune`` stops a trial whose evaluations fall behind the other trials'
    (single objective ``return`` only): at each report (``tune.study.Reports``)."""

    name: str = "median"  # none | median | halving | hyperband
    n_startup_trials: int = 5  # median: trials that finish before any is pruned
    n_warmup_steps: int = 0  # median: reports a trial makes before it may be pruned
    min_resource: int = 1  # halving, hyperband: reports before the first rung
    reduction_factor: int = 3  # halving, hyperband: a third of the trials go on at each rung


@dataclass
class TuneConfig:
    """A ``torchrl tune`` study (conf/hparams_search/<preset>.yaml sets it; absent from runs).

    Every trial trains each seed of ``seeds`` for the same budget and scores the mean final
    evaluation. ``params`` nests like the config: a leaf ``{low: a, high: b}`` (``log: true``
    for a log scale, ``step: s``; ints stay ints) or ``{choices: [...]}`` per config key.
    """

    study_name: str | None = None  # null: the preset's name; the study's folder is runs/tune/<it>
    # null: a journal file in the study's folder; a file path (a journal, any process on a
    # shared disk may write it) or an RDB URL (sqlite:///study.db, postgresql://...)
    storage: str | None = None
    n_trials: int = 20  # trials this process runs (each worker of a shared study runs its own)
    timeout: float | None = None  # seconds: no trial starts after them
    # return (maximized) | steps_to_target | seconds_to_target (minimized: env steps or training
    # seconds until an evaluation reached target_return; a seed that never did counts its budget)
    objectives: list[str] = field(default_factory=lambda: ["return"])
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # how values are drawn
    pruner: PrunerConfig = field(default_factory=PrunerConfig)  # when trials are stopped
    params: dict[str, Any] = field(default_factory=dict)  # the search space, nested like the config
    top: int = 5  # rows of the closing table of the best trials
    # a new study's first trial trains the config's own value of every searched key (the
    # preset's starting point, e.g. a published recipe): the best trial is then at least as
    # good as that starting point on the study's seeds
    baseline_first: bool = False


@dataclass
class Config:
    """The root of the composed config."""

    agent: Any = MISSING  # the agent group's option (agent=ppo_clip)
    env: EnvConfig = field(default_factory=EnvConfig)  # the env group's option (env=CartPole-v1)
    net: NetConfig = field(default_factory=NetConfig)  # the net group's option (net=auto)
    memory: MemoryConfig = field(default_factory=MemoryConfig)  # memory=none | lstm | gru
    logger: LoggerConfig = field(default_factory=LoggerConfig)  # what a run shows and logs
    guard: GuardConfig = field(default_factory=GuardConfig)  # non-finite and divergence checks
    seed: int = 0  # seeds python, numpy, torch and the envs (evaluation: seed + 1000000)
    seeds: list[int] | None = None  # train each of these seeds in one job, return their mean
    device: str = "auto"  # auto (CUDA for conv nets when present, else CPU) | cpu | cuda
    # torch's and numpy's BLAS threads; null: 1 for nets without convolutions (on small nets
    # more threads cost more than they give) and for a sweep's jobs; for conv nets
    # OMP_NUM_THREADS where set, else the cores this process may use, at most 8 (the banner
    # says which)
    torch_threads: int | None = None
    max_steps: int = 100_000  # env steps; -1: no limit
    max_iters: int = -1  # updates; -1: no limit
    max_episodes: int = -1  # finished training episodes; -1: no limit
    eval_freq: int = 10_000  # env steps between evaluations; 0 or less: only the final one
    eval_episodes: int = 20  # deterministic episodes per evaluation, one per env copy
    # evaluation episodes end here (with a warning): an env with no time limit would otherwise
    # loop forever once the greedy policy stops ending episodes
    eval_max_episode_steps: int = 100_000
    # after SIGINT or SIGTERM, a run that has not reached a safe point to stop at within this
    # many seconds is aborted (its last checkpoint kept), and ended if it cannot be aborted
    stop_grace_s: float = 60.0
    target_return: float | None = None  # stop at the first evaluation whose mean reaches it
    save_model: bool = True  # model.pt: the final weights and normalization statistics
    checkpoint_freq: int = 50_000  # env steps between checkpoints; 0: only at the end
    keep_checkpoints: int = 3  # the last K checkpoints kept (plus best.pt)
    tune: TuneConfig | None = None  # torchrl tune's study: hparams_search=<preset> sets it
    config_version: int = CONFIG_VERSION  # the config format (config.migrate upgrades older)


@dataclass
class PlotConfig:
    """``torchrl compare``'s figure (not part of a run's config)."""

    format: str = "png"  # png | pdf | svg
    dpi: int = 110  # 8 x 5 inches: 880 x 550 pixels
