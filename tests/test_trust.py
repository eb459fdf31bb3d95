"""Trust, round two (issue 27): a run folder may not write outside itself, run code, reach a
tracking server or resolve a secret, nor change the experiment it resumes; a second resume
never deletes the running one's files. Each case is a fault injected into a real run folder."""

import fcntl
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import (
    RUN,
    TINY,
    assert_one_line_error,
    compose_config,
    torchrl,
)
from omegaconf import OmegaConf

from torchrl_cli.errors import ConfigError
from torchrl_cli.run.checkpoint import CHECKPOINT_DIR
from torchrl_cli.run.folder import clear_attempt
from torchrl_cli.run.train import train
from torchrl_cli.run.trust import check_targets, permitted


def edit_config(run: Path, edit) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    edit(config)
    (run / "config.yaml").write_text(yaml.safe_dump(config))


def resume(torchrl_bin, run: Path, cwd: Path, env: dict, *extra: str):
    return torchrl(torchrl_bin, ["train", f"resume={run}", "max_steps=1024", *extra], cwd, env)


# 1. files are never written through a symlink; names are names

def test_a_symlinked_train_log_is_refused_and_its_target_untouched(run_copy, torchrl_bin,
                                                                     cli_env, tmp_path):
    script = tmp_path / "victim.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    (run_copy / "train.log").unlink()
    (run_copy / "train.log").symlink_to(script)
    proc = resume(torchrl_bin, run_copy, tmp_path, cli_env)
    assert_one_line_error(proc, "train.log is a symlink")
    assert script.read_text() == "#!/bin/sh\necho hi\n"


def test_a_name_with_a_newline_is_refused_everywhere(run_copy, torchrl_bin, cli_env, tmp_path):
    edit_config(run_copy, lambda c: c["agent"].update(name="ppo_clip\ntouch X\n#"))
    log = (run_copy / "train.log").read_bytes()
    for args in (["eval", str(run_copy)], ["train", f"resume={run_copy}", "max_steps=1024"]):
        proc = torchrl(torchrl_bin, args, tmp_path, cli_env)
        assert_one_line_error(proc, "agent.name=", "is not a name")
    assert (run_copy / "train.log").read_bytes() == log
    with pytest.raises(ConfigError, match="is not a name"):
        train(compose_config([*RUN, "agent.name=a b"]), run_dir=tmp_path / "new")


def test_a_symlinked_videos_folder_is_refused(run_copy, tmp_path):
    from torchrl_cli.cli.eval import VIDEO_DIR, make_video_dir

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_copy / VIDEO_DIR).symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="is a symlink"):
        make_video_dir(run_copy / VIDEO_DIR, "step_1")
    assert not any(elsewhere.iterdir())


def test_a_failed_jobs_error_record_is_not_written_through_a_symlink(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus

    from torchrl_cli.analysis.sweep import RecordFailures

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    job = tmp_path / "job"
    job.mkdir()
    (job / "error.txt").symlink_to(victim)
    ret = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("boom"))
    config = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(job)}}})
    RecordFailures().on_job_end(config, ret)
    assert victim.read_text() == "precious\n"


# 2. the allow-list decides by the resolved object; one rule for the env's modules

@pytest.mark.parametrize("target", [
    "gymnasium.wrappers.rendering.RecordVideo",
    "gymnasium.wrappers.common.RecordEpisodeStatistics",
    "gymnasium.wrappers.rendering.HumanRendering",
    "gymnasium.wrappers.HumanRendering",
    "torchrl_cli.run.checkpoint.Path",  # a class from elsewhere, reached through this package
])
def test_an_alias_of_a_refused_class_is_refused(target):
    assert not permitted(target)
    with pytest.raises(ConfigError, match="may not name"):
        check_targets(OmegaConf.create({"env": {"wrappers": [{"_target_": target}]}}), "c")


def test_the_same_classes_by_their_usual_names_still_pass():
    for target in ("gymnasium.wrappers.ClipAction", "gymnasium.wrappers.common.TimeLimit",
                   "torch.nn.modules.linear.Linear", "torch.optim.Adam",
                   "torchrl_cli.rollout.estimators.GAE"):
        assert permitted(target), target


def test_the_standard_library_is_never_advised_as_trusted():
    for target in ("os.system", "builtins.exec", "subprocess.run"):
        cfg = OmegaConf.create({"x": {"_target_": target}})
        with pytest.raises(ConfigError) as err:
            check_targets(cfg, "config.yaml", trust=[target.split(".")[0]])
        assert "trust=" not in str(err.value) and "standard library" in str(err.value)


def test_a_video_recorder_alias_writes_nothing(run_copy, torchrl_bin, cli_env, tmp_path):
    out = tmp_path / "chosen_by_the_folder"
    edit_config(run_copy, lambda c: c["env"].update(wrappers=[{
        "_target_": "gymnasium.wrappers.rendering.RecordVideo", "video_folder": str(out)}]))
    proc = torchrl(torchrl_bin, ["eval", str(run_copy)], tmp_path, cli_env)
    assert_one_line_error(proc, "gymnasium.wrappers.rendering.RecordVideo", "may not name")
    assert not out.exists()


def test_env_imports_follow_the_rule_of_targets(run_copy, torchrl_bin, cli_env, tmp_path):
    """env.imports=[this] (any import runs code): refused by eval, without a trust= advice."""
    edit_config(run_copy, lambda c: c["env"].update(imports=["this"]))
    proc = torchrl(torchrl_bin, ["eval", str(run_copy)], tmp_path, cli_env)
    line = assert_one_line_error(proc, "env module 'this'", "standard library")
    assert "trust=" not in line and "Zen of Python" not in proc.stdout + proc.stderr
    edit_config(run_copy, lambda c: c["env"].update(imports=[], id="pkg.__main__:Env"))
    with pytest.raises(ConfigError, match="private module"):
        check_targets(OmegaConf.load(run_copy / "config.yaml"), "config.yaml")
    # the env's own package is the env: its wrappers count as its own, others need trust=
    cfg = OmegaConf.create({"env": {"id": "my_pkg.envs:Maze", "imports": ["other"],
                                    "wrappers": [{"_target_": "third.Wrapper"}]}})
    with pytest.raises(ConfigError, match="trust=third"):
        check_targets(cfg, "config.yaml")
    check_targets(cfg, "config.yaml", trust=["third"])
    with pytest.raises(ConfigError):  # a prefix is a module, not the start of a name
        check_targets(cfg, "config.yaml", trust=["thi"])


# 4. a refused resume touches nothing; a failed one keeps the error record

def never_checkpointed_copy(finished_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "nockpt"
    run.mkdir()
    shutil.copy(finished_run / "config.yaml", run / "config.yaml")
    (run / "events.out.tfevents.1.host.1.0").write_bytes(b"the running run's history")
    (run / "error.txt").write_text("RuntimeError: an earlier attempt\n")
    return run


def test_a_second_resume_is_refused_before_it_deletes_anything(finished_run, torchrl_bin,
                                                               cli_env, tmp_path):
    run = never_checkpointed_copy(finished_run, tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with open(run / ".lock", "w") as lock:  # the first process, still training
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write(str(os.getpid()))
        lock.flush()
        proc = torchrl(torchrl_bin, ["train", f"resume={run}"], tmp_path, cli_env)
    assert_one_line_error(proc, "is being trained by another process")
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.name != ".lock"}
    assert after == {k: v for k, v in before.items() if k != ".lock"}


def test_starting_again_keeps_the_error_record_until_the_run_finishes(finished_run, tmp_path):
    run = never_checkpointed_copy(finished_run, tmp_path)
    clear_attempt(run)
    assert (run / "error.txt").is_file()
    assert not list(run.glob("events.out.tfevents.*"))


# 5. tracking settings and interpolations are not taken from a run folder

def test_a_folder_cannot_choose_a_tracking_store(run_copy, torchrl_bin, cli_env, tmp_path):
    pytest.importorskip("mlflow")
    store = tmp_path / "elsewhere" / "evil.db"
    store.parent.mkdir()
    edit_config(run_copy, lambda c: c["logger"].update(
        backends=["tensorboard", "mlflow"], mlflow={"tracking_uri": f"sqlite:///{store}",
                                                    "experiment": "x"}))
    proc = resume(torchrl_bin, run_copy, tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not store.exists()
    assert "does not take from a run folder" in proc.stdout
    assert "logger.backends mlflow" in proc.stdout
    assert "mlflow" not in yaml.safe_load((run_copy / "config.yaml").read_text())["logger"][
        "backends"]


def test_an_interpolation_in_a_folder_is_refused_and_the_secret_never_read(
        run_copy, torchrl_bin, cli_env, tmp_path):
    secret = "s3cr3t-value-7731"
    env = {**cli_env, "TORCHRL_TEST_SECRET": secret}
    edit_config(run_copy, lambda c: c["logger"]["wandb"].update(
        project="${oc.env:TORCHRL_TEST_SECRET}"))
    snapshot = {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
    for args in (["train", f"resume={run_copy}", "max_steps=1024"], ["eval", str(run_copy)]):
        proc = torchrl(torchrl_bin, args, tmp_path, env)
        assert_one_line_error(proc, "logger.wandb.project", "interpolation")
        assert secret not in proc.stdout + proc.stderr
    assert {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()} == snapshot


# 6. an edited config.yaml is not a silent change of the experiment

@pytest.mark.parametrize(("key", "value"), [("lr", 0.05), ("gamma", 0.5)])
def test_an_edited_config_is_refused_naming_the_key(run_copy, torchrl_bin, cli_env, tmp_path,
                                                    key, value):
    edit_config(run_copy, lambda c: c["agent"].update({key: value}))
    steps = sorted((run_copy / CHECKPOINT_DIR).iterdir())
    proc = resume(torchrl_bin, run_copy, tmp_path, cli_env)
    assert_one_line_error(proc, f"agent.{key}={value}", "was edited")
    assert sorted((run_copy / CHECKPOINT_DIR).iterdir()) == steps


def test_a_budget_changed_by_an_earlier_resume_is_not_an_edit(run_copy, torchrl_bin, cli_env,
                                                              tmp_path):
    edit_config(run_copy, lambda c: c.update(max_steps=768))  # a resume killed before a save
    proc = resume(torchrl_bin, run_copy, tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# 13. best.pt weighs the final evaluation too

def test_best_checkpoint_weighs_the_final_evaluation(tmp_path, monkeypatch):
    from torchrl_cli.agents.base import BaseAgent
    from torchrl_cli.run.checkpoint import read_checkpoint

    original = BaseAgent.final_evaluation

    def final_scores_best(self, env):
        evaluation = original(self, env)
        evaluation.returns = [1e6 for _ in evaluation.returns]  # better than any before it
        return evaluation

    monkeypatch.setattr(BaseAgent, "final_evaluation", final_scores_best)
    run = tmp_path / "run"
    metrics = train(compose_config([*RUN, "eval_freq=200"]), run_dir=run)
    assert metrics["mean_return"] == 1e6
    best = read_checkpoint(run / CHECKPOINT_DIR / "best.pt")
    assert best["agent"]["best_return"] == 1e6
    assert best["agent"]["batcher"]["num_steps"] == metrics["env_steps"]


# 12. the ecosystem's variables are honoured; the default store is under runs/

def test_mlflow_tracking_uri_is_honoured_and_nothing_lands_in_the_working_folder(
        torchrl_bin, cli_env, tmp_path):
    pytest.importorskip("mlflow")
    store = tmp_path / "server" / "their.db"
    store.parent.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    env = {**cli_env, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    proc = torchrl(torchrl_bin, ["train", *TINY, "logger.backends=[tensorboard,mlflow]",
                                 "hydra.run.dir=run"], work, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert store.is_file() and f"sqlite:///{store}" in proc.stdout
    assert sorted(p.name for p in work.iterdir()) == ["run"]  # no mlflow.db, no mlruns/


def test_the_default_stores_are_stated_and_env_variables_win(tmp_path, monkeypatch):
    from torchrl_cli.tracking.mlflow_tracker import artifact_location, tracking_uri
    from torchrl_cli.tracking.wandb_tracker import wandb_settings

    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_PROJECT", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    cfg = compose_config(TINY).logger
    assert tracking_uri(cfg.mlflow) == "sqlite:///runs/mlflow.db"
    assert artifact_location("sqlite:///runs/mlflow.db") == (tmp_path / "runs/mlruns").as_uri()
    assert wandb_settings(cfg.wandb) == ("offline", "torchrl-cli", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_PROJECT", "theirs")
    monkeypatch.setenv("WANDB_DIR", "/tmp/wb")
    assert tracking_uri(cfg.mlflow) == "http://127.0.0.1:5000"
    assert wandb_settings(cfg.wandb) == ("online", "theirs", "/tmp/wb")
    cfg.mlflow.tracking_uri, cfg.wandb.project = "sqlite:///x.db", "mine"  # the config wins
    assert tracking_uri(cfg.mlflow) == "sqlite:///x.db" and wandb_settings(cfg.wandb)[1] == "mine"
