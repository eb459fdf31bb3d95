"""Analysis of finished runs: statistics across seeds, sweep summaries, learning curves."""
