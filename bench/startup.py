"""Time to result as the user lives it: the wall time of start-up commands from process start to
exit (median of 3), the time from each one's last printed line to its exit, and the import
floor (the modules every command imports). ``python bench/startup.py [command names...]``."""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "import floor": [sys.executable, "-c",
                     "import torch, gymnasium, hydra, omegaconf, rich, tensorboard"],
    "train --help": [str(BIN / "torchrl"), "train", "--help"],
    "train --cfg job": [str(BIN / "torchrl"), "train", "--cfg", "job"],
    "configs": [str(BIN / "torchrl"), "configs"],
    "train max_steps=2048": [str(BIN / "torchrl"), "train", "max_steps=2048",
                             "logger.progress=false"],
}


def timed(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(wall seconds, seconds from the last line to the exit, lines) of one run in a fresh
    folder."""
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        last, lines = start, 0
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for _ in proc.stdout:
            last, lines = time.perf_counter(), lines + 1
        code = proc.wait()
        end = time.perf_counter()
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {code}")
    return end - start, end - last, lines


def main(names: list[str]) -> None:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="120", PYTHONUNBUFFERED="1")
    for name in names or COMMANDS:
        runs = [timed(COMMANDS[name], env) for _ in range(3)]
        walls = [r[0] for r in runs]
        print(f"{name:22s} median {statistics.median(walls):6.2f} s  "
              f"(runs {' '.join(f'{w:.2f}' for w in walls)})  last line to exit "
              f"{statistics.median(r[1] for r in runs):.2f} s  {runs[-1][2]} lines", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
