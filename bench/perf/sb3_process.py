"""One Stable-Baselines3 time-to-solve run as its own process, for the whole-process timing:
``python -m bench.perf.sb3_process <env id> <seed> [--smoke]`` imports SB3, trains with rl-zoo3's
tuned PPO and the protocol's evaluations until solved, prints the result and exits."""

import sys

from bench.perf.settings import FULL, SMOKE


def main(env_id: str, seed: int, smoke: bool) -> None:
    from bench.perf import sb3  # the imports are part of the process being timed

    budgets = SMOKE if smoke else FULL
    task = next(t for t in (budgets.cartpole, budgets.pendulum) if t.env_id == env_id)
    run = sb3.time_to_solve(task, seed)
    print(f"solved at {run.solved_steps} env steps" if run.solved else "not solved", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), "--smoke" in sys.argv[3:])
