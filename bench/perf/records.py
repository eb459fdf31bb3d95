"""What one benchmark run yields, for either tool."""

from dataclasses import dataclass, field


@dataclass
class SolveRun:
    """One seed of a time-to-solve task: the first evaluation that reached the threshold
    (env steps, training seconds with evaluation excluded), or None when none did."""

    seed: int
    solved_steps: int | None
    solved_seconds: float | None
    evaluations: list[tuple[int, float, float]] = field(default_factory=list)  # steps, s, mean

    @property
    def solved(self) -> bool:
        return self.solved_steps is not None


@dataclass
class Throughput:
    """A whole training run: env steps per second of training, and its final evaluation."""

    env_steps: int
    seconds: float
    final_return: float

    @property
    def steps_per_second(self) -> float:
        return self.env_steps / self.seconds
