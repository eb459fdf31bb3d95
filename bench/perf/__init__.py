"""`make bench`: torchrl-cli beside Stable-Baselines3, measured side by side in one run.

Run as ``python -m bench.perf [--smoke] [--out docs/performance.md]`` from the repository root.
Stable-Baselines3 is a benchmark-only dependency (the ``bench`` extra), never the tool's.
"""
