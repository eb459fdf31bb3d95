"""Time to result as the user lives it: the wall time of start-up commands from process start to
exit (median of 3), the time from each one's last printed line to its exit, and the import
floor (the modules every command imports). ``python bench/startup.py [command names...]``;
``make bench`` measures the headline ones (bench/perf/whole.py, whose timing this uses)."""

import statistics
import sys
import tempfile
from pathlib import Path

from bench.perf.whole import BIN, FLOOR, timed

COMMANDS = {
    "import floor": FLOOR,
    "train --help": [str(BIN / "torchrl"), "train", "--help"],
    "train --cfg job": [str(BIN / "torchrl"), "train", "--cfg", "job"],
    "configs": [str(BIN / "torchrl"), "configs"],
    "train max_steps=2048": [str(BIN / "torchrl"), "train", "max_steps=2048",
                             "logger.progress=false"],
}


def main(names: list[str]) -> None:
    for name in names or COMMANDS:
        runs = []
        for _ in range(3):
            with tempfile.TemporaryDirectory() as cwd:  # a fresh folder per run
                runs.append(timed(COMMANDS[name], Path(cwd)))
        walls = [r.wall for r in runs]
        print(f"{name:22s} median {statistics.median(walls):6.2f} s  "
              f"(runs {' '.join(f'{w:.2f}' for w in walls)})  last line to exit "
              f"{statistics.median(r.exit for r in runs):.2f} s  {runs[-1].lines} lines",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
