# torchrl-cli: set-up, training and tests. Everything installs into .venv.
PY      := .venv/bin/python
PIP     := $(PY) -m pip
STAMP   := .venv/.installed

.PHONY: install train test test-oldest docs lint bench bench-smoke bench-learning bench-budgets bench-sidebyside bench-atari bench-pixels bench-recurrent bench-memory bench-marl clean

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	# torch first: on these machines this exact pin is a local CPU wheel (any other spec pulls CUDA)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	.venv/bin/torchrl train

# both cores: one worker per core, a test file's tests on one worker (module fixtures built once)
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

# Not in `make test`: the suite's fast core against the lowest versions pyproject.toml allows
# (tools/oldest.py turns each runtime dependency's lower bound into a pin; torch keeps the
# machines' pin), in its own .venv-oldest; the tests of optional extras are not run there.
OLDEST       := .venv-oldest
OLDEST_TESTS := tests/test_estimators.py tests/test_losses.py tests/test_distributions.py \
	tests/test_normalize.py tests/test_vec_conformance.py tests/test_envs.py \
	tests/test_native_env.py tests/test_checkpoint.py tests/test_update.py tests/test_guard.py \
	tests/test_config.py tests/test_layout.py tests/test_interrupt.py tests/test_trust_workers.py
# the cases of those files that need an extra: MuJoCo and ALE (the -v5 ids), Box2D, PettingZoo
OLDEST_SKIP  := v5 or LunarLander or ippo or mappo or only_the_chosen_env_ids
test-oldest: pyproject.toml tools/oldest.py
	python3 -m venv $(OLDEST)
	$(OLDEST)/bin/pip install -q --upgrade pip
	$(OLDEST)/bin/pip install -q torch==2.13.0
	python3 tools/oldest.py > $(OLDEST)/constraints.txt
	$(OLDEST)/bin/pip install -q -c $(OLDEST)/constraints.txt -e . "pytest>=8" "pytest-timeout>=2.3"
	$(OLDEST)/bin/pip freeze | grep -i -E "^($$(cut -d= -f1 $(OLDEST)/constraints.txt | paste -sd'|'))=="
	$(OLDEST)/bin/python -m pytest -m "not slow" -k "not ($(OLDEST_SKIP))" $(OLDEST_TESTS)

# The documentation site (mkdocs.yml, pages under docs/) into site/, offline (the docs extra,
# part of dev); --strict: a broken link, a page missing from the nav or a config reference that
# no longer matches config/schema.py (tools/config_reference.py) fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir site

# Not in CI: every agent x {CartPole-v1, Pendulum-v1} and PPO-clip on HalfCheetah-v5, Hopper-v5,
# Walker2d-v5, Ant-v5, Humanoid-v5 and InvertedDoublePendulum-v5 (1M steps each), 5 seeds each,
# two runs at a time (about 2 hours on 2 cores); writes docs/benchmarks.md and docs/img/*.png.
# Resumes an interrupted run.
bench-learning: $(STAMP)
	$(PY) bench/learning.py

# Not in CI: each env file's budget as `torchrl train env=<id>` runs it, 3 seeds, one at a time;
# writes docs/budgets.md (the docs site's budget table). About 90 minutes on 2 cores; resumes.
bench-budgets: $(STAMP)
	$(PY) -m bench.budgets

# torchrl-cli beside Stable-Baselines3 (the `bench` extra, never a runtime dependency), side by
# side in one run: time-to-solve, same-hyperparameter throughput, collector, scaling. Writes
# docs/performance.md; about 10 minutes. bench-smoke: the same code with tiny budgets (~1 min).
bench: $(STAMP)
	$(PIP) install -q -e ".[bench]"
	$(PY) -m bench.perf

# Not in CI: torchrl-cli (its tuned file) and SB3 (rl-zoo3's tuned PPO) started together on
# HalfCheetah-v5, wall time to a 5000 evaluation, seeds 0-2; writes docs/sidebyside.md. 4-15 min
# per seed (SB3's time).
bench-sidebyside: $(STAMP)
	$(PIP) install -q -e ".[bench,mujoco]"
	$(PY) -m bench.sidebyside

# Not in CI: Pong's env steps/s on this CPU, env alone and whole PPO pipeline, with sync, async
# and EnvPool vector envs; writes docs/atari.md. About 6 minutes.
bench-atari: $(STAMP)
	$(PIP) install -q -e ".[atari,envpool]"
	$(PY) -m bench.atari

# Not in CI: image observations (Pong, CarRacing-v3, MiniGrid) beside Stable-Baselines3 with the
# same PPO settings, 1 and 2 threads, runs alternating, each phase of the loop timed; writes
# runs/bench-pixels/pixels.md (docs/pixels.md quotes it). About 40 minutes on 2 cores.
bench-pixels: $(STAMP)
	$(PIP) install -q -e ".[bench,atari,box2d]" "minigrid>=3"
	$(PY) -m bench.pixels

# Not in CI: recurrent PPO on CartPoleNoVel-v1 beside sb3-contrib's RecurrentPPO, rl-zoo3's
# recipe for both, runs alternating: throughput (3 pairs of 20k steps) and time to solve (seeds
# 0-2, within 100k). Writes runs/bench-recurrent/recurrent.md (docs/guides/memory.md quotes it).
bench-recurrent: $(STAMP)
	$(PIP) install -q -e ".[bench]"
	$(PY) -m bench.recurrent

# Not in CI: frame stack, LSTM and GRU on the four partially observed envs (CartPoleNoVel-v1,
# PendulumNoVel-v1, MountainCarContinuousNoVel-v0, LunarLanderNoVel-v3), 5 seeds each, every
# run `torchrl train env=<id> memory=<kind>` with no other flag; two at a time, about 2 hours
# on 2 cores. Writes runs/bench-memory/memory.md (docs/guides/memory.md quotes it).
bench-memory: $(STAMP)
	$(PIP) install -q -e ".[box2d]"
	$(PY) -m bench.memory

# Not in CI: many agents, torchrl-cli beside BenchMARL on mpe2's simple_spread_v3, MAPPO and IPPO
# at each tool's defaults, the same env steps, runs interleaved; writes
# runs/bench-marl/<time>/marl.md. BenchMARL gets its own venv (it brings pytorch/rl's torchrl,
# and its own pins of gymnasium and numpy), torch held at the machines' pin. 22-31 minutes per
# seed measured on 2 cores, about 75 for the default 3 seeds (BenchMARL's update is most of it).
MARL := .venv-marl
$(MARL)/.installed:
	python3 -m venv $(MARL)
	$(MARL)/bin/pip install -q --upgrade pip
	$(MARL)/bin/pip install -q torch==2.13.0
	echo "torch==2.13.0" > $(MARL)/constraints.txt
	$(MARL)/bin/pip install -q -c $(MARL)/constraints.txt benchmarl==1.5.2 "pettingzoo>=1.25" "mpe2>=1.0"
	touch $@

bench-marl: $(STAMP) $(MARL)/.installed
	$(PIP) install -q -e ".[multiagent]"
	$(PY) -m bench.marl --benchmarl-python $(MARL)/bin/python

bench-smoke: $(STAMP)
	$(PIP) install -q -e ".[bench]"
	$(PY) -m bench.perf --smoke --out runs/bench-smoke/performance.md

lint: $(STAMP)
	.venv/bin/ruff check torchrl_cli tests bench tools examples

clean:
	rm -rf .venv .venv-oldest .pytest_cache .ruff_cache site
