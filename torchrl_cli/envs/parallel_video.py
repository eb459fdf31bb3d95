"""A video of a PettingZoo parallel env's first episode, as Gymnasium's ``RecordVideo`` writes
one for a single-agent env (``torchrl eval RUN video=true``): a frame from ``render()`` after
the reset and after every step, written with moviepy at the env's ``render_fps`` to
``<folder>/<name_prefix>-episode-0.mp4`` once every agent is gone (or on ``close()``)."""

from pathlib import Path

import numpy as np
from pettingzoo.utils.wrappers import BaseParallelWrapper

#: RecordVideo's frame rate for an env whose metadata gives none
DEFAULT_FPS = 30


class ParallelRecorder(BaseParallelWrapper):
    """Records the first episode of ``env`` (made with ``render_mode="rgb_array"``).

    Parameters:
        env: a PettingZoo parallel env that renders ``rgb_array`` frames.
        folder: where the MP4 file goes (it exists).
        name_prefix: the file's name before ``-episode-0.mp4``.
    """

    def __init__(self, env, folder: Path, name_prefix: str):
        super().__init__(env)
        self.path = Path(folder) / f"{name_prefix}-episode-0.mp4"
        self.fps = env.metadata.get("render_fps", DEFAULT_FPS)
        self.frames: list[np.ndarray] = []
        self.recording = False
        self.episodes = 0  # resets so far

    def reset(self, seed=None, options=None):
        result = self.env.reset(seed=seed, options=options)
        self.recording = self.episodes == 0
        self.episodes += 1
        self.capture()
        return result

    def step(self, actions):
        result = self.env.step(actions)
        self.capture()
        if self.recording and not self.env.agents:
            self.write()
        return result

    def close(self):
        try:
            if self.recording:
                self.write()
        finally:
            self.env.close()

    def capture(self) -> None:
        if self.recording:
            self.frames.append(np.asarray(self.env.render()))

    def write(self) -> None:
        from moviepy.video.io.ImageSequenceClip import ImageSequenceClip

        self.recording = False
        clip = ImageSequenceClip(self.frames, fps=self.fps)
        clip.write_videofile(str(self.path), logger=None)
        self.frames = []
