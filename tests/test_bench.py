"""`make bench-smoke`: the performance harness end to end (same code as `make bench`, tiny
budgets), and the arithmetic of its ratios."""

import math
import re
import subprocess
import sys

import pytest
from conftest import REPO

from bench.perf.records import SolveRun, Throughput
from bench.perf.report import median_time, ratios

SUMMARY_ROWS = ("CartPole-v1 time-to-solve", "same-hyperparameter throughput",
                "Pendulum-v1 time-to-solve", "collector vs raw stepping, 8 envs")


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "performance.md"
    proc = subprocess.run([sys.executable, "-m", "bench.perf", "--smoke", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc.stdout


def test_smoke_writes_a_report_with_parsable_ratios(smoke_report):
    """The report exists, its summary has one row per headline figure, and every ratio, speed
    and time in it is a finite positive number."""
    out, stdout = smoke_report
    text = out.read_text()
    assert text.startswith("# Performance: torchrl-cli beside Stable-Baselines3")
    for name in SUMMARY_ROWS:
        row = next(line for line in text.splitlines() if line.startswith(f"| {name}"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        ratio = float(cells[3])
        assert math.isfinite(ratio) and ratio > 0, row
        assert cells[5] in ("yes", "no"), row
        for cell in cells[1:3]:  # ours, SB3 (or raw): a number first
            assert float(re.match(r"(raw )?([\d,.]+)", cell).group(2).replace(",", "")) > 0
        assert row in stdout  # the same table is printed


def test_smoke_report_names_machine_versions_and_commands(smoke_report):
    text = smoke_report[0].read_text()
    assert "stable-baselines3 2.9.2" in text and "torch " in text and "Machine: " in text
    assert "torchrl train experiment=cartpole_solve seed=0" in text
    assert "torchrl train experiment=pendulum_solve seed=0" in text
    for section in ("## 1. CartPole-v1", "## 2. Same-hyperparameter", "## 3. Pendulum-v1",
                    "## 4. Collector", "## 5. Scaling"):
        assert section in text
    scaling = text.split("## 5. Scaling")[1].split("##")[0]
    header = next(line for line in scaling.splitlines() if line.startswith("| n_envs"))
    assert all(f"{mode} raw" in header for mode in ("sync", "async", "native"))


def _solve(seconds):
    return [SolveRun(i, None if s is None else 1000, s) for i, s in enumerate(seconds)]


def test_ratios_use_medians_and_count_unsolved_seeds_as_never():
    """Time ratios are ours / SB3 of the median training seconds (an unsolved seed is +inf);
    throughput is the ratio of median steps/s; collector is collector / raw at 8 envs."""
    results = {
        "cartpole": {"ours": _solve([1.0, 2.0, None]), "sb3": _solve([4.0, 8.0, 6.0])},
        "pendulum": {"ours": _solve([1.0, None, None]), "sb3": _solve([3.0, 3.0, 3.0])},
        "throughput": {"ours": [Throughput(100, 1.0, 500.0)],
                       "sb3": [Throughput(100, 4.0, 500.0)]},
        "collector": {8: {"raw": 1000.0, "collector": 600.0, "vectorization": "native"}},
    }
    assert median_time(results["cartpole"]["ours"]) == 2.0
    r = ratios(results)
    assert r["cartpole_time"] == pytest.approx(2.0 / 6.0)
    assert r["pendulum_time"] == math.inf
    assert r["throughput"] == pytest.approx(4.0)
    assert r["collector_8"] == pytest.approx(0.6)


def test_side_by_side_report_ratios_and_unreached_thresholds(tmp_path):
    """bench/sidebyside.py's table: training-time and wall ratios from both sides' figures, a
    side that never reached the threshold says so and gets no training-time ratio."""
    from bench.sidebyside import write_report

    def side(steps, seconds, wall):
        points = [{"env_steps": 50_000, "train_seconds": 10.0, "mean_return": 2100.4}]
        return {"solved_steps": steps, "solved_seconds": seconds, "evaluations": points,
                "wall_seconds": wall}

    pairs = [{"seed": 0, "ours": side(600_000, 300.0, 400.0), "sb3": side(700_000, 1200.0, 1600.0)},
             {"seed": 1, "ours": side(None, None, 500.0), "sb3": side(800_000, 1000.0, 2000.0)}]
    out = tmp_path / "sidebyside.md"
    write_report(pairs, 5000.0, 1_000_000, 50_000, out)
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")][1:]
    assert rows[0] == ("| 0 | 600,000 steps, 300 s | 700,000 steps, 1200 s | 0.250 | 400 s | "
                       "1600 s | 0.250 |")
    assert rows[1] == "| 1 | not reached | 800,000 steps, 1000 s | — | 500 s | 2000 s | 0.250 |"
    assert "seed 0, SB3: 50k: 2100" in out.read_text()
    assert ("Over the 2 seeds: torchrl-cli 900 s of wall time against Stable-Baselines3's "
            "3600 s, 0.250x (median of the per-seed wall ratios 0.250x)") in out.read_text()


def test_pixels_bench_times_each_phase_once_and_gives_sb3_ours_settings():
    """bench/pixels.py: a call inside a timed call of the same phase is not counted twice, and
    Stable-Baselines3 gets the PPO settings ours composes for the env."""
    import time

    from bench.pixels import TASKS, Phases, ours_hyperparameters

    class Loop:
        def outer(self):
            time.sleep(0.02)
            self.inner()

        def inner(self):
            time.sleep(0.02)

    phases = Phases()
    phases.wrap(Loop, "outer", "update")
    phases.wrap(Loop, "inner", "update")
    Loop().outer()
    assert 0.035 < phases.seconds["update"] < 0.2  # once: the outer call's 40 ms
    settings = ours_hyperparameters(TASKS["pong"])
    assert settings["n_envs"] * settings["n_steps"] // settings["batch_size"] == 4
    assert settings["n_epochs"] == 4 and settings["frame_stack"] == 4


def test_recurrent_bench_gives_both_tools_the_zoo_recipe_and_computes_its_ratios():
    """bench/recurrent.py: ours composes to rl-zoo3's CartPoleNoVel recipe (one minibatch of
    256, 20 epochs, LSTM 64 after a 64-unit layer, both schedules annealed), and its tables'
    ratios are the medians' ratios."""
    from bench.recurrent import ZOO, ours_overrides, ratio_table, solve_table
    from torchrl_cli.config.compose import compose_config

    cfg = compose_config(ours_overrides(3))
    assert cfg.env.id == "CartPoleNoVel-v1" and cfg.memory.kind == "lstm"
    assert cfg.memory.hidden_size == ZOO["lstm_hidden_size"] and list(cfg.net.hidden) == [64]
    assert cfg.env.n_envs * cfg.agent.n_steps == ZOO["batch_size"] * cfg.agent.num_mini_batches
    assert (cfg.agent.num_epochs, cfg.agent.gamma, cfg.agent.advantage.gae_lambda) == (20, 0.98,
                                                                                        0.8)
    assert cfg.agent.lr_schedule == "linear" and cfg.agent.policy.clip_schedule == "linear"
    assert not cfg.memory.shared and cfg.seed == 3

    def run(steps, seconds, solved=None, final=500.0):
        return {"env_steps": steps, "train_seconds": seconds, "final": final,
                "solved_steps": solved and solved[0], "solved_seconds": solved and solved[1]}

    rows = ratio_table([(run(1000, 1.0), run(1000, 4.0)), (run(1000, 2.0), run(1000, 4.0)),
                        (run(1000, 1.0), run(1000, 2.0))])
    assert rows[-1] == "| median | 1000 | 250 | **4.00** |"  # medians 1000 and 250 steps/s
    lines = solve_table({"ours": [run(1, 1, (512, 10.0)), run(1, 1, None, 80.0)],
                         "sb3": [run(1, 1, (1024, 30.0)), run(1, 1, (2048, 50.0))]}, [0, 1])
    assert lines[2] == "| 0 | 512, 10.0 s | 500.0 | 1024, 30.0 s | 500.0 |"
    assert lines[3] == "| 1 | not within 100k | 80.0 | 2048, 50.0 s | 500.0 |"
    assert lines[-1].endswith("sb3-contrib / torchrl-cli = **3.00**.")


def test_marl_bench_budget_summary_and_ours_result(tmp_path):
    """bench/marl.py: BenchMARL's budget rounds up to its whole batches; the summary takes the
    IQM over seeds per (algorithm, tool) and the median wall; ours' result is the final
    evaluation's mean per agent and team mean (no BenchMARL import needed)."""
    import json

    from bench.marl import ours_command, ours_result, summarize, table, whole_batches, write_report

    assert whole_batches(100_352, 6000) == 102_000
    assert whole_batches(6000, 6000) == 6000 and whole_batches(1, 6000) == 6000
    with pytest.raises(ValueError, match="at least 1"):
        whole_batches(0, 6000)
    (tmp_path / "metrics.json").write_text(json.dumps(
        {"returns": [-10.0, -20.0, -30.0, -12.0, -14.0, -16.0], "team_returns": [-60.0, -42.0],
         "env_steps": 2048}))
    assert ours_result(tmp_path) == {"per_agent": -17.0, "team": -51.0, "episodes": 2,
                                     "env_steps": 2048}
    default = ours_command("mappo", 3, tmp_path, None, 20)
    assert "agent=mappo" in default and "seed=3" in default
    assert not any(a.startswith("max_steps=") for a in default)  # the default budget
    assert "max_steps=2048" in ours_command("ippo", 0, tmp_path, 2048, 2)
    results = [{"algo": "mappo", "tool": tool, "seed": s, "per_agent": score, "team": 3 * score,
                "env_steps": 100, "wall": wall}
               for tool, scores, walls in (("ours", [-10, -20, -30, -40], [1, 2, 3, 50]),
                                           ("BenchMARL", [-5, -5, -6, -100], [9, 9, 9, 9]))
               for s, (score, wall) in enumerate(zip(scores, walls, strict=True))]
    rows = summarize(results)
    assert [(r["tool"], r["seeds"]) for r in rows] == [("ours", 4), ("BenchMARL", 4)]
    assert rows[0]["per_agent"] == -25.0 and rows[0]["team"] == -75.0  # the middle two of four
    assert rows[1]["per_agent"] == -5.5 and rows[0]["wall"] == 2.5
    assert "| mappo | ours | 4 | 100 | -25.00 | -75.00 | 2 |" in table(rows)
    write_report(results, {"per_agent": -27.0, "team": -81.0, "episodes": 200},
                 tmp_path / "marl.md", "python -m bench.marl")
    text = (tmp_path / "marl.md").read_text()
    assert "random policy: -27.00 per agent, team -81.00 (200 episodes)" in text
    assert text.count("| mappo | BenchMARL |") == 5  # the summary row and four runs


def test_memory_bench_rows_compose_and_its_table_counts_seeds_at_the_target(tmp_path):
    """bench/memory.py: each row's command (`env=<id> memory=<kind>`, nothing else) composes to
    its policy (stacked frames without a memory); the table gives per-seed finals, the seeds at
    the target and whether the issue's target is met (every seed, or the IQM)."""
    from omegaconf import OmegaConf

    from bench.memory import GOALS, ROWS, describe_policy, table_rows
    from torchrl_cli.config.compose import compose_config

    assert {env for env, _ in ROWS} == set(GOALS)
    for env, memory in ROWS:
        config = tmp_path / f"{env}_{memory}.yaml"
        config.write_text(OmegaConf.to_yaml(compose_config([f"env={env}", f"memory={memory}"])))
        policy = describe_policy(config)
        assert policy.startswith("frame stack" if memory == "none" else memory.upper()), policy

    def run(final, steps=100352, seconds=40.0):
        return {"mean_return": final, "env_steps": steps, "train_seconds": seconds,
                "evaluations": [], "policy": "GRU 128"}

    lines = table_rows({
        ("CartPoleNoVel-v1", "gru"): [run(500.0), run(278.0), run(500.0), run(500.0)],
        ("PendulumNoVel-v1", "lstm"): [run(-150.0), run(-190.0), run(-195.0), run(-400.0)],
        ("LunarLanderNoVel-v3", "none"): [run(210.0), {}, run(250.0), run(100.0)],
    }, [0, 1, 2, 3])  # fmt: skip
    cartpole, pendulum, lunar = (line.split(" | ") for line in lines[2:])
    assert cartpole[3:7] == ["500.0", "278.0", "500.0", "500.0"]
    assert cartpole[8:11] == ["3 of 4", "500 on every seed", "no"]
    # IQM of four: the mean of the middle two, (-190 - 195) / 2
    assert pendulum[7].startswith("-192.5 [") and pendulum[8:11] == ["3 of 4", "IQM >= -200",
                                                                      "yes"]
    assert lunar[3:7] == ["210.0", "failed", "250.0", "100.0"] and lunar[8] == "2 of 3"
