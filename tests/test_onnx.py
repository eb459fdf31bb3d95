"""``torchrl export <run> format=onnx``: the ONNX model acts as ``load_policy`` does (encoding,
frozen normalization, greedy action, masks and clipping inside the graph), checked with
onnxruntime on random observations drawn from the env's observation space; and the one-line
errors of an op ONNX lacks, missing packages and a wrong format."""

import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from conftest import TINY, assert_no_traceback, assert_one_line_error, compose_config, snapshot
from conftest import torchrl as run_cli
from gymnasium import spaces

import torchrl_cli
from torchrl_cli.errors import FaultError
from torchrl_cli.run import onnx_export
from torchrl_cli.run.onnx_export import check_onnx, export_onnx, exporter_problem
from torchrl_cli.run.policy import export_policy
from torchrl_cli.run.train import train

ENVMODS = Path(__file__).resolve().parent / "envmods"
sys.path.insert(0, str(ENVMODS))

# running normalization on, so that a graph without the frozen statistics would act otherwise
RUN = [*TINY, "env.running_normalize_states=true", "seed=0"]
CASES = {
    "cartpole": ["env=CartPole-v1"],
    "pendulum": ["env=Pendulum-v1"],
    "dict": ["env=torchrl_test_envs:XorDictEnv"],  # a uint8 grid and a float vector
    "obs_mask": ["env=torchrl_test_envs:MaskedChoice"],  # the mask is an observation entry
    "info_mask": ["env=torchrl_test_envs:InfoMaskedChoice"],  # the mask comes in the info
    # RReLU: torch.export traces it, the ONNX exporter has no function for its op
    "rrelu": ["env=CartPole-v1", "net=mlp",
              "net.body=[{_target_:torch.nn.Linear,out_features:16},{_target_:torch.nn.RReLU}]"],
}
INPUTS = {  # name, dtype, shape of each model input
    "cartpole": [("obs", "tensor(float)", ["batch", 4])],
    "pendulum": [("obs", "tensor(float)", ["batch", 3])],
    "dict": [("grid", "tensor(uint8)", ["batch", 6, 6, 1]), ("vec", "tensor(float)", ["batch", 2])],
    "obs_mask": [("observation", "tensor(float)", ["batch", 2]),
                 ("action_mask", "tensor(int8)", ["batch", 8])],
    "info_mask": [("obs", "tensor(float)", ["batch", 2]),
                  ("action_mask", "tensor(int8)", ["batch", 8])],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny run per case (trained in this process: a few hundred env steps each)."""
    root = tmp_path_factory.mktemp("onnx_runs")
    folders = {}
    for name, overrides in CASES.items():
        folders[name] = root / name
        folders[name].mkdir()
        train(compose_config([*overrides, *RUN]), folders[name])
    return folders


@pytest.fixture(scope="module")
def user_env(cli_env) -> dict:
    env = dict(cli_env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ENVMODS), env.get("PYTHONPATH")) if p)
    return env


def sample(space: spaces.Space, n: int, seed: int):
    """``n`` observations of ``space`` as one batch (dicts of batches for a Dict space); Box
    bounds beyond +-5 (CartPole's velocities go to float32's max) are cut to +-5."""
    if isinstance(space, spaces.Dict):
        return {k: sample(s, n, seed + i) for i, (k, s) in enumerate(space.spaces.items())}
    if isinstance(space, spaces.Box) and space.dtype.kind == "f":
        space = spaces.Box(np.clip(space.low, -5, 5), np.clip(space.high, -5, 5),
                           dtype=space.dtype)
    space.seed(seed)
    return np.stack([space.sample() for _ in range(n)])


def random_masks(n: int, actions: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = rng.integers(2, size=(n, actions), dtype=np.int8)
    masks[np.arange(n), rng.integers(actions, size=n)] = 1
    return masks


def assert_acts_as_load_policy(name: str, run: Path, model: Path) -> None:
    """The model's inputs are as documented, and on 256 random observations of the env's
    space its actions are load_policy's: equal for discrete actions (of more than one value,
    so that the comparison can fail), within float32 error for Box actions."""
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type, i.shape) for i in session.get_inputs()] == INPUTS[name]
    assert [o.name for o in session.get_outputs()] == ["action"]
    policy = torchrl_cli.load_policy(run)
    env = policy.make_env()
    obs = sample(env.observation_space, 256, seed=1)
    env.close()
    if name == "info_mask":
        masks = random_masks(256, 8, seed=2)
        want = policy(obs, action_mask=masks)
        feed = {"obs": obs, "action_mask": masks}
    else:
        if name == "obs_mask":  # the space's samples may have no legal action
            obs["action_mask"] = random_masks(256, 8, seed=2)
        want = policy(obs)
        feed = obs if isinstance(obs, dict) else {"obs": obs}
    (got,) = session.run(None, feed)
    assert got.shape == want.shape and got.dtype == want.dtype
    if name == "pendulum":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert np.std(want) > 1e-3
    else:
        assert np.array_equal(got, want)
        assert len(np.unique(want)) > 1
    if "mask" in name:
        masks = feed["action_mask"]
        assert masks[np.arange(256), got].all()  # legal actions only


@pytest.mark.parametrize("name", ["cartpole", "pendulum", "dict"])
def test_the_command_writes_a_model_that_acts_as_load_policy(runs, name, tmp_path, torchrl_bin,
                                                            user_env):
    out = tmp_path / "policy.onnx"
    proc = run_cli(torchrl_bin, ["export", str(runs[name]), "format=onnx", f"out={out}"],
                   tmp_path, user_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    assert proc.stderr == ""  # the exporter's warnings and log lines are kept quiet
    text = " ".join(proc.stdout.split())
    assert "checked against the torch policy with onnxruntime" in text
    described = {"cartpole": "inputs obs float32 [batch, 4]; output action int64 [batch]",
                 "pendulum": "inputs obs float32 [batch, 3]; output action float32 [batch, 1]",
                 "dict": "inputs grid uint8 [batch, 6, 6, 1], vec float32 [batch, 2]"}
    assert described[name] in text
    assert_acts_as_load_policy(name, runs[name], out)


@pytest.mark.parametrize("name", ["obs_mask", "info_mask"])
def test_action_masks_are_inputs_of_the_model(runs, name, tmp_path):
    """A PettingZoo mask entry is the model's ``action_mask`` input next to the observation's;
    an info mask is the ``action_mask`` input after ``obs``."""
    out = export_onnx(torchrl_cli.load_policy(runs[name]), tmp_path / "policy.onnx")
    assert_acts_as_load_policy(name, runs[name], out)


def test_the_normalization_is_inside_the_graph_and_the_check_fails_loudly(runs, tmp_path,
                                                                          monkeypatch):
    """The model holds the normalizer's statistics at export time: against a policy whose
    running mean has since moved, the check fails, saying how many actions differ; an export
    whose check fails leaves no file."""
    policy = torchrl_cli.load_policy(runs["pendulum"])
    out = export_onnx(policy, tmp_path / "policy.onnx")
    check_onnx(policy, out)
    mean = policy.module.normalizer.rms.mean
    mean += 0.5
    with pytest.raises(FaultError, match=r"differ from the torch policy's on 1 of 1 random"):
        check_onnx(policy, out)
    mean -= 0.5

    def moved_check(policy, path):
        policy.module.normalizer.rms.mean += 0.5
        check_onnx(policy, path)

    monkeypatch.setattr(onnx_export, "check_onnx", moved_check)
    with pytest.raises(FaultError, match="nothing written: export format=torch instead"):
        export_onnx(policy, tmp_path / "moved.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["policy.onnx"]


def test_an_op_onnx_lacks_is_named_in_one_line(runs, tmp_path, torchrl_bin, cli_env):
    """net.body with torch.nn.RReLU: one line naming the op, exit 2, nothing written; the
    torch export of the same run works."""
    run = runs["rrelu"]
    before = snapshot(run)
    proc = run_cli(torchrl_bin, ["export", str(run), "format=onnx"], tmp_path, cli_env)
    assert_one_line_error(proc, "ONNX has no export for op aten::rrelu_with_noise_functional",
                          "export format=torch instead")
    assert snapshot(run) == before
    assert export_policy(torchrl_cli.load_policy(run), tmp_path / "p.pt2").is_file()


def test_exporter_errors_without_an_op_keep_their_summary():
    """An exporter failure that names no op (here: torch.export's own, as the exporter words
    it) becomes one line with its summary line, ANSI colors removed."""
    err = RuntimeError(
        "Failed to export the model with torch.export. \x1b[96mThis is step 1/3\x1b[0m of "
        "exporting the model to ONNX. Next steps:\n- Modify the model code\n\n"
        "## Exception summary\n\n<class 'TypeError'>: missing a required argument: 'obs'\n\n"
        "(Refer to the full stack trace above for more information.)")
    assert exporter_problem(err) == (
        "the ONNX exporter failed (<class 'TypeError'>: missing a required argument: 'obs'); "
        "export format=torch instead, or set TORCHRL_DEBUG=1 for the exporter's traceback")


def test_missing_packages_and_a_wrong_format_are_one_line(runs, tmp_path, torchrl_bin, cli_env):
    """Without onnxruntime (a package on the path that fails to import, as a missing one
    does): one line with the pip command; format=tf: one line with the formats."""
    fake = tmp_path / "fake" / "onnxruntime"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'onnxruntime'\")\n")
    env = {**cli_env, "PYTHONPATH": os.pathsep.join(
        p for p in (str(fake.parent), cli_env.get("PYTHONPATH")) if p)}
    run = runs["cartpole"]
    before = snapshot(run)
    proc = run_cli(torchrl_bin, ["export", str(run), "format=onnx"], tmp_path, env)
    assert_one_line_error(proc, "format=onnx needs onnx, onnxruntime and onnxscript",
                          "pip install 'torchrl-cli[onnx]'")
    proc = run_cli(torchrl_bin, ["export", str(run), "format=tf"], tmp_path, cli_env)
    assert_one_line_error(proc, "format=tf is not a format of torchrl export", "torch, onnx")
    assert snapshot(run) == before
