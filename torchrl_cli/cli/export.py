"""``torchrl export <run folder>``: the policy as one file that runs with torch alone
(``format=torch``, a ``torch.export`` program) or with onnxruntime (``format=onnx``)."""

import os
from pathlib import Path

from rich.console import Console

from torchrl_cli.cli.usage import EXPORT, wants_help
from torchrl_cli.errors import ConfigError
from torchrl_cli.run.folder import open_run

OPTIONS = EXPORT.types()
SUFFIXES = {"torch": ".pt2", "onnx": ".onnx"}


def export_command(args: list[str], console: Console | None = None) -> int:
    from torchrl_cli.run.policy import policy_from_checkpoint

    if wants_help(args):
        print(EXPORT.help())
        return 0
    console = console or Console()
    run_dir, options, cfg, checkpoint = open_run("export", args, OPTIONS)
    kind = options.get("format", "torch")
    if kind not in SUFFIXES:
        raise ConfigError(f"format={kind} is not a format of torchrl export; "
                          f"choose one of: {', '.join(SUFFIXES)}")
    path = checkpoint.path
    out = Path(options.get("out", run_dir / f"policy_{path.stem}{SUFFIXES[kind]}"))
    try:  # a name over 255 bytes fails even to be looked at (ENAMETOOLONG)
        exists, parent_ok = out.exists() or out.is_symlink(), out.parent.is_dir()
    except OSError as err:
        raise ConfigError(
            f"out={out} cannot be written ({err.strerror}); name another file"
        ) from None
    if exists:
        raise ConfigError(f"{out} already exists; exports never overwrite: name another out=<file>")
    if not parent_ok:
        raise ConfigError(f"out={out}: folder {out.parent} does not exist")
    policy = policy_from_checkpoint(cfg, checkpoint)
    claim_out(out)
    try:
        usage = write_export(policy, out, kind)
    except BaseException as err:
        out.unlink(missing_ok=True)  # never leave half a file
        if isinstance(err, OSError):
            raise ConfigError(f"out={out} cannot be written ({err.strerror})") from None
        raise
    console.print(f"exported {path.name} of {run_dir} ({cfg.agent.name}, {cfg.env.id}) to {out}")
    console.print(usage, soft_wrap=True, markup=False)
    rows = agent_rows(cfg)
    if rows:
        console.print(rows, soft_wrap=True, markup=False)
    return 0


def agent_rows(cfg) -> str | None:
    """For a multi-agent run, what each row of the exported policy's input holds."""
    from torchrl_cli.envs.factory import build_env
    from torchrl_cli.envs.pettingzoo_env import is_pettingzoo

    if not is_pettingzoo(cfg.env.id):
        return None
    env = build_env(cfg.env, 1, evaluation=True, agent_cfg=cfg.agent)
    lay = env.layout
    env.close()
    ids = f", then the agent's one-hot index ({lay.n_agents})" if lay.agent_id else ""
    rest = lay.width - lay.local_width
    ignored = f"; the last {rest} columns (the value's) are not read: zeros do" if rest else ""
    return (
        f"one row per agent: its observation flattened and zero-padded to {lay.obs_width}"
        f"{ids}{ignored} (load_policy builds the rows from a dict of observations)"
    )


def claim_out(out: Path) -> None:
    """Create ``out`` exclusively (never through a symlink) before the export writes it, so
    that a path that cannot be written (``/proc``, a name over 255 bytes, no permission) is
    one line before any work."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.close(os.open(out, flags, 0o644))
    except FileExistsError:
        raise ConfigError(f"{out} was created just now; name another out=<file>") from None
    except OSError as err:
        raise ConfigError(
            f"out={out} cannot be written ({err.strerror}); name another file"
        ) from None


def write_export(policy, out: Path, kind: str) -> str:
    """Write the export; the line that says how to use it."""
    from torchrl_cli.run.policy import export_policy

    if kind == "onnx":
        from torchrl_cli.run.onnx_export import export_onnx, model_signature

        export_onnx(policy, out)
        usage = (
            f"checked against the torch policy with onnxruntime; {model_signature(policy)}; "
            f"use it: session = onnxruntime.InferenceSession({str(out)!r}); "
            "actions = session.run(None, {name: array, ...})[0]"
        )
    elif policy.recurrent:
        from torchrl_cli.run.policy import export_recurrent

        export_recurrent(policy, out)
        state = policy.initial_state(1)
        usage = (
            f"checked against the torch policy; use it with torch alone: step = "
            f"torch.export.load({str(out)!r}).module(); state = torch.zeros(batch, "
            f"{', '.join(str(d) for d in state.shape[1:])}) at each episode start; "
            "actions, state = step(observations, state)"
        )
    else:
        export_policy(policy, out)
        usage = (
            f"use it with torch alone: policy = torch.export.load({str(out)!r}).module(); "
            "actions = policy(observations)  # [batch, *obs shape] as the env gives them "
            "(float32; uint8 frames; a dict of tensors for a Dict space)"
        )
    return usage
