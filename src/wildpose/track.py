"""Follow people from frame to frame: online matching, then gap filling, splitting and selection.

Two layers:

- :class:`Tracker` is online: ``update(people, timestamp)`` gives each detection of a frame a track id (or -1).
  Each live track predicts where it is now (its last box and keypoints moved by a smoothed constant velocity,
  or held in place), the cost of pairing a track with a detection is ``1 - similarity`` where similarity is a
  weighted mean of box IoU and OKS keypoint similarity, and pairs are chosen by optimal bipartite matching
  (:func:`scipy.optimize.linear_sum_assignment`), accepting only pairs cheaper than ``max_cost``. As in
  ByteTrack, detections scored between ``low_score`` and ``min_score`` get a second chance: they may continue
  a track that found no confident detection (small, far people's scores dip from frame to frame; a stricter
  ``low_max_cost`` applies) but never start one. A track that has gone ``max_missed`` seconds without a
  detection is dropped.
- :func:`track_people` runs the tracker over a whole video and builds the sparse :class:`~wildpose.types.Tracks`
  (one row per person-frame, so memory grows with what was seen, not with tracks x frames):
  gaps of at most ``max_gap`` seconds inside a track are filled by linear interpolation in time (marked
  ``interpolated``), longer gaps split the track in two; then, offline, :mod:`wildpose.link` joins the pieces
  ("tracklets") that belong to one person across gaps of up to ``link_max_gap`` seconds, occlusions and
  crossings (a global assignment on motion, size, body shape and clothing colours; the frames between linked
  pieces longer than ``max_gap`` stay holes, nothing is invented there); tracks with fewer than
  ``min_track_length`` detected frames are dropped, ``max_people`` keeps the tracks covering the most frames,
  and ``single`` reproduces the reference's one-person behaviour instead. ``link_max_gap=0`` gives the online
  tracker's tracks (what a causal, live run can decide).

Why our own code rather than a tracking library: norfair 2.3 pins ``numpy<2`` (the project runs numpy 2) and
pulls filterpy and matplotlib; supervision's ByteTrack matches boxes only (no keypoints) and brings matplotlib,
pillow, requests and PyYAML; neither fills gaps or splits tracks, which is most of this module. The matching
itself is a few lines on top of scipy, which the project already depends on.

All times are seconds (presentation timestamps), so variable-frame-rate video behaves like constant-rate video.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from wildpose.geometry import box_iou
from wildpose.skeleton import COCO_SIGMAS
from wildpose.types import Detections, People2D, Tracks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackerConfig:
    """How people are followed. Scores refer to MoveNet MultiPose's person score (the box's fifth column).

    Attributes
    ----------
    min_score : float
        Detections scoring at least this may start a track (and are matched first). 0.2: MoveNet scores
        small (60 px) people around 0.2-0.4, so the thresholds of larger models (0.5-0.7) lose them.
    low_score : float
        Detections scoring in ``[low_score, min_score)`` may only continue a track that found no better
        detection in that frame (ByteTrack's second chance); below ``low_score`` they are ignored.
    iou_weight, oks_weight : float
        Weights of box IoU and OKS keypoint similarity in the pairing similarity (a weighted mean). Where a
        track and a detection share no keypoint scored ``keypoint_score`` or more, IoU alone is used.
    keypoint_score : float
        Keypoints scored below this are left out of OKS.
    max_cost : float
        A track and a confident detection are paired only if ``1 - similarity`` is at most this (0.8:
        similarity of at least 0.2, e.g. boxes that still overlap by 20 % after prediction, which lets a
        track pick its person up again after a few missed frames).
    low_max_cost : float
        The same for the second chance of low-score detections, stricter (as ByteTrack's second stage):
        in crowds, low scores often belong to boxes that straddle two people.
    motion : {"velocity", "constant"}
        How a track predicts its box at the next timestamp: constant velocity of the box centre (smoothed
        over recent matches), or constant position.
    velocity_smoothing : float
        Weight of the newest velocity measurement in the exponential average, in (0, 1].
    max_missed : float
        Seconds a track stays matchable after its last detection.
    max_gap : float
        Seconds between two consecutive detections of a track up to which the frames between them are
        filled by linear interpolation; a longer gap splits the track into two tracks (two ids).
    min_track_length : int
        Tracks (after splitting) with fewer detected frames than this are dropped as spurious; in a video of
        fewer frames (a still image, a burst), a track must be detected in all of them.
    max_people : int or None
        Keep only the N tracks present (detected or interpolated) in the most frames; None keeps all.
    single : bool
        The reference's behaviour: in every frame keep only the highest-scoring person (score at least
        ``min_score``), as one track; frames without one are filled by linear interpolation and the frames
        before the first and after the last detection hold the nearest detection. Ignores the matching.
    link_max_gap : float
        Offline tracklet linking (:mod:`wildpose.link`): the longest time in seconds between the end of one
        tracklet and the start of another that may be joined into one person. 3 s: a person behind a post or
        another person, or stepping out of the frame for a moment. 0 turns linking off (the online tracker's
        tracks, as a live, causal run gets them).
    link_max_cost : float
        A link is made only where its cost (the mean squared z-score of its cues) is below this. 1.0: the true
        links of the walker composites cost at most 0.5; on a synthetic street of identical bodies without
        colours (benchmarks/bench_long.py) 2.0 joined 40 of 250 different people, 1.0 joins 16.
    link_gate : float
        A link is forbidden when any one cue lies more than this many spreads off.
    """

    min_score: float = 0.2
    low_score: float = 0.1
    iou_weight: float = 1.0
    oks_weight: float = 1.0
    keypoint_score: float = 0.1
    max_cost: float = 0.8
    low_max_cost: float = 0.5
    motion: Literal["velocity", "constant"] = "velocity"
    velocity_smoothing: float = 0.5
    max_missed: float = 1.0
    max_gap: float = 0.5
    min_track_length: int = 10
    max_people: int | None = None
    single: bool = False
    link_max_gap: float = 3.0
    link_max_cost: float = 1.0
    link_gate: float = 3.0

    def __post_init__(self):
        if not 0.0 <= self.low_score <= self.min_score:
            raise ValueError(f"low_score must lie in [0, min_score], got {self.low_score} (min_score {self.min_score})")
        if self.iou_weight < 0 or self.oks_weight < 0 or self.iou_weight + self.oks_weight <= 0:
            raise ValueError(f"iou_weight and oks_weight must be >= 0 and not both 0, got {self.iou_weight}, "
                             f"{self.oks_weight}")
        if not (0.0 < self.max_cost <= 1.0 and 0.0 < self.low_max_cost <= 1.0):
            raise ValueError(f"max_cost and low_max_cost must lie in (0, 1], got {self.max_cost}, "
                             f"{self.low_max_cost}")
        if self.motion not in ("velocity", "constant"):
            raise ValueError(f"motion must be 'velocity' or 'constant', got {self.motion!r}")
        if not 0.0 < self.velocity_smoothing <= 1.0:
            raise ValueError(f"velocity_smoothing must lie in (0, 1], got {self.velocity_smoothing}")
        if self.max_missed < 0 or self.max_gap < 0:
            raise ValueError(f"max_missed and max_gap must be >= 0 seconds, got {self.max_missed}, {self.max_gap}")
        if self.min_track_length < 1:
            raise ValueError(f"min_track_length must be >= 1 frame, got {self.min_track_length}")
        if self.max_people is not None and self.max_people < 1:
            raise ValueError(f"max_people must be >= 1 or None, got {self.max_people}")
        if self.link_max_gap < 0 or self.link_max_cost <= 0 or self.link_gate <= 0:
            raise ValueError(f"link_max_gap must be >= 0 seconds, link_max_cost and link_gate > 0, got "
                             f"{self.link_max_gap}, {self.link_max_cost}, {self.link_gate}")


def keypoint_similarity(a: np.ndarray, b: np.ndarray, areas: np.ndarray,
                        min_score: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """OKS-style similarity of every pose in ``a`` with every pose in ``b``.

    Per keypoint ``exp(-d^2 / (2 * area * (2 * sigma)^2))`` with COCO's sigmas, averaged over the keypoints
    scored at least ``min_score`` in both poses.

    Parameters
    ----------
    a : (M, 17, 3) x, y pixels and score
    b : (N, 17, 3)
    areas : (M,) pixel areas that set the scale (the boxes of ``a``)
    min_score : keypoints scored below this in either pose are not compared

    Returns
    -------
    oks : (M, N) float64 in [0, 1]; 0 where no keypoint is shared
    shared : (M, N) bool, True where at least one keypoint was compared
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # (M, N, 17)
    scale = 2.0 * np.maximum(np.asarray(areas, np.float64), 1.0)[:, None, None] * (2 * COCO_SIGMAS) ** 2
    visible = (a[:, None, :, 2] >= min_score) & (b[None, :, :, 2] >= min_score)
    n = visible.sum(-1)
    total = (np.exp(-d2 / scale) * visible).sum(-1)
    return np.divide(total, n, out=np.zeros_like(total), where=n > 0), n > 0


@dataclass
class _Track:
    """State of one live track (internal)."""

    track_id: int
    box: np.ndarray  # (4,) float64 x1, y1, x2, y2 of the last detection
    keypoints: np.ndarray  # (17, 3) float64 of the last detection
    time: float  # timestamp of the last detection
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # pixels per second, box centre
    hits: int = 1

    def predict(self, timestamp: float, use_velocity: bool) -> tuple[np.ndarray, np.ndarray]:
        shift = self.velocity * (timestamp - self.time) if use_velocity else np.zeros(2)
        box = self.box + np.tile(shift, 2)
        keypoints = self.keypoints.copy()
        keypoints[:, :2] += shift
        return box, keypoints


class Tracker:
    """Online multi-person tracker: feed it one frame's detections at a time.

    Parameters
    ----------
    config : TrackerConfig
        Thresholds and weights; see :class:`TrackerConfig` (``max_people``, ``single``, ``max_gap`` and
        ``min_track_length`` apply in :func:`track_people`, not here).

    Examples
    --------
    >>> tracker = Tracker()
    >>> ids = tracker.update(People2D.empty(), 0.0)
    >>> ids.shape
    (0,)
    """

    def __init__(self, config: TrackerConfig = TrackerConfig()):
        self.config = config
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._last_time: float | None = None

    @property
    def active_ids(self) -> np.ndarray:
        """(K,) int64 ids of the tracks still matchable."""
        return np.array([t.track_id for t in self._tracks], np.int64)

    def _cost(self, tracks: list[_Track], people: People2D, timestamp: float) -> np.ndarray:
        """(len(tracks), len(people)) cost = 1 - weighted mean of IoU and OKS against the predicted pose."""
        cfg = self.config
        use_velocity = cfg.motion == "velocity"
        predicted = [t.predict(timestamp, use_velocity) for t in tracks]
        boxes = np.stack([p[0] for p in predicted])
        keypoints = np.stack([p[1] for p in predicted])
        iou = box_iou(boxes, people.boxes)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        oks, shared = keypoint_similarity(keypoints, people.keypoints, areas, cfg.keypoint_score)
        w_oks = cfg.oks_weight * shared
        similarity = (cfg.iou_weight * iou + w_oks * oks) / (cfg.iou_weight + w_oks)
        return 1.0 - similarity

    def _match(self, track_index: np.ndarray, det_index: np.ndarray, people: People2D,
               timestamp: float, max_cost: float) -> list[tuple[int, int]]:
        """Optimal pairs (track position, detection position) among the given ones, cost <= max_cost."""
        if len(track_index) == 0 or len(det_index) == 0:
            return []
        cost = self._cost([self._tracks[i] for i in track_index], people[det_index], timestamp)
        # pairs above max_cost are forbidden, not merely expensive: give them a cost no valid set can reach
        forbidden = cost > max_cost
        cost = np.where(forbidden, 1e6, cost)
        rows, cols = linear_sum_assignment(cost)
        return [(int(track_index[r]), int(det_index[c])) for r, c in zip(rows, cols) if not forbidden[r, c]]

    def update(self, people: People2D, timestamp: float) -> np.ndarray:
        """Assign this frame's detections to tracks.

        Parameters
        ----------
        people : People2D
            The frame's detections, N people.
        timestamp : float
            Seconds; must increase from call to call.

        Returns
        -------
        (N,) int64 track ids (0, 1, 2, ... in order of creation), -1 for detections not tracked (too low a
        score, or a low-score detection that continued no track).
        """
        cfg = self.config
        timestamp = float(timestamp)
        if self._last_time is not None and not timestamp > self._last_time:
            raise ValueError(f"timestamp must increase: {timestamp} after {self._last_time}")
        self._last_time = timestamp
        # forget tracks that have been missing too long before they can claim anything
        self._tracks = [t for t in self._tracks if timestamp - t.time <= cfg.max_missed]

        ids = np.full(len(people), -1, np.int64)
        scores = people.scores
        finite = np.isfinite(people.boxes).all(1) & np.isfinite(people.keypoints).all((1, 2))
        high = np.flatnonzero(finite & (scores >= cfg.min_score))
        low = np.flatnonzero(finite & (scores >= cfg.low_score) & (scores < cfg.min_score))

        all_tracks = np.arange(len(self._tracks))
        pairs = self._match(all_tracks, high, people, timestamp, cfg.max_cost)
        matched = {t for t, _ in pairs}
        pairs += self._match(np.array([t for t in all_tracks if t not in matched], np.int64), low, people,
                             timestamp, cfg.low_max_cost)

        for t, d in pairs:
            track = self._tracks[t]
            box = people.boxes[d, :4].astype(np.float64)
            dt = timestamp - track.time
            measured = (_centre(box) - _centre(track.box)) / dt
            a = cfg.velocity_smoothing if track.hits > 1 else 1.0
            track.velocity = a * measured + (1 - a) * track.velocity
            track.box, track.keypoints, track.time = box, people.keypoints[d].astype(np.float64), timestamp
            track.hits += 1
            ids[d] = track.track_id

        taken = {d for _, d in pairs}
        for d in high:
            if d not in taken:
                self._tracks.append(_Track(self._next_id, people.boxes[d, :4].astype(np.float64),
                                           people.keypoints[d].astype(np.float64), timestamp))
                ids[d] = self._next_id
                self._next_id += 1
        return ids


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _interpolate(times: np.ndarray, known_times: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per-coordinate linear interpolation in time, ends held (np.interp's behaviour outside the known range).

    times: (M,) seconds; known_times: (K,) increasing; known: (K, 17, 3). Returns (M, 17, 3) float32.
    """
    flat = known.reshape(len(known), -1)
    out = np.empty((len(times), flat.shape[1]), np.float32)
    for c in range(flat.shape[1]):
        out[:, c] = np.interp(times, known_times, flat[:, c])
    return out.reshape(len(times), 17, 3)


def _single(frames: Detections, timestamps: np.ndarray, config: TrackerConfig) -> Tracks:
    """The reference's subject: the best person of each frame, gaps interpolated, edges held."""
    T = len(frames)
    keypoints = np.full((T, 17, 3), np.nan, np.float32)
    detected = np.zeros(T, bool)
    for t, people in enumerate(frames):
        ok = np.flatnonzero((people.scores >= config.min_score) & np.isfinite(people.keypoints).all((1, 2)))
        if len(ok):
            keypoints[t] = people.keypoints[ok[np.argmax(people.scores[ok])]]
            detected[t] = True
    if not detected.any():
        return Tracks.empty(timestamps)
    missing = ~detected
    keypoints[missing] = _interpolate(timestamps[missing], timestamps[detected], keypoints[detected])
    return Tracks(np.array([1]), np.array([T]), np.arange(T), timestamps, keypoints, missing)


def _split(frame_index: np.ndarray, timestamps: np.ndarray, max_gap: float) -> list[np.ndarray]:
    """Cut a track's sorted frame indices wherever two consecutive detections are more than max_gap apart."""
    gaps = np.diff(timestamps[frame_index]) > max_gap + 1e-9
    return np.split(np.arange(len(frame_index)), np.flatnonzero(gaps) + 1)


def track_people(frames: Sequence[People2D] | Detections, timestamps: np.ndarray,
                 config: TrackerConfig = TrackerConfig(),
                 progress: Callable[[int, int], None] | None = None,
                 image_size: tuple[int, int] | None = None) -> Tracks:
    """Follow everyone through a video and return each track's keypoints over its own span.

    Parameters
    ----------
    frames : Detections, or any sequence of T People2D
        Each frame's detections (COCO-17 pixels and scores). Pass the detector's low-score candidates too
        (down to ``config.low_score``): they keep tracks alive where a small person's score dips.
    timestamps : (T,) seconds, strictly increasing
    config : TrackerConfig
    progress : optional callable(done, total), called after each frame
    image_size : (width, height) pixels, optional
        Lets linking recognise a person who left at a border and came back at it (they may have turned round
        unseen); without it every gap is treated as one in view.

    Returns
    -------
    Tracks
        Sparse: each track's rows run from its first to its last detection; gaps of up to ``max_gap`` are
        filled, longer gaps that linking bridged are holes (no rows: the person was not seen); ``keypoints_2d``
        (N, 17, 3) float32, ``interpolated`` (N,) marks the filled frames (strictly inside a track's span,
        except in ``single`` mode, whose one track covers every frame and also holds the edges);
        ``track_ids`` are 1..P in order of first appearance (ties: the tracker's order). P may be 0.

    Raises
    ------
    ValueError
        ``timestamps`` not one per frame or not strictly increasing.
    """
    timestamps = np.asarray(timestamps, np.float64).reshape(-1)
    T = len(frames)
    if len(timestamps) != T:
        raise ValueError(f"timestamps: expected {T} values (one per frame), got {len(timestamps)}")
    if T > 1 and not (np.diff(timestamps) > 0).all():
        raise ValueError("timestamps must be strictly increasing")
    frames = Detections.from_frames(frames)
    if config.single:
        tracks = _single(frames, timestamps, config)
        if progress is not None:
            progress(T, T)
        return tracks

    tracker = Tracker(config)
    # per raw id: the detection rows it was matched to (ints in a list: O(detections), no arrays per frame)
    observed: dict[int, list[int]] = {}
    offsets = frames.frame_offsets
    for t in range(T):
        people = frames[t]
        ids = tracker.update(people, timestamps[t])
        for d in np.flatnonzero(ids >= 0):
            observed.setdefault(int(ids[d]), []).append(int(offsets[t]) + int(d))
        if progress is not None:
            progress(t + 1, T)

    detection_frame = np.repeat(np.arange(T, dtype=np.int64), np.diff(offsets))
    # (frame indices, detection rows) per tracklet: the online tracks cut at gaps longer than max_gap
    tracklets: list[tuple[np.ndarray, np.ndarray]] = []
    for raw_id in sorted(observed):
        rows = np.asarray(observed[raw_id], np.int64)
        frame_index = detection_frame[rows]
        tracklets.extend((frame_index[part], rows[part]) for part in _split(frame_index, timestamps, config.max_gap))
    if config.link_max_gap > 0 and len(tracklets) > 1:
        tracklets = _link(tracklets, frames, timestamps, config, image_size)
    # a clip shorter than the minimum (a photo, a burst of a few frames) keeps a person seen in all of it
    min_length = min(config.min_track_length, T)
    segments = [t for t in tracklets if len(t[0]) >= min_length]
    found = len(segments)
    if config.max_people is not None and found > config.max_people:
        # most frames covered first (detected or interpolated); among equals the earlier track
        covered = [len(_covered(s[0], timestamps, config.max_gap)) for s in segments]
        order = sorted(range(found), key=lambda i: (-covered[i], segments[i][0][0], i))
        segments = [segments[i] for i in sorted(order[:config.max_people])]
        log.info("kept the %d tracks covering the most frames, of %d", config.max_people, found)
    if not segments:
        return Tracks.empty(timestamps)
    segments.sort(key=lambda s: s[0][0])  # stable: ties keep the tracker's order

    # each track's rows: its detections and the frames of its gaps up to max_gap (interpolated); longer gaps,
    # bridged by linking, are holes. The only allocation is the person-frames themselves
    covered = [_covered(frame_index, timestamps, config.max_gap) for frame_index, _ in segments]
    lengths = np.array([len(c) for c in covered], np.int64)
    keypoints_2d = np.empty((int(lengths.sum()), 17, 3), np.float32)
    interpolated = np.zeros(len(keypoints_2d), bool)
    frame_rows = np.empty(len(keypoints_2d), np.int64)
    start = 0
    for (frame_index, rows), frames_of_track, n in zip(segments, covered, lengths):
        frame_rows[start:start + n] = frames_of_track
        keypoints = frames.keypoints[rows]
        at = start + np.searchsorted(frames_of_track, frame_index)
        keypoints_2d[at] = keypoints
        missing = np.ones(n, bool)
        missing[at - start] = False
        if missing.any():
            gap = frames_of_track[missing]
            keypoints_2d[start + np.flatnonzero(missing)] = _interpolate(timestamps[gap], timestamps[frame_index],
                                                                         keypoints)
            interpolated[start + np.flatnonzero(missing)] = True
        start += n
    log.debug("%d tracks over %d frames (%d found)", len(segments), T, found)
    return Tracks(np.arange(1, len(segments) + 1), lengths, frame_rows, timestamps, keypoints_2d, interpolated)


def _covered(frame_index: np.ndarray, timestamps: np.ndarray, max_gap: float) -> np.ndarray:
    """The frames a track's rows cover: its detected frames (sorted) and every frame between two consecutive
    detections at most ``max_gap`` seconds apart."""
    gaps = np.diff(frame_index)
    filled = (gaps > 1) & (np.diff(timestamps[frame_index]) <= max_gap + 1e-9)
    if not filled.any():
        return frame_index
    parts = [frame_index]
    for a, b in zip(frame_index[:-1][filled], frame_index[1:][filled]):
        parts.append(np.arange(a + 1, b))
    return np.sort(np.concatenate(parts))


def _link(tracklets: list[tuple[np.ndarray, np.ndarray]], frames: Detections, timestamps: np.ndarray,
          config: TrackerConfig, image_size) -> list[tuple[np.ndarray, np.ndarray]]:
    """Join tracklets of one person (wildpose.link): the chains, each as one (frame indices, rows), in order
    of their first tracklet."""
    from .link import link_tracklets, summarise

    colours = frames.colours
    summaries = [summarise(timestamps[f], frames.boxes[r], frames.keypoints[r],
                           None if colours is None else colours[r], image_size) for f, r in tracklets]
    chains = link_tracklets(summaries, config.link_max_gap, config.link_max_cost, config.link_gate)
    joined = []
    for chain in sorted(chains, key=lambda c: c[0]):
        joined.append((np.concatenate([tracklets[i][0] for i in chain]),
                       np.concatenate([tracklets[i][1] for i in chain])))
    if len(joined) < len(tracklets):
        log.info("linking joined %d tracklets into %d", len(tracklets), len(joined))
    return joined
