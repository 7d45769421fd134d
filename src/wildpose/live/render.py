"""``wildpose live --render FILE``: the processed frames with their 2D skeletons, and the people in world
axes in a 3D panel beside them, encoded as they come (the offline render's drawing code, ``wildpose.render``).

The 3D panel's camera cannot be fitted to a whole clip as offline: it looks at a fixed floor area in front of
the recording camera (``SCENE``). Dropped frames are not in the render (it is the processed frames, at the
source's nominal rate).
"""

from __future__ import annotations

import numpy as np

from wildpose.live.process import LiveResult
from wildpose.render import _View3D, draw_skeletons_2d
from wildpose.video import VideoWriter

# world metres (x right, y up, z towards the camera): the floor area the 3D panel shows
SCENE = np.array([[-5.0, 0.0, -1.5], [5.0, 1.9, -12.0]])


class LiveRenderer:
    def __init__(self, path, width: int, height: int, fps: float):
        self.path, self.width, self.height, self.fps = path, int(width), int(height), float(fps)
        self._writer: VideoWriter | None = None
        self._view: _View3D | None = None

    def open(self) -> "LiveRenderer":
        self._writer = VideoWriter(self.path, 2 * self.width, self.height, self.fps).__enter__()
        corners = np.array([[x, y, z] for x in SCENE[:, 0] for y in SCENE[:, 1] for z in SCENE[:, 2]])
        self._view = _View3D(self.width, self.height, corners, np.array([[0.0, 0.0, -4.0]]), azimuth=25.0,
                             elevation=15.0)
        return self

    def write(self, image: np.ndarray, result: LiveResult) -> None:
        left = np.ascontiguousarray(image).copy()
        if result.people:
            keypoints = np.stack([p.keypoints_2d for p in result.people])
            ids = np.array([p.id for p in result.people])
            draw_skeletons_2d(left, keypoints, ids)
        placed = [p for p in result.people if p.joints_world is not None]
        if placed:
            right = self._view.draw(np.stack([p.joints_world for p in placed]).astype(np.float64),
                                    np.array([p.id for p in placed]), np.zeros(len(placed), bool))
        else:
            right = self._view.background.copy()
        self._writer.write(np.concatenate([left, right], axis=1))

    def close(self, keep: bool = True) -> None:
        if self._writer is None:
            return
        if keep:
            self._writer.__exit__(None, None, None)
        else:
            err = RuntimeError("live run failed")
            self._writer.__exit__(RuntimeError, err, None)
        self._writer = None
