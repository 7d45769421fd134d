"""Cutting a long video into overlapping segments and joining what the segments found (no Ray here).

A segment is decoded and searched for people on its own (``wildpose.distributed.work.detect_segment``): 2D
detection, clothing colours and the camera-rotation estimate, the >80% of a run's cost that parallelises. The
joined detections then go once through everything else (tracking, linking, lifting, world alignment:
``pipeline.result_from_detections``), exactly as a single run does. So the track ids, the 2D keypoints and the
camera-space 3D poses of a stitched video are those of a single local run, frame for frame, cut or no cut: the
tracker's linking window and the lifter's receptive field see the whole video, and no ids have to be matched
across a cut (docs/SCALING.md).

What does depend on the cut is the camera-rotation estimate, which is streamed: each frame is fitted to rays
anchored when its background points were first found, so a segment's estimator starts its own chain at the
segment's first decoded frame. Each segment is therefore decoded from ``overlap`` seconds before the frames it
owns, and its chain is continued from the previous segment's by the one rotation that best maps one onto the
other over those shared frames (``continue_rotations``). The difference to a single run is then one small fixed
rotation per segment (bounded and tested in tests/test_distributed.py), which moves world-space quantities
(trajectory, world poses) by that angle and leaves camera-space ones alone.

Frames are owned by timestamp: segment k owns the frames with ``boundary[k] <= t < boundary[k + 1]``, boundaries
placed half a frame between two frames so that no timestamp rounding can put a frame on both sides.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..types import Detections

DEFAULT_SEGMENT_SECONDS = 120.0
"""A video longer than this (of the part processed) is split into segments about this long."""

DEFAULT_OVERLAP_SECONDS = 1.0
"""Each segment after the first also decodes this much before its own frames, to continue the camera rotation."""

_EPS = 1e-6  # seconds: the tolerance video.read_frames compares start/end with


@dataclass(frozen=True)
class Segment:
    """One piece of a video: decode ``[start, end)`` (seconds, ``video.read_frames``' clock; None: the video's
    start or end), keep the frames with ``own_start <= t < own_end`` (None: no bound)."""

    index: int
    count: int
    start: float | None
    end: float | None
    own_start: float | None
    own_end: float | None

    def owns(self, timestamps: np.ndarray) -> np.ndarray:
        """(T,) bool: which of these frame times this segment owns."""
        t = np.asarray(timestamps, np.float64)
        keep = np.ones(len(t), bool)
        if self.own_start is not None:
            keep &= t >= self.own_start - _EPS
        if self.own_end is not None:
            keep &= t < self.own_end - _EPS
        return keep

    @property
    def name(self) -> str:
        return f"{self.index:04d}-of-{self.count:04d}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def plan_segments(duration: float | None, fps: float, *, segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
                  overlap_seconds: float = DEFAULT_OVERLAP_SECONDS, start: float | None = None,
                  end: float | None = None, restart_seconds: float | None = None) -> list[Segment]:
    """The segments of the part ``[start, end)`` of a video of ``duration`` seconds at ``fps``.

    One segment (the whole part, as a single run reads it) when the part is at most ``segment_seconds`` long or
    its duration is unknown; else ``ceil(length / segment_seconds)`` segments of equal length, each cut placed
    half a frame between two frames, each segment after the first decoding ``overlap_seconds`` more before its
    own frames.

    ``restart_seconds``: the period at which the 2D detector starts afresh (``detect2d.keyframes``, a preset that
    follows people between frames). Each cut then moves to the nearest restart time ``k * restart_seconds``
    (two cuts on one restart time become one), so the detector of the segment after it restarts at the same
    frame a single run does; segments own frames by :func:`~wildpose.detect2d.keyframes.restart_period`'s test.

    >>> [(s.start, s.own_start, s.end) for s in plan_segments(250.0, 25.0, segment_seconds=100.0)]
    [(None, None, 83.3), (82.3, 83.3, 166.66), (165.66, 166.66, None)]
    >>> [(s.start, s.own_start, s.end) for s in plan_segments(250.0, 25.0, segment_seconds=100.0,
    ...                                                     restart_seconds=4.0)]
    [(None, None, 84.0), (83.0, 84.0, 168.0), (167.0, 168.0, None)]
    """
    if not (segment_seconds > 0 and math.isfinite(segment_seconds)):
        raise ValueError(f"segment_seconds: expected a positive number of seconds, got {segment_seconds}")
    if not (overlap_seconds >= 0 and math.isfinite(overlap_seconds)):
        raise ValueError(f"overlap_seconds: expected seconds >= 0, got {overlap_seconds}")
    if restart_seconds is not None and not (restart_seconds > 0 and math.isfinite(restart_seconds)):
        raise ValueError(f"restart_seconds: expected a positive number of seconds, got {restart_seconds}")
    whole = [Segment(0, 1, start, end, None, None)]
    if duration is None or not math.isfinite(duration) or not (fps > 0):
        return whole
    first = max(0.0, start or 0.0)
    last = min(duration, end) if end is not None else duration
    length = last - first
    count = math.ceil(length / segment_seconds - 1e-9)
    if count <= 1:
        return whole
    equal = [first + k * length / count for k in range(1, count)]
    if restart_seconds is None:
        # cuts half a frame before a frame time: a frame's timestamp is never within rounding of a cut
        cuts = [round((round(c * fps) - 0.5) / fps, 6) for c in equal]
    else:
        from ..detect2d.keyframes import RESTART_TOLERANCE

        # on restart times; Segment.owns' tolerance equals restart_period's, so both agree on every frame
        assert _EPS == RESTART_TOLERANCE
        restarts = sorted({round(c / restart_seconds) * restart_seconds for c in equal})
        cuts = [round(c, 9) for c in restarts if first + _EPS < c < last - _EPS]
        if not cuts:
            return whole
    count = len(cuts) + 1
    segments = []
    for k in range(count):
        own_start = cuts[k - 1] if k > 0 else None
        own_end = cuts[k] if k < count - 1 else None
        seg_start = start if k == 0 else round(max(first, own_start - overlap_seconds), 6)
        segments.append(Segment(k, count, seg_start, own_end if own_end is not None else end, own_start, own_end))
    return segments


@dataclass
class SegmentOutput:
    """What a segment's worker found, for every frame it decoded (the overlap included).

    ``keypoints`` (M, 17, 3), ``boxes`` (M, 5), ``colours`` (M, 9) or None, ``frame_offsets`` (T + 1,) as in
    ``types.Detections``; ``timestamps`` (T,) seconds; the camera's ``rotations`` (T, 3, 3) from this segment's
    first frame, ``inliers``, ``tracked``, ``held`` (T,) as in ``camera_motion.CameraMotion``, or None for a static
    camera; ``damaged``/``retimed`` from decoding (``types.DecodeReport``).
    """

    timestamps: np.ndarray
    keypoints: np.ndarray
    boxes: np.ndarray
    frame_offsets: np.ndarray
    colours: np.ndarray | None = None
    rotations: np.ndarray | None = None
    inliers: np.ndarray | None = None
    tracked: np.ndarray | None = None
    held: np.ndarray | None = None
    damaged: int = 0
    retimed: int = 0

    def __post_init__(self):
        T = len(self.timestamps)
        if len(self.frame_offsets) != T + 1:
            raise ValueError(f"frame_offsets: expected {T + 1} values for {T} frames, got {len(self.frame_offsets)}")
        if self.rotations is not None and np.shape(self.rotations) != (T, 3, 3):
            raise ValueError(f"rotations: expected ({T}, 3, 3), got {np.shape(self.rotations)}")

    def __len__(self) -> int:
        return len(self.timestamps)

    @classmethod
    def from_detections(cls, detections: Detections, timestamps: np.ndarray, motion=None, *, damaged: int = 0,
                        retimed: int = 0) -> "SegmentOutput":
        """From ``pipeline.detect_video``'s Detections and timestamps and the estimator's CameraMotion (or None)."""
        return cls(np.asarray(timestamps, np.float64), detections.keypoints, detections.boxes,
                   detections.frame_offsets, detections.colours,
                   None if motion is None else motion.rotations, None if motion is None else motion.inliers,
                   None if motion is None else motion.tracked, None if motion is None else motion.held,
                   damaged=int(damaged), retimed=int(retimed))

    def save(self, path: str | os.PathLike, meta: dict) -> None:
        """Write an .npz (no pickles) atomically, with ``meta`` (JSON) saying what it was made from."""
        from ..atomic import atomic_path

        arrays = {"timestamps": self.timestamps, "keypoints": self.keypoints, "boxes": self.boxes,
                  "frame_offsets": np.asarray(self.frame_offsets, np.int64),
                  "meta": np.array(json.dumps({**meta, "damaged": self.damaged, "retimed": self.retimed}))}
        for name in ("colours", "rotations", "inliers", "tracked", "held"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple["SegmentOutput", dict]:
        """(output, meta) from ``save``'s file; FormatError naming the file when it is not one."""
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            meta = json.loads(str(data.pop("meta")))
            return cls(damaged=int(meta.get("damaged", 0)), retimed=int(meta.get("retimed", 0)), **data), meta
        except FileNotFoundError:
            raise FormatError("no such file", path) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"not a segment file ({exc})", path) from None

    @staticmethod
    def read_meta(path: str | os.PathLike) -> dict | None:
        """The file's meta, or None when it is missing or unreadable (never raises)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                return json.loads(str(z["meta"]))
        except Exception:  # noqa: BLE001 - any unreadable file is simply redone
            return None


def continue_rotations(previous: np.ndarray, current: np.ndarray, usable: np.ndarray | None = None) -> np.ndarray | None:
    """The rotation X continuing a segment's camera chain from the previous segment's over their shared frames.

    ``previous`` (N, 3, 3): those frames' rotations in the video's chain (camera-at-t-from-camera-at-frame-0),
    ``current`` (N, 3, 3): the same frames' rotations in the new segment's own chain (from its first frame). The
    new segment's rotations in the video's chain are ``current @ X``; X is the rotation closest to every
    ``current[i].T @ previous[i]`` (their chordal mean: the sum projected onto SO(3)). ``usable`` (N,) bool leaves
    out frames either estimator held. None when no frame is usable.
    """
    previous = np.asarray(previous, np.float64).reshape(-1, 3, 3)
    current = np.asarray(current, np.float64).reshape(-1, 3, 3)
    if usable is not None:
        previous, current = previous[usable], current[usable]
    if len(previous) == 0:
        return None
    from wildpose.camera_motion import _orthonormal

    # the rotation nearest the sum of current^T @ previous: the chordal mean of the per-frame hand-overs
    return _orthonormal(np.einsum("nji,njk->ik", current, previous))


def stitch(outputs: list[SegmentOutput], segments: list[Segment]):
    """Join the segments' outputs into one video's (Detections, timestamps (T,), CameraMotion or None).

    Each segment contributes the frames it owns; its camera rotations are continued from the previous segment's
    over the frames both decoded (``continue_rotations``). Where they share no usable frame (no overlap, or the
    background lost in all of it) the rotation is held across the cut and the cut's frame is marked held, as
    the estimator itself marks a frame whose rotation it could not follow.

    Raises ValueError when the segments do not join up: owned frames out of order, or a camera estimate in
    some segments and not in others.
    """
    from ..camera_motion import CameraMotion

    if len(outputs) != len(segments):
        raise ValueError(f"outputs: expected one per segment ({len(segments)}), got {len(outputs)}")
    with_motion = {out.rotations is not None for out in outputs if len(out)}
    if len(with_motion) > 1:
        raise ValueError("segments: a camera estimate in some segments and not in others")
    motion = with_motion == {True}
    keypoints, boxes, colours, counts, times = [], [], [], [], []
    rotations, inliers, tracked, held = [], [], [], []
    prev_times = prev_global = prev_held = None
    for out, seg in zip(outputs, segments):
        if not len(out):
            continue
        owned = seg.owns(out.timestamps)
        offsets = np.asarray(out.frame_offsets, np.int64)
        rows = np.concatenate([np.arange(offsets[t], offsets[t + 1]) for t in np.flatnonzero(owned)] or
                              [np.zeros(0, np.int64)]).astype(np.int64)
        keypoints.append(out.keypoints[rows])
        boxes.append(out.boxes[rows])
        if out.colours is not None:
            colours.append(out.colours[rows])
        counts.append(np.diff(offsets)[owned])
        times.append(out.timestamps[owned])
        if motion:
            local = np.asarray(out.rotations, np.float64)
            seg_held = np.asarray(out.held, bool).copy()
            if prev_global is None:
                x = np.eye(3)
            else:
                # the frames both decoded, matched by timestamp
                j = np.searchsorted(prev_times, out.timestamps - 1e-4)
                j = np.minimum(j, len(prev_times) - 1)
                shared = np.abs(prev_times[j] - out.timestamps) < 1e-4
                usable = shared.copy()
                usable[shared] = ~prev_held[j[shared]] & ~seg_held[shared]
                x = continue_rotations(prev_global[j[shared]], local[shared], usable[shared])
                if x is None:  # nothing to continue from: hold the last rotation across the cut
                    first = int(np.flatnonzero(owned)[0]) if owned.any() else 0
                    x = local[first].T @ prev_global[-1]
                    if owned.any():
                        seg_held[first] = True
            glob = local @ x
            rotations.append(glob[owned])
            inliers.append(np.asarray(out.inliers)[owned])
            tracked.append(np.asarray(out.tracked)[owned])
            held.append(seg_held[owned])
            prev_times, prev_global, prev_held = out.timestamps, glob, seg_held
    timestamps = np.concatenate(times) if times else np.zeros(0)
    if len(timestamps) > 1 and (np.diff(timestamps) <= 0).any():
        raise ValueError("segments: their frames do not follow one another in time")
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts) if counts else [])]).astype(np.int64)
    detections = Detections.from_arrays(np.concatenate(keypoints) if keypoints else np.zeros((0, 17, 3)),
                                        np.concatenate(boxes) if boxes else np.zeros((0, 5)), offsets,
                                        np.concatenate(colours) if colours and len(colours) == len(keypoints)
                                        else None)
    camera = None
    if motion:
        camera = CameraMotion(np.concatenate(rotations), np.concatenate(inliers), np.concatenate(tracked),
                              np.concatenate(held))
    return detections, timestamps, camera


def segment_dir(out_dir: str | os.PathLike) -> Path:
    """Where the segments of the output folder ``out_dir`` are kept until it is written: a hidden folder beside
    it (``OUT/.wildpose-segments/<name>/``), on the same file system the workers write results to."""
    out_dir = Path(out_dir)
    return out_dir.parent / ".wildpose-segments" / out_dir.name


__all__ = ["Segment", "SegmentOutput", "plan_segments", "stitch", "continue_rotations", "segment_dir",
           "DEFAULT_SEGMENT_SECONDS", "DEFAULT_OVERLAP_SECONDS"]
