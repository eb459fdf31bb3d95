"""Shell completion's index and cache: the same answers as Hydra's own query, a first TAB and a
cached answer without Hydra (Python's start-up, not seconds), an index made from other config
files never used, and a new config file seen at once."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import torchrl_cli.utils
from torchrl_cli.cli import completion
from torchrl_cli.cli.completion import (
    INDEX,
    cached_train_query,
    index_answer,
    index_stamp,
    parent_of,
    train_query,
)

# groups, subgroups and their options, additions and deletions, keys at each depth and their
# values, env ids, Hydra's own groups; then lines with whole words (Hydra, then the cache)
LINES = ["torchrl train ", "torchrl train age", "torchrl train agent", "torchrl train agent/",
         "torchrl train agent/advantage=", "torchrl train agent=ppo", "torchrl train agent.l",
         "torchrl train agent.lr=", "torchrl train agent.policy.", "torchrl train agent.policy.n",
         "torchrl train agent.policy.net.", "torchrl train agent.value.net.act",
         "torchrl train env=Pe", "torchrl train env=", "torchrl train env/ALE=",
         "torchrl train env.", "torchrl train env.kw", "torchrl train +", "torchrl train +e",
         "torchrl train +env.kwargs", "torchrl train +env.kwargs.", "torchrl train ~n",
         "torchrl train net=", "torchrl train memory=l", "torchrl train experiment=",
         "torchrl train hparams_search=ppo_clip_h", "torchrl train seed=", "torchrl train logger.",
         "torchrl train hydra/", "torchrl train hydra/launcher=", "torchrl train hydra.run.",
         "torchrl train env=ALE/Pong-v5 env.atari.fr", "torchrl train agent=a2c agent.l",
         "torchrl train env=Pendulum-v1 agent.lr=", "torchrl train seed=3 +"]


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHRL_CONFIG_DIR", raising=False)
    return tmp_path / "cache"


def split(line: str) -> tuple[str, list[str], str]:
    words = line.split()
    whole, word = (words[2:], "") if line.endswith(" ") else (words[2:-1], words[-1])
    return line.split(None, 2)[2] if len(words) > 2 else "", whole, word


def test_an_indexed_or_cached_answer_is_hydras(cache_home):
    """The answer for the word's parent, filtered by the word, is Hydra's answer for the word;
    from the index for a line with no whole words (but Hydra's own groups), else from Hydra
    and, asked again, from the cache file."""
    assert index_stamp() == json.loads(INDEX.read_text())["stamp"], (
        "conf/ or the config code changed: run python tools/completion_index.py")
    for line in LINES:
        rest, whole, word = split(line)
        direct = sorted(train_query(rest, whole))
        indexed = index_answer(whole, parent_of(word))
        # a parent no answer leads to (`+env.` has no keys to add) is left to Hydra
        if not whole and not word.lstrip("+~").startswith("hydra") and word != "+env.kwargs.":
            assert indexed is not None, line
        else:
            assert indexed is None, line
        assert sorted(cached_train_query(whole, word)) == direct, line
        assert sorted(cached_train_query(whole, word)) == direct, line
    assert (cache_home / "torchrl-cli" / "completion.json").is_file()


def test_an_index_from_other_files_is_not_used(tmp_path, monkeypatch):
    """A config file changed, added or removed since the index was written, or another Hydra
    version: the stamp differs and the index answers nothing (Hydra is asked)."""
    conf = tmp_path / "conf"
    shutil.copytree(torchrl_cli.utils.config_dir(), conf)
    monkeypatch.setattr(torchrl_cli.utils, "config_dir", lambda: conf)
    assert index_answer([], "agent=") is not None  # the same files: the same stamp
    (conf / "net" / "mlp.yaml").write_text((conf / "net" / "mlp.yaml").read_text() + "\n")
    assert index_answer([], "agent=") is None
    (conf / "net" / "mlp.yaml").write_text((conf / "net" / "mlp.yaml").read_text()[:-1])
    assert index_answer([], "agent=") is not None
    (conf / "agent" / "zz_mine.yaml").write_text("defaults:\n  - ppo_clip\n")
    assert index_answer([], "agent=") is None
    (conf / "agent" / "zz_mine.yaml").unlink()
    monkeypatch.setattr(completion, "library_versions", lambda: ["hydra 0.0", "omegaconf 0.0"])
    assert index_answer([], "agent=") is None


@pytest.mark.parametrize("line, expected", [
    ("torchrl train agent.l", ["agent.lr=", "agent.lr_schedule="]),
    ("torchrl train agent=a2c agent.l", ["agent.lr=", "agent.lr_schedule="]),
])
def test_a_first_or_cached_answer_imports_no_hydra(cache_home, tmp_path, line, expected):
    """A line with no whole words: the first TAB (an empty cache) imports neither Hydra,
    OmegaConf nor torch. A line with whole words: the first TAB asks Hydra, the next one not."""
    env = {**os.environ, "COMP_LINE": line,
           "PYTHONPATH": os.pathsep.join([str(p) for p in sys.path if p])}
    check = ("import sys; from torchrl_cli.cli.completion import query; "
             f"print(' '.join(query({line!r}))); "
             "print(' '.join(m for m in ('hydra', 'omegaconf', 'torch') if m in sys.modules),"
             " file=sys.stderr)")
    first = subprocess.run([sys.executable, "-c", check], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([sys.executable, "-c", check], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == first.stdout.split() == expected
    indexed = " " not in line.split(None, 2)[2]
    assert first.stderr.split() == ([] if indexed else ["hydra", "omegaconf"])
    assert again.stderr.split() == []


def test_a_new_config_file_is_offered_at_once(cache_home, tmp_path, monkeypatch):
    user = tmp_path / "user"
    (user / "agent").mkdir(parents=True)
    monkeypatch.setenv("TORCHRL_CONFIG_DIR", str(user))
    assert "agent=zz_mine" not in cached_train_query([], "agent=")
    (user / "agent" / "zz_mine.yaml").write_text("defaults:\n  - ppo_clip\n")
    assert "agent=zz_mine" in cached_train_query([], "agent=")
