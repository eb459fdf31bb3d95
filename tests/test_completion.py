"""Shell completion's index and cache: the same answers as Hydra's own query (after earlier
overrides too), a first TAB and a cached answer without Hydra (Python's start-up, not seconds),
an index made from other config files never used, and a new config file seen at once."""

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
    index_lookup,
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
    """A cache of the test's own, and Hydra's config store as a TAB's fresh process has it:
    the env nodes that earlier tests of this worker stored (`env=Corridor-v0`, ...) would be
    options of `env=` in Hydra's answers here, and in no user's shell."""
    from hydra.core.config_store import ConfigStore

    from torchrl_cli.config import store

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHRL_CONFIG_DIR", raising=False)
    repo, stored = ConfigStore.instance().repo, set(store._stored_env_ids)
    envs = repo.pop("env", None)
    store._stored_env_ids.clear()
    yield tmp_path / "cache"
    repo.pop("env", None)
    if envs is not None:
        repo["env"] = envs
    store._stored_env_ids.clear()
    store._stored_env_ids.update(stored)


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
        # a parent no answer leads to (`+env.` has no keys to add) is left to Hydra, and so is
        # a line with an env id without a file of its own in env/ (`env=ALE/Pong-v5`)
        if (word.lstrip("+~").startswith("hydra") or word == "+env.kwargs."
                or "env=ALE/Pong-v5" in whole):
            assert indexed is None, line
        else:
            assert indexed is not None, line
            assert sorted(w for w in indexed if w.startswith(word)) == direct, line
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


@pytest.mark.parametrize("line, expected, indexed", [
    ("torchrl train agent.l", ["agent.lr=", "agent.lr_schedule="], True),
    ("torchrl train agent=a2c agent.l", ["agent.lr=", "agent.lr_schedule="], True),
    ("torchrl train agent.lr=1e-3 env=Pe", ["env=Pendulum-v1", "env=PendulumNoVel-v1"], True),
    ("torchrl train agent=a2c env=Pendulum-v1 agent.l", ["agent.lr=", "agent.lr_schedule="],
     False),
])
def test_a_first_or_cached_answer_imports_no_hydra(cache_home, tmp_path, line, expected,
                                                   indexed):
    """A line the index answers (no whole words, or one group option and keys set): the first
    TAB (an empty cache) imports neither Hydra, OmegaConf nor torch. Another line (two options
    chosen): the first TAB asks Hydra, the next one not."""
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
    assert first.stderr.split() == ([] if indexed else ["hydra", "omegaconf"])
    assert again.stderr.split() == []


def test_a_new_config_file_is_offered_at_once(cache_home, tmp_path, monkeypatch):
    user = tmp_path / "user"
    (user / "agent").mkdir(parents=True)
    monkeypatch.setenv("TORCHRL_CONFIG_DIR", str(user))
    assert "agent=zz_mine" not in cached_train_query([], "agent=")
    (user / "agent" / "zz_mine.yaml").write_text("defaults:\n  - ppo_clip\n")
    assert "agent=zz_mine" in cached_train_query([], "agent=")


# after earlier overrides: the parents each group option changes, keys set to values their types
# take, and the lines the index leaves to Hydra
PARENTS = ["", "agent.", "agent.policy.", "agent.value.net.", "env.", "memory.", "net.", "tune.",
           "agent.lr=", "env.id=", "env=", "agent/", "+"]
KEY_LINES = ["seed=1 agent.", "agent.lr=1e-3 env=Pe", "agent.lr=1e-3 agent.", "agent.lr=3 agent.",
             "agent.lr=1e-3 agent.lr=", "seed=1 agent.lr=", "device=cuda agent.policy.",
             "device=3 agent.", "device=true agent.", "target_return=null agent.",
             "target_return=475 env.", "logger.console=quiet logger.", "env.n_envs=8 env.",
             "agent=a2c agent.n_steps=16 agent.", "agent=a2c agent.lr=1e-3 agent.policy.",
             "memory=lstm memory.hidden_size=32 memory.", "agent=ppo_clip seed=1 agent.policy.",
             "env=Pendulum-v1 agent.lr=0.01 ", "agent.normalize_advantages=false agent.",
             "agent.lr=1e-3 memory=", "agent=vanilla_pg agent.policy.ppo_clip_range=",
             "experiment=cartpole_solve target_return=", "net=mlp net.",
             "hparams_search=ppo_clip_cartpole seed=1 tune.params.",
             # a group's options, whatever the keys' values and however many options chosen
             "seed=abc env=Pe", "nokey=1 env=", "agent.lr=abc agent/", "seed=abc +",
             "agent=a2c env=Pendulum-v1 memory=", "agent=a2c env=Pendulum-v1 seed=1 ~",
             # values Hydra's parser reads in more than one way, all taken by their keys' types
             "device=- agent.", "device=1.2.3 agent.", "device=inf agent.", "agent.lr=1. agent.",
             "agent.lr=.5 agent.", "seed=+1 agent.", "seed=007 agent.", "agent.lr=-1e+3 agent.",
             "device=1e5 agent.", "agent.gamma=1 agent."]
# a value the key's type refuses (Hydra then answers no keys), two options chosen, `+`, `~`, a
# list, a sweep, Hydra's keys, a key the config lacks, an env id without a file: Hydra answers
HYDRA_LINES = ["seed=abc agent.", "seed=1.5 agent.", "agent.lr=abc agent.", "seed=true agent.",
               "agent.normalize_advantages=maybe agent.", "target_return=abc env.",
               "agent=a2c env=Pendulum-v1 agent.", "agent=a2c agent=ppo_clip agent.",
               "seed=1 seed=2 agent.", "+env.kwargs.x=1 env.", "~memory agent.",
               "env=Taxi-v3 env=", "env=Taxi-v3 agent=a2c memory=",
               "agent.policy.net.hidden=[8] agent.policy.net.hidden.", "seed=1,2 agent.",
               "hydra.job.chdir=true agent.", "nokey=1 agent.", "env=Taxi-v3 env.",
               "agent/advantage=gae agent.advantage.", "agent.policy.ppo_clip_range=0.1 agent=a2c "
               "agent.", "seed=null agent."]


def variant_lines() -> list[str]:
    """Each option of each group the index holds answers for, with one of the parents above in
    turn (each parent comes with three or four options), and one option of each group with
    eight of the parents whose answers it changes. Each line is a Hydra composition (~0.2 s):
    the whole cross product took 2.5 min of the suite."""
    index = json.loads(INDEX.read_text())
    lines = []
    for i, (choice, variant) in enumerate(index["variants"].items()):
        lines.append(f"{choice} {PARENTS[i % len(PARENTS)]}")
        if choice in ("agent=a2c", "env=Pendulum-v1", "memory=lstm", "net=mlp",
                      "experiment=pendulum_solve", "hparams_search=ppo_clip_cartpole"):
            changed = sorted(p for p in variant["answers"] if p not in PARENTS)
            lines += [f"{choice} {parent}" for parent in changed[:8]]
    return lines


def test_the_index_after_earlier_overrides_is_hydras(cache_home):
    """After one group option and keys set to values their types take, the index answers, and
    its answer is Hydra's; after the overrides it cannot follow, it says nothing (Hydra is
    asked) and Hydra's answer differs from the index's for the line without them, or could."""
    index = json.loads(INDEX.read_text())
    assert {c.split("=")[0] for c in index["variants"]} == set(completion.VARIANT_GROUPS)
    lines = variant_lines() + KEY_LINES
    assert len(lines) > 100
    for line in lines:
        rest, whole, word = split(f"torchrl train {line}")
        indexed = index_answer(whole, parent_of(word))
        value_after_key = any("=" in w and w.split("=")[0] not in index["groups"]
                              for w in whole) and parent_of(word).endswith("=") and \
            parent_of(word)[:-1] not in index["groups"]
        if value_after_key:  # a key's value after a key set: Hydra's to say
            assert indexed is None, line
            continue
        assert indexed is not None, line
        assert sorted(w for w in indexed if w.startswith(word)) == sorted(
            train_query(rest, whole)), line
    for line in HYDRA_LINES:
        rest, whole, word = split(f"torchrl train {line}")
        assert index_answer(whole, parent_of(word)) is None, line
    # the refused values: Hydra answers no keys, where the index would have answered many
    for line in HYDRA_LINES[:6]:
        rest, whole, word = split(f"torchrl train {line}")
        assert train_query(rest, whole) == [], line
        assert index_lookup(index, [], parent_of(word)), line


def test_each_option_changes_answers_the_index_holds(cache_home):
    """The index holds what the options change: a2c's agent has its own keys, an lstm memory
    its kind, a search its `tune` node, an env its id; the default option changes nothing."""
    variants = json.loads(INDEX.read_text())["variants"]
    index = json.loads(INDEX.read_text())
    assert index_lookup(index, ["agent=a2c"], "agent.n_steps=") == ["agent.n_steps=5"]
    assert "agent.policy.ppo_clip_range=" in index_lookup(index, [], "agent.policy.")
    assert "agent.policy.ppo_clip_range=" not in index_lookup(index, ["agent=a2c"], "agent.policy.")
    assert variants["memory=lstm"]["answers"]["memory.kind="] == ["memory.kind=lstm"]
    assert variants["hparams_search=ppo_clip_cartpole"]["answers"]["tune.params."] == [
        "tune.params.agent."]
    assert variants["env=Pendulum-v1"]["answers"]["env.id="] == ["env.id=Pendulum-v1"]
    assert variants["agent=ppo_clip"] == {"answers": {}, "types": {}}
