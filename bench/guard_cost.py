"""`python -m bench.guard_cost [steps]`: throughput with the non-finite guard against the same code
with its checks stubbed out, interleaved in one process (rl-zoo3 CartPole PPO, bench.perf.ours)."""
import statistics
import sys

from bench.perf import ours
from torchrl_cli.agents import guard

real = tuple(guard.Guard.__dict__[n] for n in ("rollout_problem", "update_problem", "divergence"))


def stub(on: bool) -> None:
    if on:
        guard.Guard.rollout_problem, guard.Guard.update_problem, guard.Guard.divergence = real
    else:
        guard.Guard.rollout_problem = lambda self, *a: None
        guard.Guard.update_problem = staticmethod(lambda *a: None)
        guard.Guard.divergence = lambda self, *a: None


steps = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
runs = {True: [], False: []}
for i in range(6):
    for on in ((True, False) if i % 2 == 0 else (False, True)):
        stub(on)
        run = ours.throughput(steps, seed=0)
        runs[on].append(run.steps_per_second)
        print(f"guard {'on ' if on else 'off'}: {run.steps_per_second:,.0f} steps/s", flush=True)
on, off = statistics.median(runs[True]), statistics.median(runs[False])
print(f"median on {on:,.0f}, off {off:,.0f}: the guard costs {100 * (1 - on / off):.1f} %")
