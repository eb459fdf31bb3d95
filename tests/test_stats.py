"""Report statistics across seeds (torchrl_cli.analysis.stats) against hand computations:
IQM (and rliable's own), the stratified percentile bootstrap, env steps to a target; and the
learning benchmark's report built from them."""

import math

import numpy as np
import pytest

from bench.learning import write_report
from torchrl_cli.analysis.stats import (
    bootstrap_ci,
    bootstrap_samples,
    iqm,
    mean,
    median,
    steps_to_target,
    summarize_seeds,
)


def test_iqm_is_the_trimmed_mean_by_hand():
    assert iqm(list(range(1, 9))) == pytest.approx((3 + 4 + 5 + 6) / 4)  # 8 scores: 2 cut a side
    assert iqm([10, 1, 3, 100, 2]) == pytest.approx((2 + 3 + 10) / 3)  # 5: int(1.25) = 1 a side
    assert iqm([7.0, -1.0, 4.0]) == pytest.approx(10 / 3)  # 3: nothing cut
    # runs x tasks: trimmed over all 8 scores together
    assert iqm([[1, 50], [2, 60], [3, 70], [4, 80]]) == pytest.approx((3 + 4 + 50 + 60) / 4)


def test_iqm_matches_rliables_own_definition():
    metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(3)
    for runs, tasks in ((5, 1), (8, 1), (7, 3), (10, 2)):
        scores = rng.normal(size=(runs, tasks)) * 100
        assert iqm(scores) == pytest.approx(metrics.aggregate_iqm(scores), rel=1e-12)


def hand_percentile_bootstrap(values, statistic, resamples, seed, q):
    """The textbook percentile bootstrap, one resample at a time: draw len(values) indices
    with replacement (the same draws as one task's), the q-quantile as the ceil(q B)-th
    smallest statistic."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    stats = sorted(statistic([values[i] for i in row]) for row in idx)
    return [stats[math.ceil(p * resamples) - 1] for p in q]


def trimmed_mean_by_hand(xs):
    xs = sorted(xs)
    cut = len(xs) // 4
    kept = xs[cut : len(xs) - cut]
    return sum(kept) / len(kept)


def test_iqm_interval_matches_a_hand_rolled_percentile_bootstrap():
    finals = [-150.2, -171.9, -140.0, -402.5, -160.3]
    resamples = 1001  # q * B is no integer: no rounding question at the quantiles
    low, high = bootstrap_ci(finals, iqm, resamples=resamples, seed=7)
    want = hand_percentile_bootstrap(finals, trimmed_mean_by_hand, resamples, 7, [0.025, 0.975])
    assert (low, high) == pytest.approx(want, rel=1e-12)
    assert low <= iqm(finals) <= high and low > min(finals) and high < max(finals)


def test_the_bootstrap_of_a_mean_of_coin_flips_has_the_binomial_quantiles():
    """Ten scores, half 0 and half 1: a resample's mean is Binomial(10, 1/2) / 10, whose 2.5 %
    and 97.5 % quantiles are 0.2 and 0.8 (P(X <= 1) = 0.011, P(X <= 2) = 0.055; symmetric)."""
    assert bootstrap_ci([0] * 5 + [1] * 5, mean, resamples=20_000) == (0.2, 0.8)


def test_stratified_resamples_keep_each_tasks_runs_and_the_seed_fixes_them():
    scores = np.array([[0, 100], [1, 101], [2, 102], [3, 103]], dtype=float)
    samples = bootstrap_samples(scores, resamples=500, seed=1)
    assert samples.shape == (500, 4, 2)
    assert set(np.unique(samples[:, :, 0])) <= {0, 1, 2, 3}
    assert set(np.unique(samples[:, :, 1])) <= {100, 101, 102, 103}
    # a task's runs are drawn on their own: the two columns are not the same draw
    assert not np.array_equal(samples[:, :, 0], samples[:, :, 1] - 100)
    assert np.array_equal(samples, bootstrap_samples(scores, resamples=500, seed=1))
    spread = np.random.default_rng(5).normal(size=10)
    assert bootstrap_ci(spread, resamples=999, seed=0) != bootstrap_ci(spread, resamples=999,
                                                                       seed=1)
    assert bootstrap_ci([4.0], resamples=100) == (4.0, 4.0)  # one seed: no spread


def test_steps_to_target_and_their_median_with_runs_that_never_get_there():
    curve = [(1000, -900.0), (2000, -240.0), (3000, -150.0), (3500, -190.0)]
    assert steps_to_target(curve, -200.0) == 3000
    assert steps_to_target(curve, -240.0) == 2000
    assert steps_to_target(curve, -100.0) == math.inf
    assert median([3000, math.inf, 1000, 2000, math.inf]) == 3000  # the middle of five
    assert median([3000, math.inf, 1000, math.inf]) == math.inf  # the upper middle never got there
    assert median([3000, 1000, 2000, 4000]) == 2500


def test_summarize_seeds_by_hand():
    curves = [[(100 * k, -1000.0), (200 * k, -180.0)] for k in (1, 2, 3)] + [[(100, -900.0)]] * 2
    summary = summarize_seeds([1.0, 2.0, 3.0, 4.0, 5.0], curves, target=-200.0, resamples=999)
    assert summary.iqm.value == pytest.approx(3.0)  # the middle three of five
    assert summary.iqm.low <= 3.0 <= summary.iqm.high
    assert summary.mean == pytest.approx(3.0) and summary.std == pytest.approx(math.sqrt(2))
    assert summary.steps == [200, 400, 600, math.inf, math.inf]
    assert summary.steps_median.value == 600
    assert summary.steps_median.low >= 200 and summary.steps_median.high == math.inf
    assert summarize_seeds([1.0, 2.0], resamples=99).steps is None


def fake_run(final: float, solved_at: int | None, seed: int) -> dict:
    evaluations = [{"env_steps": s, "mean_return": -1000.0 if solved_at is None or s < solved_at
                    else -150.0} for s in range(10_000, 100_001, 10_000)]
    return {"mean_return": final, "env_steps": 100_352, "evaluations": evaluations,
            "train_seconds": 10.0 + seed, "wall_seconds": 12.0 + seed}


def test_the_learning_report_states_the_protocol_and_the_statistics(tmp_path):
    seeds = [(-150, 40_000), (-160, 50_000), (-170, 30_000), (-400, None), (-155, 60_000)]
    runs = [fake_run(final, solved, i) for i, (final, solved) in enumerate(seeds)]
    write_report({("ppo_clip", "Pendulum-v1"): runs}, tmp_path, [0, 1, 2, 3, 4], "make x")
    text = (tmp_path / "benchmarks.md").read_text()
    assert "20 deterministic episodes" in text and "bootstrap seed 0" in text
    row = next(line for line in text.splitlines() if line.startswith("| ppo_clip | Pendulum"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    summary = summarize_seeds([-150, -160, -170, -400, -155])
    assert cells[4] == f"{summary.iqm.value:.1f} [{summary.iqm.low:.1f}, {summary.iqm.high:.1f}]"
    assert cells[4].startswith("-161.7 [")  # the middle three: -170, -160, -155
    assert cells[5] == f"{np.mean([-150, -160, -170, -400, -155]):.1f} ± " \
                       f"{np.std([-150, -160, -170, -400, -155]):.1f}"
    assert cells[6] == "-150, -160, -170, -400, -155"
    assert cells[7].startswith("50k [") and cells[7].endswith("(4/5) (≥ -250)")
    assert (cells[8], cells[9]) == ("12", "14")
