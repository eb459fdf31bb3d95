"""One Stable-Baselines3 time-to-solve run as its own process, for the whole-process timing:
``python -m bench.perf.sb3_process <env id> <seed> vectorized|callback [--smoke]`` imports SB3,
trains with rl-zoo3's tuned PPO and the protocol's evaluations (20 deterministic episodes every
``eval_every`` env steps, stopping at the first mean >= the threshold) until solved, prints the
result and exits. ``vectorized``: the evaluation of sections 1 and 3 (one episode per copy of a
20-copy vector env, as torchrl-cli evaluates); ``callback``: SB3's own ``EvalCallback`` on one
eval env with ``StopTrainingOnRewardThreshold``, as an SB3 script (and rl-zoo3's default
``--n-eval-envs 1``) runs it."""

import sys

from bench.perf.settings import EVAL_EPISODES, FULL, SMOKE

EVALUATIONS = ("vectorized", "callback")


def solve_with_callback(task, seed: int) -> int | None:
    from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
    from stable_baselines3.common.env_util import make_vec_env

    from bench.perf import sb3

    model = sb3.make_ppo(task.env_id, seed)
    eval_env = make_vec_env(task.env_id, n_envs=1, seed=seed + sb3.EVAL_SEED_OFFSET)
    stop = StopTrainingOnRewardThreshold(reward_threshold=task.threshold, verbose=0)
    every = max(task.eval_every // model.n_envs, 1)  # EvalCallback counts calls, n_envs steps each
    callback = EvalCallback(eval_env, callback_on_new_best=stop, n_eval_episodes=EVAL_EPISODES,
                            eval_freq=every, deterministic=True, verbose=0)
    model.learn(task.budget or sb3.ZOO_BUDGET, callback=callback)
    solved = callback.best_mean_reward >= task.threshold
    return model.num_timesteps if solved else None


def main(env_id: str, seed: int, evaluation: str, smoke: bool) -> None:
    from bench.perf import sb3  # the imports are part of the process being timed

    budgets = SMOKE if smoke else FULL
    task = next(t for t in (budgets.cartpole, budgets.pendulum) if t.env_id == env_id)
    if evaluation == "callback":
        steps = solve_with_callback(task, seed)
    else:
        run = sb3.time_to_solve(task, seed)
        steps = run.solved_steps
    print(f"solved at {steps} env steps" if steps is not None else "not solved", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], "--smoke" in sys.argv[4:])
