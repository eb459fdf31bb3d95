"""torchrl-cli: config-driven policy-gradient training. ``load_policy`` reuses a trained run."""


def load_policy(run_dir, checkpoint: str = "last", trust=()):
    """The deterministic policy of a run folder's checkpoint, ready to act:
    ``torchrl_cli.run.policy.load_policy`` (imported here lazily, so that the command line
    starts without torch)."""
    from torchrl_cli.run.policy import load_policy as load

    return load(run_dir, checkpoint, trust)
