"""Learning-curve plots: every seed's real points, the mean across seeds that stop at different
steps, and a readable PNG."""

import numpy as np
from PIL import Image

from torchrl_cli.analysis.plot import aggregate, learning_curve_figure, plot_learning_curves

# a time-to-solve sweep: seeds stop at the first evaluation that reaches 475
TIME_TO_SOLVE = [
    [(2048, 480.0)],
    [(2048, 100.0), (6144, 300.0), (12288, 476.0)],
    [(2048, 50.0), (12288, 466.4), (24576, 490.0)],
]


def test_aggregate_keeps_every_point_and_holds_finished_seeds():
    """The steps are the union of the evaluations (none cut at the shortest seed, none
    resampled); a stopped seed is held at its last value; a peak stays a peak."""
    agg = aggregate(TIME_TO_SOLVE)
    np.testing.assert_array_equal(agg.steps, [2048, 6144, 12288, 24576])
    np.testing.assert_allclose(agg.mean, [(480 + 100 + 50) / 3,
                                          (480 + 300 + (50 + (466.4 - 50) * 4096 / 10240)) / 3,
                                          (480 + 476 + 466.4) / 3, (480 + 476 + 490) / 3])
    np.testing.assert_allclose(agg.low, [50, 50 + 416.4 * 0.4, 466.4, 476])
    np.testing.assert_allclose(agg.high, [480, 480, 480, 490])
    np.testing.assert_array_equal(agg.running, [3, 2, 2, 1])
    assert agg.held
    single = aggregate([[(0, 10.0), (100, 466.4), (200, 300.0)]])
    assert single.mean.max() == 466.4 and not single.held


def test_aggregate_starts_a_seed_at_its_first_point():
    agg = aggregate([[(0, 0.0), (100, 100.0)], [(50, 20.0), (100, 30.0)]])
    np.testing.assert_allclose(agg.mean, [0.0, (50 + 20) / 2, 65.0])
    np.testing.assert_array_equal(agg.running, [1, 2, 2])


def test_time_to_solve_figure_draws_every_seed_through_its_points():
    """Read the drawn data back: each seed's line is its own points (the one-evaluation seed
    included, with a marker), and the mean spans the longest seed, not the shortest."""
    fig = learning_curve_figure({"ppo_clip": TIME_TO_SOLVE}, title="t", target=475)
    lines = {line.get_gid(): line for line in fig.axes[0].get_lines() if line.get_gid()}
    for i, run in enumerate(TIME_TO_SOLVE):
        line = lines[f"ppo_clip/seed{i}"]
        np.testing.assert_array_equal(line.get_xdata(), [s for s, _ in run])
        np.testing.assert_array_equal(line.get_ydata(), [r for _, r in run])
        assert line.get_marker() not in (None, "None", "")
    mean = lines["ppo_clip/mean"]
    assert list(mean.get_xdata()) == [2048, 6144, 12288, 24576]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "ppo_clip: mean of 3 seeds (stopped seeds held at their last value)" in labels
    assert "band: lowest to highest seed" in labels and "target 475" in labels


def test_plot_writes_a_png_of_sensible_size(tmp_path):
    """A valid PNG, about 880 x 550 pixels, that is not a blank canvas; --dpi scales it."""
    curves = {"ppo_clip": [[(0, 10.0), (5000, 200.0), (10000, 500.0)],
                           [(0, 20.0), (5000, 150.0), (10000, 480.0)]],
              "a2c": [[(0, 15.0), (10000, 300.0)]]}
    path = plot_learning_curves(curves, tmp_path / "img" / "curves.png", title="CartPole-v1",
                                target=475)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(path)
    assert 800 <= image.width <= 1000 and 500 <= image.height <= 600
    pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # lines, labels and bands, not a blank canvas
    small = plot_learning_curves(curves, tmp_path / "small.png", title="t", dpi=55)
    assert Image.open(small).width == image.width // 2


def test_envs_get_a_panel_each_and_the_legend_covers_no_data():
    """Several envs: one axes each (their returns share no scale), a label in the same color
    in every panel and once in the legend, which sits below the axes; a long title wraps
    rather than running off the figure."""
    curves = {"CartPole-v1": {"agent.lr=0.001": [[(0, 10.0), (100, 400.0)]],
                              "agent.lr=0.0003": [[(0, 20.0), (100, 200.0)]]},
              "Pendulum-v1": {"agent.lr=0.001": [[(0, -1500.0), (100, -300.0)]],
                              "agent.lr=0.0003": [[(0, -1400.0), (100, -900.0)]]}}
    title = "ppo_clip on CartPole-v1, Pendulum-v1: deterministic evaluation return " + "x" * 40
    fig = learning_curve_figure(curves, title=title, target={"CartPole-v1": 475})
    assert [ax.get_title() for ax in fig.axes] == ["CartPole-v1", "Pendulum-v1"]
    colors = [{line.get_gid(): line.get_color() for line in ax.get_lines() if line.get_gid()}
              for ax in fig.axes]
    assert colors[0] == colors[1] and len(set(colors[0].values())) == 2
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels.count("agent.lr=0.001: mean of 1 seed") == 1 and "target 475" in labels
    assert fig._suptitle.get_text().count("\n") == 1
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        assert legend.y1 <= ax.get_window_extent(renderer).y0  # below every axes
    assert legend.x0 >= 0 and legend.x1 <= fig.bbox.width  # not cut at the edges
    title_box = fig._suptitle.get_window_extent(renderer)
    assert title_box.x0 >= 0 and title_box.x1 <= fig.bbox.width
