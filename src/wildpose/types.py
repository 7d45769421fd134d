"""Plain data passed between stages: dataclasses of numpy arrays, validated once on construction.

Units and axes are the same everywhere:
- 2D keypoints: pixels of the *displayed* frame (rotation metadata applied), x right, y down, plus a score.
- 3D poses: metres, camera axes (x right, y down, z forward), root (pelvis) relative unless named otherwise.
- Time: seconds from the start of the video (presentation timestamps), float64.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


def _check(name: str, arr: np.ndarray, shape: tuple, dtype=None) -> None:
    """Raise ValueError naming the argument unless ``arr`` matches ``shape`` (None = any size)."""
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    if dtype is not None and arr.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {np.dtype(dtype)}, got {arr.dtype}")


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, as the user sees it (after rotation)."""

    path: str
    width: int  # displayed width in pixels (rotation applied)
    height: int  # displayed height in pixels
    fps: float  # average frame rate of the stream; timestamps are the truth for VFR video
    rotation: int  # clockwise degrees applied to decoded frames for display: 0, 90, 180 or 270
    num_frames: int | None  # from the container; None when it does not say
    duration: float | None  # seconds; None when unknown
    codec: str = ""

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.width, self.height)


@dataclass
class Frame:
    """One decoded frame, rotated for display."""

    index: int  # 0-based index among the frames yielded (after --start)
    timestamp: float  # seconds, presentation time
    image: np.ndarray  # (H, W, 3) uint8 RGB


@dataclass
class People2D:
    """Everyone found in one frame.

    keypoints: (N, 17, 3) float32, COCO-17 x, y in pixels and score in [0, 1]
    boxes: (N, 5) float32, x1, y1, x2, y2 in pixels and the person's score
    """

    keypoints: np.ndarray
    boxes: np.ndarray

    def __post_init__(self):
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32).reshape(-1, 17, 3)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 5)
        if len(self.keypoints) != len(self.boxes):
            raise ValueError(f"keypoints ({len(self.keypoints)}) and boxes ({len(self.boxes)}) differ in length")

    @classmethod
    def empty(cls) -> "People2D":
        return cls(np.zeros((0, 17, 3), np.float32), np.zeros((0, 5), np.float32))

    @property
    def scores(self) -> np.ndarray:
        return self.boxes[:, 4]

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index) -> "People2D":
        """Select people with an int, slice, index array or boolean mask."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return People2D(self.keypoints[index], self.boxes[index])


@dataclass
class Tracks:
    """People followed over a whole video (or segment).

    keypoints_2d: (P, T, 17, 3) float32; NaN where track p is absent in frame t
    track_ids: (P,) int32, stable ids (unique, sorted by first appearance)
    interpolated: (P, T) bool, True where the keypoints were filled in, not detected
    timestamps: (T,) float64 seconds
    """

    keypoints_2d: np.ndarray
    track_ids: np.ndarray
    interpolated: np.ndarray
    timestamps: np.ndarray

    def __post_init__(self):
        self.keypoints_2d = np.asarray(self.keypoints_2d, np.float32)
        self.track_ids = np.asarray(self.track_ids, np.int32)
        self.interpolated = np.asarray(self.interpolated, bool)
        self.timestamps = np.asarray(self.timestamps, np.float64)
        P, T = len(self.track_ids), len(self.timestamps)
        _check("keypoints_2d", self.keypoints_2d, (P, T, 17, 3))
        _check("interpolated", self.interpolated, (P, T))

    @property
    def present(self) -> np.ndarray:
        """(P, T) bool: the track has keypoints (detected or interpolated) in that frame."""
        return ~np.isnan(self.keypoints_2d[..., 0]).all(-1)

    def __len__(self) -> int:
        return len(self.track_ids)


@dataclass
class Result:
    """Everything ``poses.npz`` holds for one video. See ``wildpose.formats.result`` for saving/loading."""

    keypoints_2d: np.ndarray  # (P, T, 17, 3) float32, COCO-17 pixels + score, NaN where absent
    poses_3d: np.ndarray  # (P, T, 17, 3) float32, H36M-17 metres, camera axes, root-relative, NaN where absent
    track_ids: np.ndarray  # (P,) int32
    timestamps: np.ndarray  # (T,) float64 seconds
    fps: float
    image_size: np.ndarray  # (2,) int (w, h)
    interpolated: np.ndarray  # (P, T) bool
    extras: dict = dataclasses.field(default_factory=dict)  # further named arrays written to poses.npz

    def __post_init__(self):
        self.keypoints_2d = np.asarray(self.keypoints_2d, np.float32)
        self.poses_3d = np.asarray(self.poses_3d, np.float32)
        self.track_ids = np.asarray(self.track_ids, np.int32)
        self.timestamps = np.asarray(self.timestamps, np.float64)
        self.image_size = np.asarray(self.image_size, np.int64).reshape(2)
        self.interpolated = np.asarray(self.interpolated, bool)
        self.fps = float(self.fps)
        P, T = len(self.track_ids), len(self.timestamps)
        _check("keypoints_2d", self.keypoints_2d, (P, T, 17, 3))
        _check("poses_3d", self.poses_3d, (P, T, 17, 3))
        _check("interpolated", self.interpolated, (P, T))

    @property
    def present(self) -> np.ndarray:
        """(P, T) bool: frames where track p has a pose."""
        return ~np.isnan(self.poses_3d[..., 0]).all(-1)

    @property
    def main_track(self) -> int:
        """Index (not id) of the track present in the most frames: the reference's single subject."""
        if len(self.track_ids) == 0:
            raise ValueError("no tracks")
        return int(np.argmax(self.present.sum(1)))
