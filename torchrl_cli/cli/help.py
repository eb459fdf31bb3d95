"""``torchrl train --help``: the groups with their real options, the one-line rule for env ids,
and the config the command line composes (Hydra's help would list a node per option the
ConfigStore holds, internal schema nodes included)."""

from omegaconf import OmegaConf

from torchrl_cli.cli.configs import GROUPS, options

HEADER = """usage: torchrl train [overrides...] [-m] [--cfg job|hydra|all] [--info] [-sc ...]
       torchrl train resume=<run folder> [max_steps=N] [eval_*=...] [logger.*=...]

Trains one agent; with -m (--multirun), one job per value of each sweep (seed=0,1,2).
An override chooses a group's option (env=Pendulum-v1), sets a key (agent.lr=1e-3) or adds
one (+key=value). resume= goes on with an interrupted run in its own folder."""

ENV_RULE = (
    "  (env also takes any registered Gymnasium id, env=FrozenLake-v1 or env=ALE/Breakout-v5, "
    "or a module:-qualified one, env=my_pkg.envs:MyEnv-v0)"
)

FOOTER = """Hydra flags: -m/--multirun, --cfg job|hydra|all (--resolve), --info, --hydra-help,
-sc install=bash|zsh (shell completion: eval "$(torchrl train -sc install=bash)");
a tuned file for the agent + env pair applies itself, and the pair's file for the memory
chosen (conf/tuned_memory/; torchrl configs lists them);
hparams_search presets are searches for torchrl tune (torchrl tune --help);
--config-dir DIR (or TORCHRL_CONFIG_DIR=DIR): your config files, each in place of the shipped
file of the same name in any group, a tuned pair's included (torchrl configs marks them)."""


def help_text(overrides: list[str]) -> str:
    """The help, with the config that ``overrides`` compose (ConfigError when they do not)."""
    from torchrl_cli.config.compose import compose_config

    cfg = compose_config(overrides)
    lines = [HEADER, "", "== Configuration groups ==",
             "Compose your configuration from those groups (group=option)", ""]
    for group in GROUPS:
        lines.append(f"{group}: {', '.join(options(group))}")
        if group == "env":
            lines.append(ENV_RULE)
    lines += ["", "== Config ==", "Override anything in the config (foo.bar=value)", "",
              OmegaConf.to_yaml(cfg).rstrip(), "", FOOTER]
    return "\n".join(lines)
