"""The ``torchrl`` command: one module per subcommand (train, eval, export, configs, compare)."""

import sys

from torchrl_cli.errors import ConfigError, FaultError, debugging

USAGE = """usage: torchrl <command> [overrides...] [hydra flags]

commands:
  train     train an agent: torchrl train agent=ppo_clip env=CartPole-v1 agent.lr=1e-3 seed=3
            (Hydra flags work: -m/--multirun, --cfg job, --help, --info;
            tab completion: eval "$(torchrl train -sc install=bash)", or install=zsh)
  tune      tune hyperparameters with Optuna: torchrl tune hparams_search=ppo_clip_cartpole
            [tune.n_trials=N] [overrides]: trials pruned early, a study several processes
            share, the best trial as a tuned file (torchrl tune --help)
  configs   list every config group's options and the tuned pairs; torchrl configs <agent>
            <env> [memory]: the values that pair's env and tuned files set, and the file of each
            (train and configs take --config-dir DIR, or TORCHRL_CONFIG_DIR=DIR: your files
            there replace the shipped ones of the same name)
  eval      replay a run's policy: torchrl eval <run folder> [checkpoint=last|best|<file>]
            [episodes=N] [seed=N] [video=true] [render=true]
  export    write a run's policy as a torch.export file, or an ONNX model (format=onnx):
            torchrl export <run folder> [checkpoint=last|best|<file>] [format=torch|onnx]
            [out=<file>]
  compare   compare runs: torchrl compare <run or sweep folders...> [--out DIR]
            [--metric eval|train] [--format png|pdf|svg] [--dpi N]: a table per
            configuration across seeds and compare.png (in the folder given)

examples:
  torchrl train                                   # PPO-clip on CartPole-v1
  torchrl train env=Pendulum-v1                   # continuous actions
  torchrl train experiment=cartpole_solve         # a named preset from conf/experiment/
  torchrl train -m seed=0,1,2                     # a sweep, one run folder per job
  torchrl train resume=runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1   # go on after Ctrl-C
  torchrl eval runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1 video=true
  torchrl compare runs/2026-11-23                 # every run below a folder, grouped by config
"""
COMMANDS = ("train", "tune", "configs", "eval", "export", "compare")


def command_help(command: str) -> str:
    """The text ``torchrl <command> --help`` prints (train's without the composed config and
    the groups' options, which the config reference and ``torchrl configs`` list)."""
    if command == "train":
        from torchrl_cli.cli.help import FOOTER, HEADER

        return "\n".join([HEADER, "", FOOTER])
    if command == "tune":
        from torchrl_cli.cli.tune import USAGE

        return USAGE.rstrip()
    if command == "compare":
        from torchrl_cli.cli.compare import make_parser

        return make_parser().format_help().rstrip()
    from torchrl_cli.cli.usage import CONFIGS, EVAL, EXPORT

    return {"eval": EVAL, "export": EXPORT, "configs": CONFIGS}[command].help()


def _console():
    """A console that soft-wraps off a terminal (as ``tracking.console.make_console``, without
    importing the agents, and torch, for the commands that need neither)."""
    from rich.console import Console

    console = Console()
    console.soft_wrap = not console.is_terminal
    return console


def main(argv: list[str] | None = None) -> int:
    """``torchrl <argv>``; the exit code. As the program itself (``argv`` None: the console
    script's ``sys.exit(main())``) the process ends here, without the interpreter's teardown."""
    if argv is not None:
        return run(argv)
    code = run(sys.argv[1:])
    exit_now(code)
    return code


def exit_now(code: int) -> None:
    """End the process at once: the atexit handlers run, the streams and logs are flushed, and
    the interpreter's teardown (half a second of freeing torch's and every module's objects
    after the last line was printed) is skipped."""
    import atexit
    import logging
    import os
    import threading

    # what the interpreter does first when it exits: wait for non-daemon threads and run the
    # threading exit hooks (concurrent.futures and loky stop their workers there), then atexit
    threading._shutdown()
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(code if isinstance(code, int) else 1)


def run(argv: list[str]) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:  # `torchrl train --help | head`: the reader has gone, quietly
        import os

        # what is left in the buffer goes nowhere, instead of failing again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a command that SIGPIPE ended: 128 + 13


def _run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, args = argv[0], argv[1:]
    if command in COMMANDS and command != "train" and any(a in ("-h", "--help") for a in args):
        print(command_help(command))  # before the command's own imports (eval's reach torch)
        return 0
    try:
        if command in ("-sc", "--shell-completion") or command.startswith("--shell-completion="):
            from torchrl_cli.cli.completion import shell_completion  # the script's query

            return shell_completion(argv)
        if command == "train":
            from torchrl_cli.cli.train import train_command

            return train_command(args)
        if command == "tune":
            from torchrl_cli.cli.tune import tune_command

            return tune_command(args)
        if command == "configs":
            from torchrl_cli.cli.configs import configs_command

            return configs_command(args, _console())
        if command == "eval":
            from torchrl_cli.cli.eval import eval_command

            return eval_command(args)
        if command == "export":
            from torchrl_cli.cli.export import export_command

            return export_command(args)
        if command == "compare":
            from torchrl_cli.cli.compare import compare_command

            return compare_command(args, _console())
        from torchrl_cli.errors import did_you_mean

        raise ConfigError(
            f"unknown command '{command}'{did_you_mean(command, COMMANDS)}; "
            f"choose one of: {', '.join(COMMANDS)}"
        )
    except (ConfigError, FaultError) as err:
        if debugging():
            raise
        print(f"torchrl: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    except KeyboardInterrupt:  # a second Ctrl-C: abort at once, without a traceback
        print("torchrl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
