"""``torchrl tune``: a study's trials and storage, pruning, the tuned file it writes, and its
one-line errors; the intermediate reports of a trial of several seeds, by hand."""

import json
import re
import subprocess

import pytest
import yaml
from conftest import assert_one_line_error, config_dir, torchrl
from omegaconf import OmegaConf

# tiny trials: 2 seeds of 1024 env steps (8 updates of 4 envs x 32 steps), 4 evaluations each
TINY_TUNE = ["hparams_search=ppo_clip_cartpole", "seeds=[0,1]", "max_steps=1024", "eval_freq=256",
             "env.n_envs=4", "eval_episodes=4", "logger.progress=false"]


def _tune(tmp_path, torchrl_bin, cli_env, *args):
    return subprocess.run([torchrl_bin, "tune", *args], cwd=tmp_path, env=cli_env,
                          capture_output=True, text=True, timeout=300)


def _load(storage, name):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=storage)


def test_three_trials_fill_the_study_and_write_a_tuned_file_that_composes(tmp_path, torchrl_bin,
                                                                         cli_env):
    """3 trials in the default journal storage; one rounded line per trial; the table, plots
    and study.json; tuned/ppo_clip/CartPole-v1.yaml carries the best trial's values and the
    budget it was scored with (max_steps=1024, not the shipped 50 000), and composed in place
    of the shipped tuned file it gives the best trial's scored config."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from optuna.trial import TrialState

    proc = _tune(tmp_path, torchrl_bin, cli_env, *TINY_TUNE, "tune.n_trials=3",
                 "+tune.params.net.hidden={choices:[[16],[32,32]]}")  # a list per choice
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "runs" / "tune" / "ppo_clip_cartpole"
    study = _load(JournalStorage(JournalFileBackend(str(folder / "study.log"))),
                  "ppo_clip_cartpole")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for trial in trials:  # the score is the mean of the seeds' final evaluations
        trained = OmegaConf.load(folder / f"trial_{trial.number}_seed_0" / "config.yaml")
        assert trial.user_attrs["values"]["net.hidden"] == list(trained.net.hidden)
        assert list(trained.net.hidden) in ([16], [32, 32])
        finals = [json.loads((folder / f"trial_{trial.number}_seed_{s}" / "metrics.json")
                             .read_text())["mean_return"] for s in (0, 1)]
        assert trial.value == pytest.approx(sum(finals) / 2, rel=1e-6)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("trial ")]
    assert len(lines) == 3
    for lr in re.findall(r"\blr=(\S+)", proc.stdout):  # trained, shown and written rounded
        assert lr == f"{float(lr):.4g}"
    assert "best trials of ppo_clip_cartpole (3 complete)" in proc.stdout
    assert "optuna" not in (proc.stdout + proc.stderr).lower()  # Optuna's own logs are silent
    for name in ("history.png", "importance.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((folder / "study.json").read_text())
    best = max(trials, key=lambda t: t.value)
    assert summary["best"][0]["number"] == best.number
    assert summary["budget"]["max_steps"] == 1024 and summary["budget"]["seeds"] == [0, 1]

    tuned_file = folder / "tuned" / "ppo_clip" / "CartPole-v1.yaml"
    text = tuned_file.read_text()
    assert text.startswith("# @package _global_\n")
    assert f"trial {best.number} of study ppo_clip_cartpole" in text and "max_steps=1024" in text
    tuned = OmegaConf.load(tuned_file)
    assert tuned.max_steps == 1024
    values = best.user_attrs["values"]
    assert set(values) == {"agent.lr", "agent.gamma", "agent.num_epochs",
                           "agent.advantage.gae_lambda", "net.hidden"}
    for key, value in values.items():
        assert OmegaConf.select(tuned, key) == value, key
    # the study folder as the user's config folder: `torchrl train` with no other flag
    proc = subprocess.run([torchrl_bin, "train", "--config-dir", str(folder), "--cfg", "job",
                           "--resolve"],
                          cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    composed = yaml.safe_load(proc.stdout)
    scored = OmegaConf.to_container(
        OmegaConf.load(folder / f"trial_{best.number}_seed_0" / "config.yaml"))
    for key in ("agent", "env", "net", "max_steps", "eval_freq", "eval_episodes"):
        assert composed[key] == scored[key], key


def test_workers_share_one_study_and_a_trial_that_cannot_learn_is_pruned(tmp_path, torchrl_bin,
                                                                          cli_env):
    """Two processes, one sqlite study: the first runs 2 trials at lr=3e-3, the second joins
    it with lr=1e-9 (the policy cannot move). The median pruner (2 startup trials, no pruning
    before the third report) stops that trial at its seed 0's third evaluation (return 75.75
    against the others' 209 there): pruned, its seed 0 stopped before its end, seed 1 never
    started; the study holds the 3 trials of both workers."""
    from optuna.trial import TrialState

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = [*TINY_TUNE, "max_steps=2048", "eval_freq=512", f"tune.storage={storage}",
              "tune.study_name=shared", "tune.pruner.n_startup_trials=2",
              "tune.pruner.n_warmup_steps=2", "agent.gamma=0.99", "agent.num_epochs=4",
              "agent.advantage.gae_lambda=0.95", "tune.params.agent.lr.log=false"]
    first = _tune(tmp_path, torchrl_bin, cli_env, *common, "tune.n_trials=2",
                  "tune.params.agent.lr.low=3e-3", "tune.params.agent.lr.high=3e-3")
    assert first.returncode == 0, first.stdout + first.stderr
    second = _tune(tmp_path, torchrl_bin, cli_env, *common, "tune.n_trials=1",
                   "tune.params.agent.lr.low=1e-9", "tune.params.agent.lr.high=1e-9")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "study shared (2 trials so far)" in second.stdout
    assert "trial 2  lr=1e-09  pruned at evaluation 3 of seed 0" in second.stdout
    trials = _load(storage, "shared").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE,
                                         TrialState.PRUNED]
    workers = [t.user_attrs["worker"] for t in trials]
    assert workers[0] == workers[1] != workers[2]
    pruned = trials[2]
    step = max(pruned.intermediate_values)
    assert step == 2  # of 2 seeds x (4 evaluations + the end) = 10 reports
    good = min(t.intermediate_values[step] for t in trials[:2])
    assert pruned.intermediate_values[step] < good - 50
    folder = tmp_path / "runs" / "tune" / "shared"
    assert not (folder / "trial_2_seed_0" / "metrics.json").exists()  # stopped mid-training
    assert not (folder / "trial_2_seed_1").exists()
    assert (folder / "trial_1_seed_1" / "metrics.json").exists()
    assert "1 pruned" in second.stdout


@pytest.mark.parametrize("args,needles", [
    (["tune.pruner.name=medain"], ["unknown pruner", "did you mean 'median'"]),
    (["tune.sampler.name=grid"], ["unknown sampler", "tpe, random, cmaes"]),
    (["tune.storage=sqlite:///no/such/folder/study.db"], ["cannot be opened"]),
    (["tune.storage=no/such/folder/study.log"], ["cannot be opened"]),
    (["+tune.params.net.hidden={choices:[64,[64,64]]}"], ["tune.params.net.hidden.choices",
                                                          "each a list of single values"]),
    (["tune.baseline_first=true"], ["tune.baseline_first", "agent.lr=0.008",
                                    "log [0.0001, 0.003]", "tune.baseline_first=false"]),
], ids=["pruner", "sampler", "sqlite", "journal", "mixed-list-choices", "baseline-outside"])
def test_bad_study_settings_are_one_line_errors(tmp_path, torchrl_bin, cli_env, args, needles):
    proc = torchrl(torchrl_bin, ["tune", "hparams_search=ppo_clip_cartpole", *args], tmp_path,
                   cli_env)
    assert_one_line_error(proc, *needles)
    assert list(tmp_path.iterdir()) == []


def test_baseline_first_trains_the_configs_own_values_then_draws(tmp_path, torchrl_bin, cli_env):
    """tune.baseline_first: trial 0 trains the config's own value of each searched key (here
    lr 0.008, gamma 0.99, 6 epochs, lambda 0.95, once the search holds them), trial 1 is drawn;
    a worker joining the study adds no second baseline."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = [*TINY_TUNE, "tune.baseline_first=true", "tune.params.agent.lr.high=1e-2",
            "tune.params.agent.num_epochs.choices=[4,6]", f"tune.storage={storage}"]
    proc = _tune(tmp_path, torchrl_bin, cli_env, *args, "tune.n_trials=2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("the first trial trains the config's own lr 0.008, gamma 0.99, num_epochs 6, "
            "gae_lambda 0.95") in proc.stdout
    baseline = {"agent.lr": 0.008, "agent.gamma": 0.99, "agent.num_epochs": 6,
                "agent.advantage.gae_lambda": 0.95}
    first, second = _load(storage, "ppo_clip_cartpole").get_trials()
    assert first.params == baseline and second.params != baseline
    trained = OmegaConf.load(tmp_path / "runs" / "tune" / "ppo_clip_cartpole" / "trial_0_seed_1"
                             / "config.yaml")
    assert {k: OmegaConf.select(trained, k) for k in baseline} == baseline
    joined = _tune(tmp_path, torchrl_bin, cli_env, *args, "tune.n_trials=1")
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert "the study holds 2 trials already, no baseline trial added" in joined.stdout
    assert _load(storage, "ppo_clip_cartpole").get_trials()[2].params != baseline


def test_baseline_of_each_kind_of_search():
    """Param.baseline: the config's value as Optuna holds it (a list choice by its label)."""
    from torchrl_cli.errors import ConfigError
    from torchrl_cli.tune.search import Param

    cfg = OmegaConf.create({"agent": {"lr": 3e-4, "gamma": 0.99}, "net": {"hidden": [64, 64]}})
    assert Param("agent.lr", 1e-4, 1e-3, log=True).baseline(cfg) == 3e-4
    assert Param("agent.gamma", choices=(0.98, 0.99)).baseline(cfg) == 0.99
    assert Param("net.hidden", choices=((64, 64), (128, 128))).baseline(cfg) == "[64,64]"
    with pytest.raises(ConfigError, match=r"net.hidden=\[64,64\] is not in tune.params.net.hidden"):
        Param("net.hidden", choices=((128, 128),)).baseline(cfg)
    with pytest.raises(ConfigError, match="agent.lr=0.0003 is not in"):
        Param("agent.lr", 1e-3, 1e-2).baseline(cfg)


def test_train_points_a_search_preset_to_tune(tmp_path, torchrl_bin, cli_env):
    proc = torchrl(torchrl_bin, ["train", "-m", "hparams_search=ppo_clip_cartpole"], tmp_path,
                   cli_env)
    assert_one_line_error(proc, "torchrl tune hparams_search=ppo_clip_cartpole")
    assert list(tmp_path.iterdir()) == []


def test_reports_of_a_trial_of_two_seeds():
    """2 evaluation slots per seed, then its end (3 steps a seed). Seed 0 evaluates 10, 20 and
    ends at 30; seed 1 evaluates 50 (reported with seed 0's final: (30 + 50) / 2 = 40), a third
    evaluation past the slots is not reported, then it stops at its target with 60: its
    skipped slot and its end hold (30 + 60) / 2 = 45."""
    from torchrl_cli.tune.study import Reports

    reports = Reports(evaluations=2)
    assert [reports.evaluation(10), reports.evaluation(20)] == [(0, 10), (1, 20)]
    assert reports.evaluation(25) is None
    assert reports.seed_end(30) == [(2, 30)]
    assert reports.evaluation(50) == (3, 40)
    assert reports.seed_end(60) == [(4, 45), (5, 45)]
    assert reports.where(4, [7, 8]) == "evaluation 2 of seed 8"
    assert reports.where(5, [7, 8]) == "the end of seed 8"


def test_float_values_train_rounded_inside_their_range_and_objectives_average_seeds():
    """A drawn float trains at 4 significant digits, never outside [low, high]; the time to
    target of a seed that never reached it is its whole budget."""
    from optuna.trial import FixedTrial

    from torchrl_cli.tune.search import Param, override
    from torchrl_cli.tune.study import objective_values

    param = Param("agent.lr", 1e-4, 3e-3, log=True)
    assert param.suggest(FixedTrial({"agent.lr": 0.0006466422717414558})) == 0.0006466
    edge = Param("agent.gamma", 0.9, 0.99996)
    assert edge.suggest(FixedTrial({"agent.gamma": 0.99996})) == 0.99996  # 1.0 is above high
    assert Param("agent.num_epochs", 4, 20).suggest(FixedTrial({"agent.num_epochs": 7})) == 7
    widths = Param("net.hidden", choices=((64, 64), (256, 256)))  # Optuna sees labels
    assert widths.suggest(FixedTrial({"net.hidden": "[256,256]"})) == [256, 256]
    assert widths.describe() == "{[64,64], [256,256]}"
    assert Param("agent.recompute_advantages", choices=(False, True)).describe() == "{false, true}"
    assert override("net.hidden", [256, 256]) == "net.hidden=[256,256]"
    runs = [{"mean_return": 500.0, "env_steps": 4096, "train_seconds": 8.0,
             "solved": {"env_steps": 1024, "train_seconds": 2.0}},
            {"mean_return": 100.0, "env_steps": 4096, "train_seconds": 9.0, "solved": None}]
    assert objective_values(["return", "steps_to_target", "seconds_to_target"], runs) == [
        300.0, (1024 + 4096) / 2, (2.0 + 9.0) / 2]


PRESETS = sorted(p.stem for p in (config_dir() / "hparams_search").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_search_preset_composes_to_a_space_of_real_keys(preset):
    """Each shipped preset composes, and each key it searches is a value of its config."""
    from torchrl_cli.config.compose import compose_config
    from torchrl_cli.tune.search import search_space

    cfg = compose_config([f"hparams_search={preset}"])
    params, skipped = search_space(cfg, set())
    assert params and not skipped
    assert cfg.tune.n_trials >= 1 and cfg.seeds and len(cfg.seeds) >= 2  # a multi-seed score


def test_trial_seeds_differ_across_workers_and_repeat_on_a_rerun():
    """Trial k draws with a seed made from (sampler seed, k): workers given seeds 0 and 1 never
    share one (with seed + k they would: 0 + 2 == 1 + 1), and a rerun gets the same."""
    from torchrl_cli.tune.study import trial_seed

    seeds = {(s, k): trial_seed(s, k) for s in (0, 1) for k in range(50)}
    assert len(set(seeds.values())) == len(seeds)
    assert trial_seed(0, 2) == trial_seed(0, 2) and 0 <= trial_seed(0, 2) < 2**32


def test_best_trials_table_turns_a_column_per_trial_rather_than_cut_values():
    """Nine searched values do not fit 80 columns as a row per trial: the table then gives a
    column per trial, and every value is printed whole (none ends in '…')."""
    import io

    import optuna
    from rich.console import Console

    from torchrl_cli.tune.results import table
    from torchrl_cli.tune.search import Param
    from torchrl_cli.tune.study import StudySetup

    values = {"agent.lr": 0.0007077, "agent.gamma": 0.98, "agent.n_steps": 512,
              "agent.num_epochs": 20, "agent.advantage.gae_lambda": 0.9,
              "agent.policy.ppo_clip_range": 0.1, "agent.policy.log_std_init": -1.0,
              "net.hidden": [128, 128], "net.activation": "relu"}
    trials = [optuna.trial.create_trial(value=5505.61 - i, user_attrs={"values": values})
              for i in range(3)]
    for number, trial in enumerate(trials):
        trial.number = number
    study = StudySetup("s", None, "s", [0, 1], ["return"],
                       [Param(k, choices=(v,) if not isinstance(v, list) else (tuple(v),))
                        for k, v in values.items()], 20, True)  # fmt: skip

    def shown(width: int) -> str:
        out = io.StringIO()
        console = Console(file=out, width=width)
        console.print(table(trials, study, "best trials", width=console.width))
        return out.getvalue()

    tall, wide = shown(80), shown(200)
    assert "trial 0" in tall and "…" not in tall and "0.0007077" in tall and "[128,128]" in tall
    assert max(len(line) for line in tall.splitlines()) <= 80
    assert "trial 0" not in wide and "…" not in wide
    assert "ppo_clip_range" in wide.splitlines()[2]  # the header row names every value


def test_a_study_searches_the_memorys_keys(tmp_path, torchrl_bin, cli_env):
    """The recurrent preset's trials train the memory each drew (kind, width, shared or not),
    and the tuned file it writes carries them."""
    proc = _tune(tmp_path, torchrl_bin, cli_env, "hparams_search=ppo_clip_cartpolenovel_memory",
                 "seeds=[0]", "max_steps=512", "eval_freq=256", "env.n_envs=4",
                 "agent.n_steps=32", "eval_episodes=2", "logger.progress=false", "tune.n_trials=2",
                 "tune.params.memory.hidden_size={choices:[8,16]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "runs" / "tune" / "ppo_clip_cartpolenovel_memory"
    summary = json.loads((folder / "study.json").read_text())
    drawn = [row["params"] for row in summary["trials"]]
    assert len(drawn) == 2
    for number, values in enumerate(drawn):
        trained = OmegaConf.load(folder / f"trial_{number}_seed_0" / "config.yaml")
        for key in ("memory.kind", "memory.hidden_size", "memory.shared",
                    "agent.policy.entropy_coef", "agent.value.loss_coef"):
            assert OmegaConf.select(trained, key) == values[key], key
        banner = (folder / f"trial_{number}_seed_0" / "train.log").read_text().splitlines()[0]
        assert f"+ {values['memory.kind']} {values['memory.hidden_size']}" in banner
    tuned = OmegaConf.load(folder / "tuned" / "ppo_clip" / "CartPoleNoVel-v1.yaml")
    best = summary["best"][0]["params"]
    assert {k: OmegaConf.select(tuned, k) for k in best if k.startswith("memory.")} == \
        {k: v for k, v in best.items() if k.startswith("memory.")}
