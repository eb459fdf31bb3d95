"""The SLURM launcher presets (hydra-submitit-launcher): a real two-job sweep through submitit's
local executor, and the resources the slurm preset asks SLURM for."""

import json
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TINY, assert_no_traceback, assert_one_line_error, torchrl
from omegaconf import OmegaConf

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the slurm extra")


def test_slurm_local_runs_a_sweep_in_job_processes(torchrl_bin, cli_env, tmp_path):
    """hydra/launcher=slurm_local seed=0,1: two submitit jobs, each a process of its own, leave
    the same sweep folder as any launcher (job folders with metrics.json, summary.csv/.md)."""
    proc = torchrl(torchrl_bin, ["train", "-m", "hydra/launcher=slurm_local", "seed=0,1", *TINY],
                   tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    assert "Submitit 'local' sweep output dir" in proc.stdout + proc.stderr
    sweep = next(tmp_path.glob("runs/*/*_multirun"))
    jobs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())
    assert [job.name for job in jobs] == ["0_ppo_clip_CartPole-v1", "1_ppo_clip_CartPole-v1"]
    pids = set()
    for seed, job in enumerate(jobs):
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["env_steps"] == 256 and metrics["interrupted"] is None
        assert yaml.safe_load((job / "config.yaml").read_text())["seed"] == seed
        pids.add(next(job.glob("events.out.tfevents.*")).name.split(".")[-2])
    assert len(pids) == 2  # one process per job
    assert (sweep / "summary.csv").is_file() and (sweep / "summary.md").is_file()
    assert "| (defaults) | 2 |" in (sweep / "summary.md").read_text()  # both seeds in one row
    logs = sorted(p.name for p in (sweep / ".submitit").glob("*_log.out"))
    assert len(logs) == 2, logs  # submitit's files, beside the job folders, not counted as jobs


@pytest.mark.parametrize(("overrides", "cpus"), [
    ([], 1),  # torch_threads=1, the envs step in the job's process
    (["torch_threads=2", "env.n_envs=4", "env.vectorization=sync"], 2),
    (["torch_threads=2", "env.n_envs=4", "env.vectorization=async"], 6),  # 2 + a core per copy
])
def test_slurm_preset_asks_for_the_cores_a_job_uses(overrides, cpus):
    """The launcher node Hydra instantiates the SlurmLauncher from, resolved as Hydra does."""
    from hydra import compose, initialize_config_dir

    import torchrl_cli.cli.hydra_app  # noqa: F401  registers the presets' resolvers
    from torchrl_cli.config import CONFIG_NAME, config_dir, register_configs

    register_configs()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(CONFIG_NAME, ["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.cpus_per_task == cpus
    assert launcher.partition is None and launcher.timeout_min == 240
    assert OmegaConf.to_container(launcher)["submitit_folder"] == "${hydra.sweep.dir}/.submitit"


# stand-ins for the commands submitit runs: sbatch keeps the script it is given and writes the
# job's result file, a failure, at once (without it submitit waits 15 s for the file)
FAKE_SBATCH = """cp "$1" "$(dirname "$0")/submitted.sh"
folder=$(sed -n 's|^#SBATCH --output=\\(.*\\)/%j_0_log.out$|\\1|p' "$1")
{python} -c "import pickle, sys; pickle.dump(('error', 'no cluster'), open(sys.argv[1], 'wb'))" \\
    "$folder/4242_0_result.pkl"
echo "Submitted batch job 4242"
"""
FAKE_SLURM = {
    "srun": "exit 0",
    "sbatch": FAKE_SBATCH.format(python=sys.executable),
    "sacct": "printf 'JobID|State|NodeList\\n4242|FAILED|n1\\n'",
    "scancel": "exit 0",
}


def test_slurm_preset_writes_the_sbatch_script_with_those_resources(torchrl_bin, cli_env,
                                                                    tmp_path):
    """hydra/launcher=slurm through the real plugin and submitit, up to sbatch (stand-ins for
    the SLURM commands; the job then counts as failed, so the sweep exits non-zero)."""
    bin_dir = tmp_path / "slurm_bin"
    bin_dir.mkdir()
    for name, body in FAKE_SLURM.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**cli_env, "PATH": f"{bin_dir}:{cli_env['PATH']}"}
    proc = torchrl(torchrl_bin, ["train", "-m", "hydra/launcher=slurm", "seed=0", *TINY,
                                 "hydra.launcher.partition=cpu", "torch_threads=2",
                                 "env.n_envs=4", "env.vectorization=async"], tmp_path, env)
    assert proc.returncode != 0
    script = (bin_dir / "submitted.sh").read_text()
    sweep = next(tmp_path.glob("runs/*/*_multirun")).resolve()
    for line in ("--cpus-per-task=6", "--mem=4GB", "--time=240", "--partition=cpu",
                 "--job-name=torchrl_train", f"--output={sweep}/.submitit/%j_0_log.out"):
        assert f"#SBATCH {line}\n" in script, script
    assert "-m submitit.core._submit" in script


def test_a_launcher_whose_plugin_is_missing_names_the_extra():
    """Without hydra-submitit-launcher, hydra/launcher=slurm cannot find submitit_slurm."""
    from hydra.errors import MissingConfigException

    from torchrl_cli.config.compose import _missing_option

    err = MissingConfigException("not found", "hydra/launcher/submitit_slurm", options=[])
    message = _missing_option(err, ["hydra/launcher=slurm"])
    assert message.endswith("pip install 'torchrl-cli[slurm]'"), message


def test_a_slurm_sweep_without_slurm_is_one_error_line(torchrl_bin, cli_env, tmp_path):
    """No srun on PATH: one line naming the way out, before any sweep folder is made."""
    env = {**cli_env, "PATH": str(Path(torchrl_bin).parent)}  # python and torchrl, no SLURM
    proc = torchrl(torchrl_bin, ["train", "-m", "hydra/launcher=slurm", "seed=0,1", *TINY],
                   tmp_path, env)
    assert_one_line_error(proc, "hydra/launcher=slurm submits the jobs to SLURM",
                          "hydra/launcher=slurm_local")
    assert list(tmp_path.iterdir()) == []
