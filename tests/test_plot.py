"""Learning-curve plots: aggregation across seeds and a readable PNG."""

import numpy as np
from PIL import Image

from torchrl_cli.analysis.plot import aggregate, plot_learning_curves


def test_aggregate_interpolates_onto_a_common_grid():
    """Runs evaluated at different steps are compared at the same steps: mean, min and max."""
    runs = [[(0, 0.0), (100, 100.0)], [(0, 10.0), (50, 20.0), (100, 30.0)]]
    grid, mean, low, high = aggregate(runs, points=3)
    np.testing.assert_allclose(grid, [0, 50, 100])
    np.testing.assert_allclose(mean, [5.0, 35.0, 65.0])
    np.testing.assert_allclose(low, [0.0, 20.0, 30.0])
    np.testing.assert_allclose(high, [10.0, 50.0, 100.0])


def test_plot_writes_a_png_of_sensible_size(tmp_path):
    """A valid PNG, about 880 x 550 pixels, that is not a blank canvas."""
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
