"""The built wheel ships conf/ inside the package, so a non-editable install finds it."""

import subprocess
import sys
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
