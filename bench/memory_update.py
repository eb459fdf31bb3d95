"""The recurrent update's cost: one PPO-clip update (policy and value, each with its memory)
on one CartPoleNoVel-v1 rollout, stepped as merged in f4758c3 (``Memory.step`` per time step
under autograd) against today's ``Memory.unroll`` (the LSTM's episode pieces through torch's
kernel, the GRU's ``GRULayer``: one autograd node per layer, backward through time by hand), in
one process, interleaved, best of several.

    python bench/memory_update.py [--old path/to/old/memory.py] [--reps 5]

Without ``--old`` the old stepping is the git history's (``git show f4758c3:...``)."""

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import make_agent  # noqa: E402

#: rl-zoo3's RecurrentPPO recipe for CartPoleNoVel-v1: 8 envs x 32 steps, 20 epochs of one batch
RECIPE = ["env=CartPoleNoVel-v1", "env.n_envs=8", "agent.n_steps=32", "agent.num_epochs=20",
          "agent.num_mini_batches=1", "net.hidden=[64]", "net.activation=relu"]


def old_memory_module(path: str | None) -> types.ModuleType:
    source = (Path(path).read_text() if path else subprocess.run(
        ["git", "show", "f4758c3:torchrl_cli/nn/memory.py"], cwd=REPO, check=True,
        capture_output=True, text=True).stdout)
    module = types.ModuleType("old_memory")
    exec(compile(source, "old_memory.py", "exec"), module.__dict__)
    return module


def timed(agent, batch, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        agent.update(batch)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", default=None)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    old = old_memory_module(args.old)
    print("| memory | update before (ms) | update now (ms) | speed-up |\n|---|---|---|---|")
    for kind in ("lstm", "gru"):
        agent, env = make_agent([f"memory={kind}", *RECIPE])
        batch = agent.batch_of(agent.collector.collect(agent.value_fn()))
        memories = [m.memory for m in agent.models.values()]
        new_methods = [(m.step, m.unroll) for m in memories]
        old_methods = [(types.MethodType(old.Memory.step, m),
                        types.MethodType(old.Memory.unroll, m)) for m in memories]
        times = {"old": float("inf"), "new": float("inf")}
        for _ in range(3):
            for name, methods in (("old", old_methods), ("new", new_methods)):
                for memory, (step, unroll) in zip(memories, methods, strict=True):
                    memory.step, memory.unroll = step, unroll
                times[name] = min(times[name], timed(agent, batch, args.reps))
        env.close()
        print(f"| {kind} | {times['old'] * 1000:.0f} | {times['new'] * 1000:.0f} | "
              f"{times['old'] / times['new']:.1f}x |")


if __name__ == "__main__":
    main()
