"""A world frame (y up, the floor at y = 0) that settles as live evidence accumulates.

Offline, ``wildpose.world.align_world`` fits the up direction and the floor once, to every pose of the clip.
Live there is no clip: :class:`SettlingWorld` keeps the camera-space poses seen so far (a bounded store:
when it holds ``max_rows`` poses, every other one is dropped, so it keeps spanning the whole stream at half
the density) and refits ``align_world`` on them

- first as soon as ``first_fit_poses`` poses have been seen,
- then every ``refit_every_s`` seconds of stream time.

Between fits the transform is fixed, so a person's world trajectory moves only by their own motion, and
jumps (a little, less and less) at refits. The frame is reported *settled* when two consecutive fits agree
within ``settle_deg`` degrees on the up direction and ``settle_m`` metres on the camera height; it is the
same computation as offline, on the evidence so far, so a long enough stream of the same scene ends at the
offline alignment of the poses it kept. A static camera is assumed (as ``wildpose run --static-camera``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from wildpose.world import align_world

log = logging.getLogger(__name__)


@dataclass
class WorldState:
    """The transform in use: world = rotation @ (pose - root + scale * root) + position (camera axes in)."""

    rotation: np.ndarray  # (3, 3) float64, world-from-camera
    position: np.ndarray  # (3,) float64, the camera in the world, (0, height, 0)
    person_scale: dict  # live person id -> distance scale that puts everyone on one floor
    height: float  # metres, camera above the floor
    pitch_deg: float
    roll_deg: float
    poses_used: int  # poses the fit saw
    fits: int  # how many fits so far
    settled: bool
    fitted_at: float  # stream seconds of the fit


class SettlingWorld:
    """See the module docstring."""

    def __init__(self, refit_every_s: float = 1.0, first_fit_poses: int = 5, max_rows: int = 3000,
                 settle_deg: float = 1.0, settle_m: float = 0.02):
        if refit_every_s <= 0 or first_fit_poses < 1 or max_rows < 2:
            raise ValueError("refit_every_s must be > 0, first_fit_poses >= 1, max_rows >= 2")
        self.refit_every_s, self.first_fit_poses, self.max_rows = refit_every_s, first_fit_poses, max_rows
        self.settle_deg, self.settle_m = settle_deg, settle_m
        self._poses = np.empty((max_rows, 17, 3), np.float32)
        self._person = np.empty(max_rows, np.int64)
        self._rows = 0
        self._seen = 0
        self._ids: dict[int, int] = {}  # live id -> person index in the store
        self.state: WorldState | None = None

    def add(self, person_id: int, joints_camera: np.ndarray) -> None:
        """One person-frame's absolute camera-space joints (17, 3) metres."""
        if not np.isfinite(joints_camera).all():
            return
        if self._rows == self.max_rows:
            keep = slice(0, self.max_rows, 2)
            n = len(range(*keep.indices(self.max_rows)))
            self._poses[:n], self._person[:n] = self._poses[keep].copy(), self._person[keep].copy()
            self._rows = n
        self._poses[self._rows] = joints_camera
        self._person[self._rows] = self._ids.setdefault(int(person_id), len(self._ids))
        self._rows += 1
        self._seen += 1

    def update(self, timestamp: float) -> bool:
        """Refit if it is time (module docstring); True when the transform changed."""
        due = (self.state is None and self._seen >= self.first_fit_poses) or (
            self.state is not None and timestamp - self.state.fitted_at >= self.refit_every_s)
        if not due or self._rows == 0:
            return False
        rows = slice(0, self._rows)
        _, camera = align_world(self._poses[rows], person=self._person[rows], num_people=len(self._ids),
                                max_fit_rows=self.max_rows)
        rotation = np.asarray(camera["rotation"], np.float64)
        position = np.asarray(camera["position"], np.float64)
        scale = np.asarray(camera["person_scale"], np.float64)
        settled = False
        if self.state is not None:
            up_old, up_new = self.state.rotation[1], rotation[1]
            angle = math.degrees(math.acos(float(np.clip(up_old @ up_new, -1.0, 1.0))))
            settled = angle <= self.settle_deg and abs(camera["height"] - self.state.height) <= self.settle_m
        fits = 1 if self.state is None else self.state.fits + 1
        if settled and (self.state is None or not self.state.settled):
            log.info("world frame settled after %d fits (%d poses): camera %.2f m up, pitch %.1f deg", fits,
                     self._seen, camera["height"], camera["pitch_deg"])
        self.state = WorldState(rotation, position, {pid: float(scale[i]) for pid, i in self._ids.items()},
                                float(camera["height"]), float(camera["pitch_deg"]), float(camera["roll_deg"]),
                                int(camera["frames_used"]), fits, settled, float(timestamp))
        return True

    def to_world(self, person_id: int, pose: np.ndarray, root: np.ndarray) -> np.ndarray | None:
        """A root-relative pose (17, 3) and its root (3,), camera axes -> world joints (17, 3) float32, or
        None before the first fit."""
        if self.state is None:
            return None
        scale = self.state.person_scale.get(int(person_id), 1.0)
        joints = np.asarray(pose, np.float64) - np.asarray(pose, np.float64)[:1] + scale * np.asarray(root)
        return (joints @ self.state.rotation.T + self.state.position).astype(np.float32)
