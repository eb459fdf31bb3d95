"""The built wheel ships conf/ inside the package, so a non-editable install finds it; every
runtime dependency states the lower bound `make test-oldest` installs."""

import re
import subprocess
import sys
import tomllib
import zipfile

from conftest import REPO


def test_wheel_ships_conf_and_runs_without_the_checkout(tmp_path):
    """Build the wheel, install it into a bare folder, and compose a config from there."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")], check=True)
    wheel = next((tmp_path / "dist").glob("torchrl_cli-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for path in ("conf/config.yaml", "conf/agent/ppo_clip.yaml", "conf/env/CartPole-v1.yaml",
                 "conf/net/mlp.yaml", "conf/tuned/ppo_clip/CartPole-v1.yaml"):
        assert f"torchrl_cli/{path}" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True)
    code = ("import torchrl_cli.config as c; print(c.config_dir()); "
            "print(c.load_default('cartpole_solve').target_return)")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path[:0] = "
                          f"[{str(site)!r}]; {code}"], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == str(site / "torchrl_cli" / "conf")
    assert float(out[1]) == 475.0


def test_every_runtime_dependency_states_a_lower_bound():
    """Issue 27, item 14: ``make test-oldest`` installs these lower bounds (tools/oldest.py)."""
    tool = subprocess.run([sys.executable, str(REPO / "tools" / "oldest.py")],
                          capture_output=True, text=True, timeout=60)
    assert tool.returncode == 0 and tool.stderr == "", tool.stderr
    pins = dict(line.split("==") for line in tool.stdout.splitlines())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in project["dependencies"]}
    assert set(pins) == names - {"torch"}
    assert pins["numpy"] == "2" and pins["gymnasium"] == "1.1"


def test_a_dependency_without_a_lower_bound_is_named():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from oldest import lower_bounds
    finally:
        sys.path.remove(str(REPO / "tools"))
    pins, unbounded = lower_bounds(["torch>=2.2", "rich>=13", "tqdm", "gymnasium[box2d]>=1.1,<2",
                                    "numpy<3"])
    assert pins == {"rich": "13", "gymnasium": "1.1"}
    assert unbounded == ["tqdm", "numpy<3"]
