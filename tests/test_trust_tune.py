"""Trust, round two (issue 27, item 3): a tuning study survives a partial journal record (a
full disk or a kill -9 during an append), stops on a full disk in one line, and refuses a
damaged or empty storage in one line. Trials train nothing here: a stand-in returns metrics."""

import errno
from pathlib import Path

import pytest
from conftest import compose_config
from rich.console import Console

from torchrl_cli.errors import ConfigError, FaultError
from torchrl_cli.run.checkpoint import DiskFullError
from torchrl_cli.tune import study as tuning
from torchrl_cli.tune.results import write_results

pytest.importorskip("optuna")
OVERRIDES = ["hparams_search=ppo_clip_cartpole", "seeds=[0]", "max_steps=64", "eval_freq=0",
             "tune.pruner.name=none", "tune.study_name=s"]


def fake_train(cfg, run_dir: Path, on_evaluation, tag) -> dict:
    return {"interrupted": None, "mean_return": float(cfg.agent.lr), "solved": None,
            "env_steps": 64, "train_seconds": 0.1}


def study(tmp_path, monkeypatch, n_trials: int, train=fake_train, console=None) -> int:
    monkeypatch.chdir(tmp_path)
    overrides = [*OVERRIDES, f"tune.n_trials={n_trials}"]
    cfg = compose_config(overrides)
    return tuning.run_study(cfg, overrides, "ppo_clip_cartpole", train,
                            console or Console(quiet=True), "torchrl tune", write_results)


def journal(tmp_path) -> Path:
    return tmp_path / "runs" / "tune" / "s" / "study.log"


def load(tmp_path):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(journal(tmp_path))))
    return optuna.load_study(study_name="s", storage=storage)


def test_a_partial_last_record_is_set_aside_and_the_study_goes_on(tmp_path, monkeypatch):
    assert study(tmp_path, monkeypatch, 2) == 0
    partial = b'{"op_code":5,"worker_id":"x","trial_id":1,"para'
    with open(journal(tmp_path), "ab") as f:
        f.write(partial)
    console = Console(record=True, width=300)
    assert study(tmp_path, monkeypatch, 1, console=console) == 0
    assert "ended in a partial record" in console.export_text()
    assert len(load(tmp_path).get_trials()) == 3  # every trial readable, the new one too
    assert journal(tmp_path).with_name("study.log.partial").read_bytes() == partial + b"\n"


def test_a_full_disk_during_an_append_stops_the_study_in_one_line(tmp_path, monkeypatch):
    """Optuna's append writes half a record, then ENOSPC: the study stops at once (not trial
    after trial), and the next run repairs the journal and goes on."""
    from optuna.storages.journal import JournalFileBackend

    assert study(tmp_path, monkeypatch, 1) == 0
    real_append, calls = JournalFileBackend.append_logs, []

    def full_disk(self, logs):
        calls.append(logs)
        if len(calls) >= 3:
            with open(self._file_path, "ab") as f:
                f.write(b'{"op_code":4,"wor')
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(self, logs)

    monkeypatch.setattr(JournalFileBackend, "append_logs", full_disk)
    with pytest.raises(FaultError) as err:
        study(tmp_path, monkeypatch, 5)
    assert "No space left on device" in str(err.value) and "\n" not in str(err.value)
    created = [log for logs in calls for log in logs if log["op_code"] == 4]  # CREATE_TRIAL
    assert len(created) == 1  # one trial began, none after it
    monkeypatch.setattr(JournalFileBackend, "append_logs", real_append)
    assert study(tmp_path, monkeypatch, 1) == 0
    assert len(load(tmp_path).get_trials()) >= 2


def test_a_trial_that_fills_the_disk_stops_the_study(tmp_path, monkeypatch):
    trained = []

    def fills_the_disk(cfg, run_dir, on_evaluation, tag):
        trained.append(run_dir)
        raise DiskFullError(f"cannot write {run_dir}/metrics.json (No space left on device)")

    with pytest.raises(FaultError, match="the study stops"):
        study(tmp_path, monkeypatch, 5, train=fills_the_disk)
    assert len(trained) == 1


def test_a_damaged_journal_is_one_line_and_left_as_it_is(tmp_path, monkeypatch):
    assert study(tmp_path, monkeypatch, 1) == 0
    lines = journal(tmp_path).read_bytes().splitlines(keepends=True)
    damaged = b"".join([lines[0], b'garbage{"op_code":4}\n', *lines[1:]])
    journal(tmp_path).write_bytes(damaged)
    with pytest.raises(ConfigError, match="is damaged at line 2"):
        study(tmp_path, monkeypatch, 1)
    assert journal(tmp_path).read_bytes() == damaged


def test_an_empty_storage_beside_old_trials_is_refused(tmp_path, monkeypatch):
    assert study(tmp_path, monkeypatch, 1) == 0
    journal(tmp_path).write_bytes(b"")  # 0 bytes: a new study would reuse trial_0_seed_0
    with pytest.raises(ConfigError, match=r"not in .* \(an empty or replaced storage\)"):
        study(tmp_path, monkeypatch, 1)


def test_an_empty_storage_of_a_new_study_is_fine(tmp_path, monkeypatch):
    journal(tmp_path).parent.mkdir(parents=True)
    journal(tmp_path).write_bytes(b"")
    assert study(tmp_path, monkeypatch, 1) == 0
