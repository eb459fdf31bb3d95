"""torchrl-cli: config-driven policy-gradient training. ``load_policy`` reuses a trained run."""


def load_policy(run_dir, checkpoint: str = "last", trust=()):
    """See ``torchrl_cli.run.policy.load_policy`` (imported lazily: the CLI starts faster)."""
    from torchrl_cli.run.policy import load_policy as load

    return load(run_dir, checkpoint, trust)
