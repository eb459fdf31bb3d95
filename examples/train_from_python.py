"""Train from Python: compose a config as the command line would, train, read the metrics.

    python examples/train_from_python.py                    # the cartpole_solve preset
    python examples/train_from_python.py --max-steps 2048   # a quick try

``load_default`` composes a named preset (conf/experiment/), ``compose_config`` any command
line; ``train(cfg, run_dir)`` runs it and returns what metrics.json holds.
"""

import argparse
import tempfile
from pathlib import Path

from torchrl_cli.config import load_default
from torchrl_cli.config.compose import compose_config
from torchrl_cli.run.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=None, help="where the run folders go")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="torchrl_example_"))
    quiet = [f"max_steps={args.max_steps}", "logger.console=quiet", "logger.progress=false"]

    # a preset by name, with overrides: the same as `torchrl train experiment=cartpole_solve ...`
    cfg = load_default("cartpole_solve", quiet)
    metrics = train(cfg, out / "cartpole_solve")
    print(f"cartpole_solve: {metrics['mean_return']:.1f} after {metrics['env_steps']} env steps"
          f" ({metrics['train_seconds']:.1f} s); solved: {metrics['solved']}")

    # any command line: the same as `torchrl train agent=a2c seed=1 ...`
    cfg = compose_config(["agent=a2c", "seed=1", *quiet])
    metrics = train(cfg, out / "a2c")
    print(f"a2c seed 1: {metrics['mean_return']:.1f} over {metrics['episodes']} episodes")
    print(f"run folders in {out}")


if __name__ == "__main__":
    main()
