"""Plain data passed between stages: dataclasses of numpy arrays, validated once on construction.

Units and axes are the same everywhere:
- 2D keypoints: pixels of the *displayed* frame (rotation metadata applied), x right, y down, plus a score.
- 3D poses: metres, camera axes (x right, y down, z forward), root (pelvis) relative unless named otherwise.
- Time: seconds from the start of the video (presentation timestamps), float64.

People over time are stored *sparse*: one row per person-frame, the rows of one track together and in frame
order (:class:`TrackRows`). Memory and files then grow with what was seen, not with tracks x frames: a street
scene of an hour has thousands of passers-by, each in view for seconds. ``dense`` views give the (T, ...) array
of one track, or the (P, T, ...) array of a small result, when a caller wants one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Iterator

import numpy as np

if TYPE_CHECKING:  # types.py stays import-light; camera.py depends on numpy only
    from .camera import CameraIntrinsics


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
class DecodeReport:
    """What decoding had to repair in one video, filled in by ``video.read_frames`` as it goes."""

    damaged: int = 0  # frames whose data the decoder rejected: left out (their time is a gap)
    retimed: int = 0  # frames timed by index and frame rate: the container gave no or repeated timestamps
    first_damage: str = ""  # where the first damaged frame was, and FFmpeg's words for it


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


class Detections:
    """Everyone found in every frame of a video, in two growing arrays (not a Python object per frame).

    ``keypoints`` (M, 17, 3) float32 and ``boxes`` (M, 5) float32 hold the M detections of all frames in frame
    order; ``frame_offsets`` (T + 1,) int64 says where each frame's start: frame t's people are rows
    ``frame_offsets[t]:frame_offsets[t + 1]``. A sequence of People2D: ``len`` is the number of frames and
    ``detections[t]`` is frame t's People2D (views, no copy), so it goes wherever a list of them does.
    ``colours`` (M, 9) float32, or None: each detection's clothing colours (``link.colour_descriptors``),
    measured while decoding so that tracklet linking can compare appearance without keeping frames.
    """

    _GROWTH = 1.5  # capacity grows geometrically: appends are amortised O(1), the spare room at most half

    def __init__(self, capacity: int = 1024):
        self._keypoints = np.empty((max(1, capacity), 17, 3), np.float32)
        self._boxes = np.empty((max(1, capacity), 5), np.float32)
        self._offsets = [0]
        self._size = 0
        self._colours: np.ndarray | None = None

    @classmethod
    def from_frames(cls, frames) -> "Detections":
        """From any sequence of People2D (a list of them, or a Detections, returned as it is)."""
        if isinstance(frames, Detections):
            return frames
        frames = list(frames)
        out = cls(capacity=sum(len(f) for f in frames))
        for people in frames:
            out.append(people)
        return out

    @classmethod
    def from_arrays(cls, keypoints: np.ndarray, boxes: np.ndarray, frame_offsets: np.ndarray,
                    colours: np.ndarray | None = None) -> "Detections":
        """From detections already in frame order: (M, 17, 3), (M, 5) and (T + 1,) offsets, optionally (M, 9)
        colours (no copy where the dtypes are float32)."""
        out = cls(capacity=1)
        out._keypoints = np.asarray(keypoints, np.float32).reshape(-1, 17, 3)
        out._boxes = np.asarray(boxes, np.float32).reshape(-1, 5)
        offsets = np.asarray(frame_offsets, np.int64).reshape(-1)
        M = len(out._boxes)
        if (len(out._keypoints) != M or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != M
                or (np.diff(offsets) < 0).any()):
            raise ValueError(f"frame_offsets: expected non-decreasing offsets from 0 to {M}, got {len(offsets)} "
                             f"values ending at {offsets[-1] if len(offsets) else None}")
        out._offsets = offsets.tolist()
        out._size = M
        if colours is not None:
            out._colours = np.asarray(colours, np.float32).reshape(M, -1)
        return out

    def append(self, people: People2D, colours: np.ndarray | None = None) -> None:
        """Add the next frame's people, and their (N, 9) colours if the detections carry colours (all frames
        or none)."""
        n = len(people)
        if (colours is not None) != (self._colours is not None) and (self._size or len(self._offsets) > 1):
            raise ValueError("colours: give them for every frame or for none")
        if colours is not None:
            colours = np.asarray(colours, np.float32)
            if colours.ndim != 2 or len(colours) != n:
                raise ValueError(f"colours: expected ({n}, D), one row per person, got {colours.shape}")
            if self._colours is None:
                self._colours = np.empty((len(self._boxes), colours.shape[1]), np.float32)
        if self._size + n > len(self._boxes):
            capacity = max(self._size + n, int(len(self._boxes) * self._GROWTH) + 1)
            self._keypoints = _grown(self._keypoints, capacity, self._size)
            self._boxes = _grown(self._boxes, capacity, self._size)
            if self._colours is not None:
                self._colours = _grown(self._colours, capacity, self._size)
        self._keypoints[self._size:self._size + n] = people.keypoints
        self._boxes[self._size:self._size + n] = people.boxes
        if colours is not None:
            self._colours[self._size:self._size + n] = colours
        self._size += n
        self._offsets.append(self._size)

    @property
    def keypoints(self) -> np.ndarray:
        return self._keypoints[:self._size]

    @property
    def boxes(self) -> np.ndarray:
        return self._boxes[:self._size]

    @property
    def colours(self) -> np.ndarray | None:
        return None if self._colours is None else self._colours[:self._size]

    @property
    def frame_offsets(self) -> np.ndarray:
        return np.asarray(self._offsets, np.int64)

    @property
    def num_detections(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held, spare capacity included."""
        colours = 0 if self._colours is None else self._colours.nbytes
        return self._keypoints.nbytes + self._boxes.nbytes + colours + 8 * len(self._offsets)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, t: int) -> People2D:
        if not -len(self) <= t < len(self):
            raise IndexError(f"frame {t} of {len(self)}")
        t %= len(self)
        lo, hi = self._offsets[t], self._offsets[t + 1]
        return People2D(self._keypoints[lo:hi], self._boxes[lo:hi])

    def __iter__(self) -> Iterator[People2D]:
        return (self[t] for t in range(len(self)))


def _grown(arr: np.ndarray, capacity: int, used: int) -> np.ndarray:
    out = np.empty((capacity,) + arr.shape[1:], arr.dtype)
    out[:used] = arr[:used]
    return out


@dataclass
class TrackRows:
    """The sparse layout of people over time, shared by :class:`Tracks` and :class:`Result`.

    Every per-person array has one row per person-frame (N rows). The rows of track p are
    ``offsets[p]:offsets[p + 1]`` (``track(p)``), in increasing frame order; ``frame_index[i]`` is row i's frame
    (an index into ``timestamps``). A track may skip frames: tracks that wildpose makes fill gaps of up to
    ``TrackerConfig.max_gap`` by interpolation (marked), and skip the frames of longer gaps that tracklet
    linking bridged (the person was out of sight; ``spans()`` gives the runs between them).

    track_ids: (P,) int32, stable ids
    track_lengths: (P,) int64, rows of each track
    frame_index: (N,) int64, each row's frame
    timestamps: (T,) float64 seconds, every frame of the video (or segment)
    """

    track_ids: np.ndarray
    track_lengths: np.ndarray
    frame_index: np.ndarray
    timestamps: np.ndarray

    def _check_layout(self) -> None:
        self.track_ids = np.asarray(self.track_ids, np.int32).reshape(-1)
        self.track_lengths = np.asarray(self.track_lengths, np.int64).reshape(-1)
        self.frame_index = np.asarray(self.frame_index, np.int64).reshape(-1)
        self.timestamps = np.asarray(self.timestamps, np.float64).reshape(-1)
        P, N, T = len(self.track_ids), len(self.frame_index), len(self.timestamps)
        if len(self.track_lengths) != P:
            raise ValueError(f"track_lengths: expected {P} values (one per track), got {len(self.track_lengths)}")
        if (self.track_lengths < 0).any() or int(self.track_lengths.sum()) != N:
            raise ValueError(f"track_lengths: must be >= 0 and add up to the {N} rows, got {self.track_lengths}")
        if N and (self.frame_index.min() < 0 or self.frame_index.max() >= T):
            raise ValueError(f"frame_index: expected frames in [0, {T}), got {self.frame_index.min()}.."
                             f"{self.frame_index.max()}")
        track = self.row_track()
        same = track[1:] == track[:-1]
        if (np.diff(self.frame_index)[same] <= 0).any():
            raise ValueError("frame_index: frames must increase within each track")

    def _check_rows(self, name: str, arr: np.ndarray, tail: tuple = ()) -> None:
        _check(name, arr, (len(self.frame_index),) + tail)

    # -- the layout --------------------------------------------------------------------------------------------
    @property
    def offsets(self) -> np.ndarray:
        """(P + 1,) int64: track p's rows are ``offsets[p]:offsets[p + 1]``."""
        return np.concatenate([[0], np.cumsum(self.track_lengths)]).astype(np.int64)

    @property
    def num_frames(self) -> int:
        return len(self.timestamps)

    @property
    def num_rows(self) -> int:
        return len(self.frame_index)

    def __len__(self) -> int:
        return len(self.track_ids)

    def track(self, p: int) -> slice:
        """The rows of track p (its position, not its id), as a slice: ``result.poses_3d[result.track(p)]``."""
        if not 0 <= p < len(self.track_ids):
            raise IndexError(f"track {p} of {len(self.track_ids)}")
        o = self.offsets
        return slice(int(o[p]), int(o[p + 1]))

    def frames(self, p: int) -> np.ndarray:
        """(n,) the frames track p is in."""
        return self.frame_index[self.track(p)]

    def row_track(self) -> np.ndarray:
        """(N,) int64: the track (position) of every row."""
        return np.repeat(np.arange(len(self.track_ids), dtype=np.int64), self.track_lengths)

    def spans(self) -> Iterator[tuple[int, slice]]:
        """(track, rows) for every run of consecutive frames of every track: each run has its own timestamps,
        so a stage that works in time (lifting, trajectory) sees the true time between frames."""
        o = self.offsets
        for p in range(len(self.track_ids)):
            lo, hi = int(o[p]), int(o[p + 1])
            if hi == lo:
                continue
            cuts = np.flatnonzero(np.diff(self.frame_index[lo:hi]) > 1) + 1 + lo
            edges = [lo, *cuts.tolist(), hi]
            for a, b in zip(edges[:-1], edges[1:]):
                yield p, slice(a, b)

    def by_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """(order, frame_offsets): ``order`` (N,) sorts the rows by frame (by track within a frame), and frame
        t's rows are ``order[frame_offsets[t]:frame_offsets[t + 1]]``: per-frame access without (P, T) arrays."""
        order = np.lexsort((self.row_track(), self.frame_index))
        counts = np.bincount(self.frame_index, minlength=self.num_frames)
        return order, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def nearest_rows(self, p: int, frames: np.ndarray) -> np.ndarray:
        """For each of ``frames``, the row of track p nearest in frame (rows of the whole layout): holds a
        track's first/last row before/after it and fills its holes, as the reference's dataset preparation
        holds the edges."""
        rows = self.track(p)
        idx = self.frame_index[rows]
        if len(idx) == 0:
            raise ValueError(f"track {p} has no rows")
        frames = np.asarray(frames)
        after = np.clip(np.searchsorted(idx, frames), 0, len(idx) - 1)  # first row at or after each frame
        before = np.clip(after - 1, 0, len(idx) - 1)
        nearest = np.where(np.abs(idx[before] - frames) < np.abs(idx[after] - frames), before, after)
        return rows.start + nearest

    def dense(self, values: np.ndarray, p: int | None = None, fill=np.nan) -> np.ndarray:
        """Per-row ``values`` (N, ...) as a dense array: (T, ...) for track p, or (P, T, ...) for every track
        (for small results: it allocates tracks x frames). ``fill`` where the track is absent."""
        values = np.asarray(values)
        if len(values) != self.num_rows:
            raise ValueError(f"values: expected {self.num_rows} rows, got {len(values)}")
        dtype = np.result_type(values.dtype, np.min_scalar_type(fill)) if values.dtype.kind != "b" else bool
        if p is not None:
            out = np.full((self.num_frames,) + values.shape[1:], fill, dtype)
            rows = self.track(p)
            out[self.frame_index[rows]] = values[rows]
            return out
        out = np.full((len(self.track_ids), self.num_frames) + values.shape[1:], fill, dtype)
        out[self.row_track(), self.frame_index] = values
        return out

    def present(self) -> np.ndarray:
        """(P, T) bool, True where a track has a row: a dense view (tracks x frames), for small results."""
        return self.dense(np.ones(self.num_rows, bool), fill=False)

    def seen_totals(self) -> np.ndarray | None:
        """(P,) float64: each track's per-row mean keypoint scores added up (frames present x how well seen);
        None where the rows hold no keypoints."""
        keypoints = getattr(self, "keypoints_2d", None)
        if keypoints is None:
            return None
        scores = np.nan_to_num(np.asarray(keypoints[..., 2], np.float64)).mean(axis=-1)
        return np.bincount(self.row_track(), weights=scores, minlength=len(self.track_ids))

    @property
    def main_track(self) -> int:
        """Index (not id) of the reference's single subject: the track with the highest :meth:`seen_totals`;
        without keypoints or scores, the track present in the most frames.
        The reference kept each frame's best-scoring person; a partly seen bystander in a corner for the whole
        clip (mean score 0.23 on the shared crowd) must not win over a runner seen in nearly every frame (0.52).
        """
        if len(self.track_ids) == 0:
            raise ValueError("no tracks")
        totals = self.seen_totals()
        if totals is None:
            return int(np.argmax(self.track_lengths))
        # the highest total; among equal totals (no scores at all) the longest; then the earlier
        return int(np.lexsort((-np.arange(len(totals)), self.track_lengths, totals))[-1])

    _ROW_FIELDS: ClassVar[tuple[str, ...]] = ()  # the per-row arrays of a subclass, for to_dense

    def to_dense(self) -> dict[str, np.ndarray]:
        """Every per-row array as (P, T, ...) (NaN, or False for flags, where a track is absent), plus
        ``present`` (P, T): the 0.1 layout, for small results and for code written against it. Allocates
        tracks x frames: on long videos use the rows (``track``, ``by_frame``) instead."""
        out = {"present": self.present()}
        for name in self._ROW_FIELDS:
            values = getattr(self, name)
            if values is not None:
                out[name] = self.dense(values, fill=False if values.dtype == bool else np.nan)
        return out

    def layout(self) -> dict:
        """The layout fields, to build another TrackRows over the same rows."""
        return {"track_ids": self.track_ids, "track_lengths": self.track_lengths, "frame_index": self.frame_index,
                "timestamps": self.timestamps}


def rows_from_dense(present: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, T) bool -> (track_lengths (P,), frame_index (N,), (row track (N,), row frame (N,)) indices into the
    dense arrays) for converting (P, T, ...) arrays to rows."""
    present = np.asarray(present, bool)
    p_idx, t_idx = np.nonzero(present)  # row-major: grouped by track, frames increasing
    return present.sum(1).astype(np.int64), t_idx.astype(np.int64), (p_idx, t_idx)


@dataclass
class Tracks(TrackRows):
    """People followed over a whole video (or segment), sparse (see :class:`TrackRows`).

    keypoints_2d: (N, 17, 3) float32, COCO-17 pixels + score of each person-frame
    interpolated: (N,) bool, True where the keypoints were filled in over a short gap, not detected
    """

    keypoints_2d: np.ndarray = None
    interpolated: np.ndarray = None
    _ROW_FIELDS = ("keypoints_2d", "interpolated")

    def __post_init__(self):
        self._check_layout()
        self.keypoints_2d = np.asarray(self.keypoints_2d, np.float32)
        self.interpolated = np.asarray(self.interpolated, bool)
        self._check_rows("keypoints_2d", self.keypoints_2d, (17, 3))
        self._check_rows("interpolated", self.interpolated)

    @classmethod
    def from_dense(cls, keypoints_2d: np.ndarray, track_ids: np.ndarray, interpolated: np.ndarray,
                   timestamps: np.ndarray) -> "Tracks":
        """From (P, T, 17, 3) keypoints, NaN where a track is absent (the 0.1 layout)."""
        kp = np.asarray(keypoints_2d, np.float32)
        T = len(np.asarray(timestamps).reshape(-1))
        _check("keypoints_2d", kp, (len(np.asarray(track_ids).reshape(-1)), T, 17, 3))
        interpolated = np.asarray(interpolated, bool)
        _check("interpolated", interpolated, kp.shape[:2])
        lengths, frame_index, at = rows_from_dense(~np.isnan(kp[..., :2]).all((-1, -2)))
        return cls(track_ids, lengths, frame_index, timestamps, kp[at], interpolated[at])

    @classmethod
    def empty(cls, timestamps: np.ndarray) -> "Tracks":
        return cls(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64), timestamps,
                   np.zeros((0, 17, 3), np.float32), np.zeros(0, bool))


@dataclass
class Camera:
    """The camera the 3D results were computed with, and how it stood and turned in the world.

    intrinsics: wildpose.camera.CameraIntrinsics (pixels; the lens model whose distortion was removed)
    focal_length_known: False when the focal length was the default guess (metric depths rest on it)
    rotation: (3, 3) float32 world-from-camera rotation of the first frame
    position: (3,) float32 the camera in the world (x = z = 0, at its estimated height)
    rotations: (T, 3, 3) float32 camera-at-frame-t-from-camera-at-frame-0 (identities for a static camera), so
        frame t's world-from-camera rotation is ``rotation @ rotations[t].T``
    static: True when the camera was taken as static
    rotation_held: (T,) bool, frames whose rotation could not be measured (the previous one was kept)
    """

    intrinsics: "CameraIntrinsics"
    focal_length_known: bool
    rotation: np.ndarray
    position: np.ndarray
    rotations: np.ndarray
    static: bool
    rotation_held: np.ndarray

    def __post_init__(self):
        self.rotation = np.asarray(self.rotation, np.float32)
        self.position = np.asarray(self.position, np.float32).reshape(-1)
        self.rotations = np.asarray(self.rotations, np.float32)
        self.rotation_held = np.asarray(self.rotation_held, bool).reshape(-1)
        self.static, self.focal_length_known = bool(self.static), bool(self.focal_length_known)
        _check("rotation", self.rotation, (3, 3))
        _check("position", self.position, (3,))
        _check("rotations", self.rotations, (None, 3, 3))
        _check("rotation_held", self.rotation_held, (len(self.rotations),))

    def world_from_camera(self, t: int | np.ndarray) -> np.ndarray:
        """(3, 3) (or (n, 3, 3)) world-from-camera rotation of frame(s) t."""
        return self.rotation @ np.swapaxes(self.rotations[t], -1, -2)


@dataclass
class Result(TrackRows):
    """Everything ``poses.npz`` holds for one video, sparse (see :class:`TrackRows`; saved and loaded by
    ``wildpose.formats.result``).

    keypoints_2d: (N, 17, 3) float32, COCO-17 pixels + score
    poses_3d: (N, 17, 3) float32, H36M-17 metres, camera axes, root-relative
    interpolated: (N,) bool, keypoints filled in over a short gap, not detected
    fps: the video's average frame rate
    image_size: (2,) int (w, h) of the displayed frame
    trajectory: (N, 3) float32 or None, each pelvis in its frame's camera axes, metres
    poses_world: (N, 17, 3) float32 or None, one fixed world frame: metres, y up, the floor at y = 0
    camera: Camera or None
    extras: further named plain arrays written to poses.npz (and the unknown keys of a loaded file)
    """

    keypoints_2d: np.ndarray = None
    poses_3d: np.ndarray = None
    interpolated: np.ndarray = None
    fps: float = 0.0
    image_size: np.ndarray = None
    trajectory: np.ndarray | None = None
    poses_world: np.ndarray | None = None
    camera: Camera | None = None
    extras: dict = dataclasses.field(default_factory=dict)
    _ROW_FIELDS = ("keypoints_2d", "poses_3d", "interpolated", "trajectory", "poses_world")

    def __post_init__(self):
        self._check_layout()
        self.keypoints_2d = np.asarray(self.keypoints_2d, np.float32)
        self.poses_3d = np.asarray(self.poses_3d, np.float32)
        self.interpolated = np.asarray(self.interpolated, bool)
        self.image_size = np.asarray(self.image_size, np.int64).reshape(2)
        self.fps = float(self.fps)
        self._check_rows("keypoints_2d", self.keypoints_2d, (17, 3))
        self._check_rows("poses_3d", self.poses_3d, (17, 3))
        self._check_rows("interpolated", self.interpolated)
        if self.trajectory is not None:
            self.trajectory = np.asarray(self.trajectory, np.float32)
            self._check_rows("trajectory", self.trajectory, (3,))
        if self.poses_world is not None:
            self.poses_world = np.asarray(self.poses_world, np.float32)
            self._check_rows("poses_world", self.poses_world, (17, 3))
        if self.camera is not None and len(self.camera.rotations) != self.num_frames:
            raise ValueError(f"camera.rotations: expected {self.num_frames} frames, got {len(self.camera.rotations)}")

    @property
    def poses_3d_camera(self) -> np.ndarray | None:
        """(N, 17, 3) float32 absolute joints in camera space, ``poses_3d + trajectory`` (computed on access)."""
        if self.trajectory is None:
            return None
        return self.poses_3d + self.trajectory[:, None, :]

    @classmethod
    def from_dense(cls, keypoints_2d: np.ndarray, poses_3d: np.ndarray, track_ids: np.ndarray,
                   timestamps: np.ndarray, fps: float, image_size, interpolated: np.ndarray, *,
                   trajectory: np.ndarray | None = None, poses_world: np.ndarray | None = None,
                   camera: Camera | None = None, extras: dict | None = None) -> "Result":
        """From (P, T, ...) arrays, NaN where a track is absent (the 0.1 layout); a row per frame that has a
        pose."""
        poses_3d = np.asarray(poses_3d, np.float32)
        T = len(np.asarray(timestamps).reshape(-1))
        _check("poses_3d", poses_3d, (len(np.asarray(track_ids).reshape(-1)), T, 17, 3))
        lengths, frame_index, at = rows_from_dense(~np.isnan(poses_3d[..., 0]).all(-1))

        def rows(values, name, tail):
            if values is None:
                return None
            values = np.asarray(values)
            _check(name, values, poses_3d.shape[:2] + tail)
            return values[at]

        return cls(track_ids, lengths, frame_index, timestamps, keypoints_2d=rows(keypoints_2d, "keypoints_2d", (17, 3)),
                   poses_3d=poses_3d[at], interpolated=rows(interpolated, "interpolated", ()), fps=fps,
                   image_size=image_size, trajectory=rows(trajectory, "trajectory", (3,)),
                   poses_world=rows(poses_world, "poses_world", (17, 3)), camera=camera, extras=extras or {})

    @classmethod
    def from_tracks(cls, tracks: Tracks, poses_3d: np.ndarray, fps: float, image_size, **fields) -> "Result":
        """A result over the same rows as ``tracks`` (their keypoints, ids and timestamps)."""
        return cls(**tracks.layout(), keypoints_2d=tracks.keypoints_2d, poses_3d=poses_3d,
                   interpolated=tracks.interpolated, fps=fps, image_size=image_size, **fields)

    def tracks(self) -> Tracks:
        """The 2D part: the tracks this result was lifted from."""
        return Tracks(**self.layout(), keypoints_2d=self.keypoints_2d, interpolated=self.interpolated)
