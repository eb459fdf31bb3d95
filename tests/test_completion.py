"""Shell completion's cache: the same answers as Hydra's own query, a cached answer without
Hydra (Python's start-up, not seconds), and a new config file seen at once."""

import os
import subprocess
import sys

import pytest

from torchrl_cli.cli.completion import cached_train_query, train_query

LINES = ["torchrl train ", "torchrl train age", "torchrl train agent/", "torchrl train agent=ppo",
         "torchrl train agent.l", "torchrl train agent.lr=", "torchrl train env=Pe",
         "torchrl train env=ALE/Pong-v5 env.atari.fr"]


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHRL_CONFIG_DIR", raising=False)
    return tmp_path / "cache"


def split(line: str) -> tuple[str, list[str], str]:
    words = line.split()
    whole, word = (words[2:], "") if line.endswith(" ") else (words[2:-1], words[-1])
    return line.split(None, 2)[2] if len(words) > 2 else "", whole, word


def test_a_cached_answer_is_hydras(cache_home):
    """The answer for the word's parent, filtered by the word, is Hydra's answer for the word;
    asked again, it comes from the cache file."""
    for line in LINES:
        rest, whole, word = split(line)
        direct = sorted(train_query(rest, whole))
        assert sorted(cached_train_query(whole, word)) == direct, line
        assert sorted(cached_train_query(whole, word)) == direct, line
    assert (cache_home / "torchrl-cli" / "completion.json").is_file()


def test_a_cached_answer_imports_no_hydra(cache_home, tmp_path):
    env = {**os.environ, "COMP_LINE": "torchrl train agent.l",
           "PYTHONPATH": os.pathsep.join([str(p) for p in sys.path if p])}
    check = ("import sys; from torchrl_cli.cli.completion import query; "
             "print(' '.join(query('torchrl train agent.l'))); "
             "assert 'hydra' not in sys.modules and 'torch' not in sys.modules")
    first = subprocess.run([sys.executable, "-c", "from torchrl_cli.cli.completion import query;"
                            " print(' '.join(query('torchrl train agent.l')))"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([sys.executable, "-c", check], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == first.stdout.split() == ["agent.lr=", "agent.lr_schedule="]


def test_a_new_config_file_is_offered_at_once(cache_home, tmp_path, monkeypatch):
    user = tmp_path / "user"
    (user / "agent").mkdir(parents=True)
    monkeypatch.setenv("TORCHRL_CONFIG_DIR", str(user))
    assert "agent=zz_mine" not in cached_train_query([], "agent=")
    (user / "agent" / "zz_mine.yaml").write_text("defaults:\n  - ppo_clip\n")
    assert "agent=zz_mine" in cached_train_query([], "agent=")
