"""Logger: averaged values to the console table and TensorBoard, read back with TB's reader."""

import io

import torch
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torchrl_cli.agents.logger import Logger


def _events(log_dir):
    acc = EventAccumulator(str(log_dir), size_guidance={"histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_values_are_averaged_and_tf_only_values_stay_off_the_console(tmp_path):
    """Two add_log calls average; add_tf_only_log reaches TensorBoard but not the table."""
    out = io.StringIO()
    logger = Logger(tmp_path, console=Console(file=out, width=100), progress=False,
                    histograms=False, mode="full", table_every_s=0.0)
    logger.add_log("losses/value_loss", 1.0)
    logger.add_log("losses/value_loss", 3.0)
    logger.add_tf_only_log("charts/learning_rate_value", 0.5)
    means = logger.log(step=10, header="iteration 1")
    logger.close()
    assert means == {"losses/value_loss": 2.0, "charts/learning_rate_value": 0.5}
    text = out.getvalue()
    assert "iteration 1" in text and "losses/value_loss" in text and "2.00" in text
    assert "learning_rate_value" not in text
    acc = _events(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("losses/value_loss")] == [(10, 2.0)]
    assert [(e.step, e.value) for e in acc.Scalars("charts/learning_rate_value")] == [(10, 0.5)]


def test_histograms_only_when_enabled_and_text(tmp_path):
    """add_histogram writes only with histograms=True; add_text writes the config text."""
    on, off = tmp_path / "on", tmp_path / "off"
    for folder, enabled in ((on, True), (off, False)):
        logger = Logger(folder, console=Console(file=io.StringIO()), progress=False,
                        histograms=enabled, mode="full", table_every_s=0.0)
        logger.add_histogram("rollout/actions", torch.tensor([0.0, 1.0, 1.0, 2.0]))
        logger.add_text("config", "agent: ppo_clip")
        logger.add_log("charts/x", 1.0)
        logger.log(step=5)
        logger.close()
    hist = _events(on).Histograms("rollout/actions")
    assert len(hist) == 1 and hist[0].step == 5 and hist[0].histogram_value.num == 4
    assert "rollout/actions" not in _events(off).Tags()["histograms"]
    assert "config/text_summary" in _events(on).Tags()["tensors"]


def test_timeit_uses_the_callers_clock():
    """Steps per second over the given (training) seconds, not the wall clock."""
    logger = Logger(None, console=Console(file=io.StringIO()), progress=False, histograms=False,
                        mode="full", table_every_s=0.0)
    assert logger.timeit(1000, seconds=2.0) == 500.0
    assert logger.timeit(4000, seconds=3.0) == 3000.0
