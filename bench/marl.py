"""`make bench-marl`: many agents, torchrl-cli beside BenchMARL on PettingZoo's MPE
``simple_spread_v3`` (3 agents, 3 landmarks, 25-step episodes, discrete actions), MAPPO and
IPPO, the same env-step budget, one fresh process per run, the tools interleaved (ours mappo,
BenchMARL mappo, ours ippo, BenchMARL ippo, next seed, ...).

Each tool runs at its own defaults for the algorithm, with one torch thread:

- ours: ``torchrl train env=pettingzoo:mpe2.simple_spread_v3 agent=<algo> seed=<s>`` (its
  budget, ``max_steps``, is the default unless ``--steps`` differs), the final evaluation's
  ``metrics.json``;
- BenchMARL: ``Experiment`` with its YAML defaults for the algorithm, the MLP model and the
  experiment, changed only where the task or the budget must be the same: ``max_cycles=25``
  (its task file says 100), discrete actions (``prefer_continuous_actions=false``), the budget
  rounded up to whole batches of ``on_policy_collected_frames_per_batch``, an evaluation after
  the first and the last batch only, of ``--episodes`` deterministic episodes, and no video or
  loggers. BenchMARL (through pytorch/rl's ``PettingZooEnv``) finds MPE tasks in
  ``pettingzoo.mpe``, which PettingZoo 1.26 emptied; the worker hands it ``mpe2``'s module for
  the task instead (``use_mpe2``), the same env our runs use.

The reported return of a run is its final evaluation: the mean over episodes of the mean over
agents of each agent's episode return ("per agent"), and the team's (the sum over agents)
beside it. Across seeds: the interquartile mean (IQM). Wall time is the whole process, from
its start to its exit (imports, env making, training and every evaluation).

BenchMARL lives in its own virtual environment (``--benchmarl-python``; the Makefile makes
``.venv-marl``), since it installs pytorch/rl's ``torchrl`` beside torch.

    python -m bench.marl [--steps N] [--seeds 0 1 2] [--algos mappo ippo] [--episodes 20]
                         [--benchmarl-python .venv-marl/bin/python] [--out PATH] [--smoke]
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "pettingzoo:mpe2.simple_spread_v3"
TASK = "simple_spread_v3"
MAX_CYCLES = 25  # simple_spread_v3's own default episode length
ALGOS = ("mappo", "ippo")
DEFAULT_STEPS = None  # None: ours at its default max_steps, BenchMARL at the same count
SMOKE_STEPS = 2_048


def whole_batches(steps: int, batch: int) -> int:
    """The smallest multiple of ``batch`` that is at least ``steps`` (BenchMARL collects and
    stops in whole batches, and evaluates only on a multiple of its batch)."""
    if steps < 1 or batch < 1:
        raise ValueError(f"steps ({steps}) and batch ({batch}) must be at least 1")
    return math.ceil(steps / batch) * batch


def ours_command(algo: str, seed: int, folder: Path, steps: int | None, episodes: int) -> list[str]:
    cmd = [str(Path(sys.executable).parent / "torchrl"), "train", f"env={ENV_ID}",
           f"agent={algo}", f"seed={seed}", "torch_threads=1", "logger.progress=false",
           "logger.console=quiet", f"hydra.run.dir={folder}"]  # fmt: skip
    if steps is not None:  # a smoke run: a tiny budget, evaluations to match
        cmd += [f"max_steps={steps}", f"eval_freq={steps}", f"eval_episodes={episodes}"]
    return cmd


def ours_result(folder: Path) -> dict:
    """The final evaluation in a run folder: per-agent and team returns, env steps."""
    metrics = json.loads((folder / "metrics.json").read_text())
    returns, team = metrics["returns"], metrics["team_returns"]
    return {"per_agent": sum(returns) / len(returns), "team": sum(team) / len(team),
            "episodes": len(team), "env_steps": metrics["env_steps"]}  # fmt: skip


def random_policy(episodes: int, seed: int = 0) -> dict:
    """Uniformly random actions on the task, ``episodes`` episodes (reset seeds 0, 1, ...):
    the floor a trained policy must clear, on the same per-agent and team scale."""
    import numpy as np
    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env(max_cycles=MAX_CYCLES)
    rng = np.random.default_rng(seed)
    per_agent, team = [], []
    for episode in range(episodes):
        env.reset(seed=episode)
        totals = dict.fromkeys(env.agents, 0.0)
        while env.agents:
            actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
            _, rewards, *_ = env.step(actions)
            for agent, reward in rewards.items():
                totals[agent] += reward
        per_agent.append(sum(totals.values()) / len(totals))
        team.append(sum(totals.values()))
    env.close()
    return {"per_agent": sum(per_agent) / episodes, "team": sum(team) / episodes,
            "episodes": episodes}  # fmt: skip


def plot(runs: Path, results: list[dict], floor: dict, out: Path) -> None:
    """Ours' evaluations through training (a line per seed, per algorithm), BenchMARL's final
    evaluations (crosses) and the random policy (dashed), per agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8))
    colors = dict(zip(ALGOS, ("tab:blue", "tab:orange"), strict=True))
    for r in results:
        color = colors[r["algo"]]
        if r["tool"] == "BenchMARL":
            ax.plot(r["env_steps"], r["per_agent"], "x", color=color, markersize=9,
                    label=f"BenchMARL {r['algo']} (final)")  # fmt: skip
            continue
        metrics = json.loads((runs / f"ours_{r['algo']}_{r['seed']}" / "metrics.json").read_text())
        steps = [e["env_steps"] for e in metrics["evaluations"]]
        returns = [e["mean_return"] for e in metrics["evaluations"]]
        ax.plot(steps, returns, "-o", color=color, alpha=0.8, markersize=3,
                label=f"torchrl-cli {r['algo']}")  # fmt: skip
    ax.axhline(floor["per_agent"], color="gray", linestyle="--", label="random policy")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # one entry per label
    ax.legend(unique.values(), unique.keys(), loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncol=3, fontsize=8)  # fmt: skip
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return per agent")
    ax.set_title(f"{TASK}: deterministic evaluations, one line per seed")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


# ----------------------------------------------------- the BenchMARL worker (its own venv)


def use_mpe2() -> None:
    """Let pytorch/rl's ``PettingZooEnv`` find ``simple_spread_v3`` in ``mpe2``: it looks
    tasks up in ``pettingzoo.utils.all_modules``, which imports every family (the Atari one
    needs multi_agent_ale_py) and no longer holds MPE."""
    import types

    from mpe2 import simple_spread_v3

    shim = types.ModuleType("pettingzoo.utils.all_modules")
    shim.all_environments = {f"mpe/{TASK}": simple_spread_v3}
    sys.modules["pettingzoo.utils.all_modules"] = shim


def benchmarl_worker(algo: str, seed: int, steps: int, episodes: int, out: Path) -> None:
    import torch

    torch.set_num_threads(1)
    use_mpe2()
    from benchmarl.algorithms import IppoConfig, MappoConfig
    from benchmarl.environments import PettingZooTask
    from benchmarl.experiment import Experiment, ExperimentConfig
    from benchmarl.experiment.logger import Logger
    from benchmarl.models.mlp import MlpConfig

    config = ExperimentConfig.get_from_yaml()
    batch = config.on_policy_collected_frames_per_batch
    frames = whole_batches(steps, batch)
    config.max_n_frames = frames
    config.evaluation_interval = frames  # after the first batch and the last
    config.evaluation_episodes = episodes
    config.prefer_continuous_actions = False
    config.render = False
    config.loggers = []
    config.create_json = True  # BenchMARL evaluates only with a logger or its JSON
    config.save_folder = str(out.parent)
    config.checkpoint_at_end = False
    task = PettingZooTask.SIMPLE_SPREAD.get_from_yaml()
    task.config["max_cycles"] = MAX_CYCLES
    algorithm = {"mappo": MappoConfig, "ippo": IppoConfig}[algo].get_from_yaml()

    finals: list[dict] = []
    log_evaluation = Logger.log_evaluation

    def record(self, rollouts, *args, **kwargs):  # the episodes as BenchMARL cut them
        log_evaluation(self, rollouts, *args, **kwargs)
        per_agent, team = [], []
        for td in rollouts:
            agents = torch.cat([self._get_reward(g, td).sum(0).reshape(-1) for g in self.group_map])
            per_agent.append(agents.mean().item())
            team.append(agents.sum().item())
        finals.append({"per_agent": sum(per_agent) / len(per_agent),
                       "team": sum(team) / len(team), "episodes": len(team)})  # fmt: skip

    Logger.log_evaluation = record
    experiment = Experiment(task=task, algorithm_config=algorithm,
                            model_config=MlpConfig.get_from_yaml(),
                            critic_model_config=MlpConfig.get_from_yaml(), seed=seed,
                            config=config)  # fmt: skip
    experiment.run()
    out.write_text(json.dumps(finals[-1] | {"env_steps": experiment.total_frames}))


# ---------------------------------------------------------------- the orchestrator (our venv)


def timed(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` to its end (stderr to ``log``); its wall seconds, or SystemExit naming it."""
    start = time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.run(cmd, cwd=ROOT, text=True, stdout=subprocess.DEVNULL,
                              stderr=err, env=os.environ | {"OMP_NUM_THREADS": "1"})  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} ... failed ({proc.returncode}): {log.read_text()[-600:]}")
    return wall


def run_pair(algo: str, seed: int, args, runs: Path) -> list[dict]:
    """Ours, then BenchMARL for the same budget (ours' env steps, rounded up to its batch)."""
    folder = runs / f"ours_{algo}_{seed}"
    wall = timed(ours_command(algo, seed, folder, args.steps, args.episodes),
                 runs / f"ours_{algo}_{seed}.log")  # fmt: skip
    ours = ours_result(folder) | {"tool": "torchrl-cli", "algo": algo, "seed": seed, "wall": wall}
    out = runs / f"benchmarl_{algo}_{seed}.json"
    cmd = [args.benchmarl_python, "-m", "bench.marl", "--benchmarl-worker", algo, str(seed),
           "--steps", str(ours["env_steps"]), "--episodes", str(args.episodes),
           "--result", str(out)]  # fmt: skip
    wall = timed(cmd, runs / f"benchmarl_{algo}_{seed}.log")
    theirs = json.loads(out.read_text()) | {"tool": "BenchMARL", "algo": algo, "seed": seed,
                                            "wall": wall}  # fmt: skip
    return [ours, theirs]


def summarize(results: list[dict]) -> list[dict]:
    """One row per (algo, tool): IQMs over seeds of the per-agent and team returns, and the
    median wall seconds."""
    from statistics import median

    from torchrl_cli.analysis.stats import iqm

    rows = []
    for algo in dict.fromkeys(r["algo"] for r in results):
        for tool in dict.fromkeys(r["tool"] for r in results):
            runs = [r for r in results if r["algo"] == algo and r["tool"] == tool]
            rows.append({"algo": algo, "tool": tool, "seeds": len(runs),
                         "per_agent": float(iqm([r["per_agent"] for r in runs])),
                         "team": float(iqm([r["team"] for r in runs])),
                         "env_steps": runs[0]["env_steps"],
                         "wall": median(r["wall"] for r in runs)})  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| algorithm | tool | seeds | env steps | return per agent (IQM) | team return (IQM) "
             "| wall s (median) |", "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['algo']} | {r['tool']} | {r['seeds']} | {r['env_steps']:,} | "
                     f"{r['per_agent']:.2f} | {r['team']:.2f} | {r['wall']:.0f} |")  # fmt: skip
    return "\n".join(lines)


def write_report(results: list[dict], floor: dict, out: Path, command: str) -> None:
    runs = ["| algorithm | tool | seed | env steps | per agent | team | wall s |",
            "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results:
        runs.append(f"| {r['algo']} | {r['tool']} | {r['seed']} | {r['env_steps']:,} | "
                    f"{r['per_agent']:.2f} | {r['team']:.2f} | {r['wall']:.1f} |")  # fmt: skip
    text = (f"# Many agents: torchrl-cli beside BenchMARL on {TASK}\n\n"
            f"`{command}` on {date.today()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, one torch thread per run, one run at a time.\n\n"
            f"{table(summarize(results))}\n\nA uniformly random policy: "
            f"{floor['per_agent']:.2f} per agent, team {floor['team']:.2f} "
            f"({floor['episodes']} episodes).\n\n## Every run\n\n"
            + "\n".join(runs) + "\n")  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--benchmarl-python", default=str(ROOT / ".venv-marl" / "bin" / "python"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="a tiny budget, one seed")
    parser.add_argument("--benchmarl-worker", nargs=2, metavar=("ALGO", "SEED"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.benchmarl_worker:
        algo, seed = args.benchmarl_worker
        return benchmarl_worker(algo, int(seed), args.steps, args.episodes, args.result)
    if args.smoke:
        args.steps, args.seeds, args.episodes = SMOKE_STEPS, args.seeds[:1], 2
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    runs = ROOT / "runs" / "bench-marl" / stamp
    runs.mkdir(parents=True, exist_ok=True)
    out = args.out or runs / "marl.md"
    results = []
    for seed in args.seeds:
        for algo in args.algos:
            for r in run_pair(algo, seed, args, runs):
                results.append(r)
                print(f"{r['tool']:>11} {algo} seed {seed}: {r['per_agent']:.2f} per agent, "
                      f"team {r['team']:.2f}, {r['env_steps']:,} env steps, {r['wall']:.1f} s",
                      flush=True)  # fmt: skip
            (runs / "results.json").write_text(json.dumps(results, indent=1))
    floor = random_policy(10 if args.smoke else 200)
    write_report(results, floor, out, "python -m bench.marl " + " ".join(sys.argv[1:]))
    plot(runs, results, floor, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
