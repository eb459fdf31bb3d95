"""A video of a PettingZoo parallel env's first episode, as Gymnasium's ``RecordVideo`` writes
one for a single-agent env (``torchrl eval RUN video=true``): a frame from ``render()`` after
the reset and after every step, at the env's ``render_fps``, to
``<folder>/<name_prefix>-episode-0.mp4``, finished once every agent is gone (or on
``close()``). Each frame goes to ffmpeg as it is rendered (imageio-ffmpeg, which moviepy
writes with), not held: an evaluation records one episode per copy at once."""

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
        self.writer = None  # imageio-ffmpeg's frame sink, opened on the first frame
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
        if not self.recording:
            return
        frame = np.ascontiguousarray(self.env.render(), dtype=np.uint8)
        if self.writer is None:
            import imageio_ffmpeg

            height, width = frame.shape[:2]
            self.writer = imageio_ffmpeg.write_frames(  # yuv420p: sides made even
                str(self.path), (width, height), fps=self.fps, macro_block_size=2,
                ffmpeg_log_level="error",
            )
            self.writer.send(None)  # starts ffmpeg
        self.writer.send(frame)

    def write(self) -> None:
        """Finish the file (ffmpeg writes what it was sent)."""
        self.recording = False
        if self.writer is not None:
            self.writer.close()
            self.writer = None
