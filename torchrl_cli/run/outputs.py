"""What a run leaves behind: metrics.json, model.pt, and its closing lines on the console."""

import json
import shlex
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console

from torchrl_cli.agents import PGAgent, TrainResult
from torchrl_cli.agents.evaluation import Evaluation
from torchrl_cli.run.checkpoint import Checkpoints, to_bytes, write_atomically

METRICS_FILE = "metrics.json"
ERROR_FILE = "error.txt"  # a failed sweep job's error line (analysis.sweep.RecordFailures)
MODEL_FILE = "model.pt"


def final_metrics(
    cfg: DictConfig, result: TrainResult, final: Evaluation | None, wall: float
) -> dict:
    """metrics.json: the final evaluation (null when training was interrupted), budgets spent,
    timings, and every evaluation on the way."""
    solved = result.solved
    return {
        "agent": cfg.agent.name,
        "env": cfg.env.id,
        "seed": cfg.seed,
        "mean_return": final and final.mean,
        "std_return": final and final.std,
        "episodes": final and len(final.returns),
        "returns": final and final.returns,
        # many agents: the mean over agents above, each episode's sum over its agents here
        **({"team_returns": final.team_returns} if final and final.team_returns else {}),
        "interrupted": result.interrupted,
        "env_steps": result.env_steps,
        "iterations": result.iterations,
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "wall_seconds": wall,
        "target_return": cfg.target_return,
        "solved": None
        if solved is None
        else {
            "env_steps": solved.env_steps,
            "train_seconds": solved.train_seconds,
            "mean_return": solved.mean,
        },
        "evaluations": [
            {"env_steps": e.env_steps, "train_seconds": e.train_seconds, "mean_return": e.mean}
            for e in result.evaluations
        ],
    }


def write_metrics(run_dir: Path, metrics: dict) -> None:
    text = (json.dumps(metrics, indent=2) + "\n").encode()
    write_atomically(run_dir / METRICS_FILE, lambda f: f.write(text))


def write_model(run_dir: Path, agent: PGAgent) -> None:
    """model.pt: the final weights of every model and the normalization statistics."""
    model = {name: m.state_dict() for name, m in agent.models.items()} | {
        "state_normalizer": agent.normalizer.state_dict(),
        "reward_scaler": agent.collector.reward_scaler.state_dict(),
    }
    write_atomically(run_dir / MODEL_FILE, lambda f: f.write(to_bytes(model)))


def report_end(
    console: Console, metrics: dict, run_dir: Path | None, checkpoints: Checkpoints | None
) -> None:
    """The run's last lines: the final evaluation, or how to resume an interrupted run."""
    if metrics["interrupted"]:
        console.print(
            f"[bold yellow]interrupted[/bold yellow] by {metrics['interrupted']} after "
            f"{metrics['env_steps']} env steps"
        )
        if checkpoints is not None:
            console.print(f"checkpoint saved: {shown_path(checkpoints.last)}")
            console.print(
                f"resume with: [bold]torchrl train resume={shlex.quote(shown_path(run_dir))}"
                "[/bold]",
                soft_wrap=True,
            )
        return
    teams = metrics.get("team_returns")
    per_agent = (
        f" per agent, team return {sum(teams) / len(teams):.2f}, over {len(teams)} episodes of "
        f"{metrics['episodes'] // len(teams)} agents"
        if teams
        else f" over {metrics['episodes']} episodes"
    )
    console.print(
        f"[bold green]final evaluation[/bold green]: mean return "
        f"{metrics['mean_return']:.2f} ± {metrics['std_return']:.2f}{per_agent} after "
        f"{metrics['env_steps']} env steps ({metrics['train_seconds']:.1f} s of training)"
    )


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when below it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
