"""Each command's ``--help``, from one declaration per command: the key=value options that
``torchrl eval`` and ``torchrl export`` parse (``OPTIONS`` there is built from them), the
arguments of ``torchrl configs``, and the help texts the other commands already print (train's
header, tune's usage, compare's argparse parser: ``torchrl_cli.cli.command_help``).
``tools/cli_reference.py`` writes the commands page of the docs from it, so the page says
what the commands say.

Nothing heavy is imported here: ``torchrl <command> --help`` stays as quick as the usage."""

import textwrap
from dataclasses import dataclass

WIDTH = 100  # the help's line width, the reference page's too


@dataclass(frozen=True)
class Option:
    """A ``key=value`` option: its type (what the parser converts the value to), the values
    shown in the usage, and its meaning."""

    key: str
    type: type
    values: str
    meaning: str


@dataclass(frozen=True)
class Command:
    """A command's usage lines, what it does, its options and examples."""

    name: str
    usage: tuple[str, ...]
    summary: str
    options: tuple[Option, ...] = ()
    arguments: tuple[tuple[str, str], ...] = ()  # (argument, meaning) of what is not key=value
    examples: tuple[str, ...] = ()

    def types(self) -> dict[str, type]:
        """``{key: type}``: what ``run.folder.open_run`` parses."""
        return {option.key: option.type for option in self.options}

    def help(self) -> str:
        lines = [f"usage: {self.usage[0]}", *(f"       {u}" for u in self.usage[1:]), ""]
        lines += textwrap.wrap(self.summary, WIDTH)
        rows = [*self.arguments, *((f"{o.key}={o.values}", o.meaning) for o in self.options)]
        if rows:
            lines += ["", "arguments:" if not self.options else "options:"]
            width = max(len(name) for name, _ in rows) + 4
            for name, meaning in rows:
                wrapped = textwrap.wrap(meaning, WIDTH - width) or [""]
                lines.append(f"  {name:<{width - 2}}{wrapped[0]}")
                lines += [" " * width + line for line in wrapped[1:]]
        if self.examples:
            lines += ["", "examples:", *(f"  {e}" for e in self.examples)]
        return "\n".join(lines)


CHECKPOINT = Option(
    "checkpoint", str, "last|best|<file>",
    "the checkpoint to load: the last one (default), the best evaluation's, or a file of the "
    "run's checkpoints/",
)
TRUST = Option(
    "trust", str, "<module prefix>[,...]",
    "module prefixes whose _target_s the run's config may build beyond the default allowlist "
    "(only for a run folder you trust: building a target runs its code)",
)

EVAL = Command(
    "eval",
    ("torchrl eval <run folder> [checkpoint=...] [episodes=N] [seed=N] [video=true] "
     "[render=true]",),
    "Replays a run's policy deterministically, with its observation normalization frozen, and "
    "prints the returns. By default it plays the final evaluation's episodes with its seeds, so "
    "it prints the returns of metrics.json.",
    (
        CHECKPOINT,
        Option("episodes", int, "N", "episodes to play (default: the run's eval_episodes)"),
        Option("seed", int, "N",
               "the first episode's seed (default: the final evaluation's, so that the returns "
               "are those of metrics.json)"),
        Option("video", bool, "true|false",
               "write an MP4 per episode into <run folder>/videos/ (the video extra)"),
        Option("render", bool, "true|false", "show the episodes in a window (needs a display)"),
        TRUST,
    ),
    examples=("torchrl eval runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1",
              "torchrl eval runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1 checkpoint=best "
              "episodes=5 video=true"),
)

EXPORT = Command(
    "export",
    ("torchrl export <run folder> [checkpoint=...] [format=torch|onnx] [out=<file>] "
     "[trust=...]",),
    "Writes a run's deterministic policy (normalization, network, greedy action) as one file: "
    "a torch.export program that runs with torch alone, or an ONNX model checked against the "
    "torch policy with onnxruntime (the onnx extra). An existing file is never overwritten.",
    (
        CHECKPOINT,
        Option("format", str, "torch|onnx", "torch (default): a .pt2 program; onnx: a .onnx model"),
        Option("out", str, "<file>",
               "where to write it (default: <run folder>/policy_<checkpoint>.pt2 or .onnx)"),
        TRUST,
    ),
    examples=("torchrl export runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1 format=onnx",),
)

CONFIGS = Command(
    "configs",
    (
        "torchrl configs [--config-dir DIR]",
        "torchrl configs <agent> <env> [memory] [--config-dir DIR]",
    ),
    "The first form lists every config group's options and the tuned agent + env pairs. The "
    "second prints the values that the pair's env and tuned files set, its tuned_memory file "
    "for the memory included, and the file each value comes from.",
    arguments=(
        ("<agent> <env>", "an agent and an env option (env=<id> of torchrl train)"),
        ("[memory]", "a memory option (memory=<kind> of torchrl train; none by default)"),
        ("--config-dir DIR", "a config folder of yours ahead of the shipped conf/ (also "
                             "TORCHRL_CONFIG_DIR=DIR); its options are marked (user)"),
    ),
    examples=(
        "torchrl configs",
        "torchrl configs ppo_clip HalfCheetah-v5",
        "torchrl configs ppo_clip CartPoleNoVel-v1 lstm",
    ),
)

def wants_help(args: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in args)
