"""The Ray launcher against a real Ray head, inside a network namespace with only loopback."""

import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import TINY


def test_ray_launcher_runs_a_sweep_on_a_local_head(tmp_path, torchrl_bin, cli_env):
    """`ray start --head` on 127.0.0.1 in a private network namespace (no traffic can leave),
    a 2-job sweep through hydra/launcher=ray_cluster, then the head is stopped."""
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        pytest.skip("this machine cannot create network namespaces (unshare --net)")
    ray = Path(torchrl_bin).parent / "ray"
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    sweep = " ".join(shlex.quote(o) for o in ["seed=0,1", *TINY])
    script = f"""
set -e
ip link set lo up
{ray} start --head --port=6399 --node-ip-address=127.0.0.1 --num-cpus=2 \\
    --include-dashboard=false --disable-usage-stats --temp-dir={ray_tmp} > head.log 2>&1
trap '{ray} stop --force > /dev/null 2>&1' EXIT
{torchrl_bin} train -m hydra/launcher=ray_cluster \\
    hydra.launcher.ray.init.address=127.0.0.1:6399 {sweep}
"""
    try:
        proc = subprocess.run(["unshare", "--net", "bash", "-c", script], cwd=tmp_path,
                              env=cli_env, capture_output=True, text=True, timeout=400)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    head_log = (tmp_path / "head.log").read_text()[-1500:]
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:], head_log)
    sweep_dir = next(tmp_path.glob("runs/*/*_multirun"))
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert len(jobs) == 2 and all((job / "metrics.json").exists() for job in jobs)
    assert (sweep_dir / "summary.csv").exists()
    assert "Ray Launcher is launching 2 jobs" in proc.stdout + proc.stderr
    # the head is gone: nothing listens on its port any more
    stopped = subprocess.run(["pgrep", "-f", f"gcs_server.*{ray_tmp}"], capture_output=True)
    assert stopped.returncode != 0
