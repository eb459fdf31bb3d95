"""Statistics across seeds for learning reports, after Agarwal et al. 2021, "Deep RL at the
Edge of the Statistical Precipice" (rliable): the interquartile mean (IQM) with a 95 %
stratified-bootstrap confidence interval, and the env steps a run takes to reach a target.

The definitions are rliable's: IQM is ``rliable.metrics.aggregate_iqm`` (scipy's
``trim_mean(scores, 0.25)`` over every run of every task: int(n / 4) of the n scores cut at each
end, so 5 seeds give the mean of the middle three), and the stratified bootstrap resamples the
runs of each task with replacement (rliable.library's ``StratifiedBootstrap``). It is written
here in numpy, vectorized over the resamples, because ``rliable.library`` imports ``arch``,
whose releases break under pandas 3; the tests check the IQM against rliable's own function.
Intervals are percentile intervals over the resamples' statistics, read as order statistics
(numpy's ``inverted_cdf``), so that a statistic may be infinite ("not reached").
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SEED = 0  # every report's resamples come from this seed: the same runs, the same CI
RESAMPLES = 50_000  # rliable's default


def as_scores(scores) -> np.ndarray:
    """``scores`` as a ``[runs, tasks]`` float array (a flat list: one task)."""
    array = np.asarray(scores, dtype=float)
    return array[:, None] if array.ndim == 1 else array


def iqm(scores) -> np.ndarray:
    """The interquartile mean over the last two axes ``[..., runs, tasks]`` (a flat list: one
    task): the mean of the scores left once int(n / 4) are cut from each end, n = runs x
    tasks."""
    array = as_scores(scores)
    flat = np.sort(array.reshape(*array.shape[:-2], -1), axis=-1)
    cut = int(0.25 * flat.shape[-1])
    return flat[..., cut : flat.shape[-1] - cut].mean(axis=-1)


def mean(scores) -> np.ndarray:
    """The mean over the last two axes (what ``torchrl compare`` and sweep summaries report)."""
    array = as_scores(scores)
    return array.reshape(*array.shape[:-2], -1).mean(axis=-1)


def median(scores) -> np.ndarray:
    """The median over the last two axes (inf, "not reached", counts as larger than any
    finite score: a median of inf says the middle run never got there)."""
    array = as_scores(scores)
    return np.median(array.reshape(*array.shape[:-2], -1), axis=-1)


def bootstrap_samples(scores, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED):
    """``[resamples, runs, tasks]``: each task's runs drawn with replacement, task by task
    (the stratified bootstrap), from ``numpy.random.default_rng(seed)``."""
    array = as_scores(scores)
    runs, tasks = array.shape
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, runs, tasks))
    for task in range(tasks):
        idx = rng.integers(0, runs, size=(resamples, runs))
        out[:, :, task] = array[idx, task]
    return out


def bootstrap_ci(
    scores,
    statistic: Callable[[np.ndarray], np.ndarray] = iqm,
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """The percentile interval of ``statistic`` (vectorized over a leading axis) over
    ``resamples`` stratified-bootstrap resamples of ``scores``."""
    values = statistic(bootstrap_samples(scores, resamples, seed))
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def steps_to_target(curve: list[tuple[int, float]], target: float) -> float:
    """The env steps of the first evaluation ``(env_steps, mean_return)`` of ``curve`` whose
    return reaches ``target``; inf when none does."""
    return next((float(steps) for steps, ret in curve if ret >= target), math.inf)


@dataclass(frozen=True)
class Estimate:
    """A statistic across seeds and its 95 % bootstrap interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class SeedSummary:
    """What a report says about one configuration's seeds."""

    finals: list[float]  # each seed's final return
    iqm: Estimate
    mean: float
    std: float  # numpy's (ddof 0), across seeds
    steps: list[float] | None  # each seed's env steps to the target (inf: never); None: no target
    steps_median: Estimate | None


def summarize_seeds(
    finals: list[float],
    curves: list[list[tuple[int, float]]] | None = None,
    target: float | None = None,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> SeedSummary:
    """IQM of ``finals`` with its interval, mean and std; with ``target``, each seed's steps to
    it along ``curves`` (one per seed) and their median with its interval."""
    low, high = bootstrap_ci(finals, iqm, resamples=resamples, seed=seed)
    steps = steps_median = None
    if target is not None and curves is not None:
        steps = [steps_to_target(curve, target) for curve in curves]
        s_low, s_high = bootstrap_ci(steps, median, resamples=resamples, seed=seed)
        steps_median = Estimate(float(median(steps)), s_low, s_high)
    return SeedSummary(
        finals=[float(f) for f in finals],
        iqm=Estimate(float(iqm(finals)), low, high),
        mean=float(np.mean(finals)),
        std=float(np.std(finals)),
        steps=steps,
        steps_median=steps_median,
    )
