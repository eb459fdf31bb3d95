"""``torchrl export <run folder>``: the policy as one file that runs with torch alone."""

from pathlib import Path

from rich.console import Console

from torchrl_cli.errors import ConfigError
from torchrl_cli.run.folder import open_run

OPTIONS = {"checkpoint": str, "trust": str, "out": str}


def export_command(args: list[str], console: Console | None = None) -> int:
    from torchrl_cli.run.policy import export_policy, policy_from_checkpoint

    console = console or Console()
    run_dir, options, cfg, checkpoint = open_run("export", args, OPTIONS)
    path = checkpoint.path
    out = Path(options.get("out", run_dir / f"policy_{path.stem}.pt2"))
    if out.exists():
        raise ConfigError(f"{out} already exists; exports never overwrite: name another out=<file>")
    if not out.parent.is_dir():
        raise ConfigError(f"out={out}: folder {out.parent} does not exist")
    export_policy(policy_from_checkpoint(cfg, checkpoint), out)
    console.print(f"exported {path.name} of {run_dir} ({cfg.agent.name}, {cfg.env.id}) to {out}")
    console.print(
        f"use it with torch alone: policy = torch.export.load({str(out)!r}).module(); "
        "actions = policy(observations)  # [batch, *obs shape] as the env gives them "
        "(float32; uint8 frames; a dict of tensors for a Dict space)",
        soft_wrap=True,
        markup=False,
    )
    return 0
