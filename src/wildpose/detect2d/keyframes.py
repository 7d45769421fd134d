"""Follow people between key frames with windows driven by the previous frame's keypoints.

A full detection (the full-frame pass, tiles in crowds and the crop pass of :mod:`wildpose.detect2d.crops`) costs
two to seven model passes a frame. Between key frames, people move a few pixels: where someone was in the previous
frame says where to look now (the pattern of rtmlib's ``PoseTracker`` and MediaPipe's tracking mode). So every
frame runs windows around the people already followed, each window sized to its people: a lone walker is one
window at his size, a crowd a few windows holding several runners each.

Key frames add the bottom-up search (the full-frame pass, and tiles where there are many candidates) for people
not followed yet, each of whom is then looked at in a window of their own. A frame is a key frame when

- ``interval`` frames have passed since the last one (someone may have entered at an edge, or been hidden);
- nobody is being followed (every ``idle_interval`` frames until someone is found);
- someone followed with a good score (``lost_score``), away from the frame's edges, is not found again, even by a
  second look through a window with three times the margin.

Given each frame's timestamp, the detector also starts afresh (as at a video's first frame) at the first frame of
every ``restart_seconds`` period of the video's clock (:func:`restart_period`). A frame's 2D then depends only on
the frames since the last restart, so a video cut at restart times (``wildpose run --ray`` cuts there,
``distributed.segments.plan_segments``) gives every frame the 2D of one uncut run.

:class:`KeyframeDetector` wraps a :class:`~wildpose.detect2d.movenet.MoveNetMultiPose` and is itself a
:class:`~wildpose.detect2d.base.Detector2D`; it keeps state from frame to frame, so call :meth:`reset` between
videos (``pipeline.detect_video`` does). Measured in ``benchmarks/bench_speed.py`` (docs/DETECTION.md).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Iterator

import cv2
import numpy as np

from wildpose.detect2d.base import Letterbox, check_image
from wildpose.detect2d.crops import keypoint_similarity, person_extents, unique_people
from wildpose.geometry import box_iou
from wildpose.types import People2D

# model inputs are multiples of 32 on both sides
_MULTIPLE = 32
# window canvases take their sides from these few values: each new input shape costs the detector an interpreter
# (about 80 ms to create, measured), and it keeps only a few of them
CANVAS_SIDES = (64, 128, 192, 256, 320)
# a window's model cost: its pixels plus a fixed overhead of one invoke (about 8000 pixels' worth, measured with
# benchmarks/bench_speed.py's --part sizes), so that merging two small windows into one pays
_INVOKE_OVERHEAD_PX = 8000


@dataclass(frozen=True)
class KeyframeConfig:
    """How :class:`KeyframeDetector` schedules key frames and cuts its windows.

    interval: a key frame (the bottom-up discovery passes) at least every this many frames.
    idle_interval: while nobody is followed, a key frame every this many frames (someone entering is found up
        to ``idle_interval - 1`` frames late).
    person_size: model-input pixels given to a followed person's longer side (the crop pass of a full detection
        gives 140: a 224 crop with a 30 % margin); the window is scaled so, up to ``max_scale``.
    margin: fraction of the person's longer side added on every side of their extent (how far they may move
        beyond the motion the window already follows). 0.15 rather than 0.3: smaller windows let a crowd's
        people be shown larger within ``max_pixels`` (keypoints closer to the 768 reference, 3D steadier) for
        a fifth fewer model pixels; the walk seen at 3x and 5x its speed was followed as well (docs/DETECTION.md).
    max_scale: never enlarge the frame more than this (more pixels than the video has add nothing).
    max_side: longest side of one window's model input, pixels.
    max_people: people per window at most (the model has 6 output slots).
    max_pixels: model-input pixels of all of one frame's windows at most: beyond, everyone is shown smaller
        (a crowd costs a bounded number of passes).
    follow_score: people scoring at least this are followed into the next frame.
    lost_score: a followed person who had at least this score, is not at the frame's edge and is not found
        again gets a second, wider look, and makes this frame a key frame if still missing. While at most
        ``max_people`` are followed, everyone missing gets the second look.
    min_iou: a window's person continues a followed one when their boxes overlap by this much.
    min_oks: a person scoring below ``lost_score`` whose keypoints moved this little alike (OKS) is no longer
        followed (0: never dropped so).
    motion: the windows move ahead by this share of each person's recent motion (box centre, smoothed); a
        whole step overshoots the noisy boxes (docs/DETECTION.md).
    restart_seconds: start afresh at the first frame of each period this long on the video's clock (frames
        given with timestamps only); None: never. It costs about one key frame per period (docs/DETECTION.md).
    interpolate_max_gap: seconds; in :meth:`KeyframeDetector.follow`, the frames between two detected frames
        at most this far apart get keypoints interpolated from them instead of windows of their own; None:
        every frame its own. 0.125: two frames of three from 24 frames/s up. Measured on the crowd: two of
        three cut the passes to 1.5 a frame (every other frame: 2.0; none: 3.7) with keypoints as close to
        the 768-pixel reference, not further (docs/DETECTION.md).
    interpolate_frames: how many frames in a row are interpolated between two detected ones (1: every other
        frame; 2: two of three).
    interpolate_min_people: ... and only while at least this many people are followed: a crowd's windows are
        most of a run's cost, and its runners' keypoints interpolate well; a lone walker's interpolated
        keypoints were 0.02 PCK@0.1 further from the reference, and his window is cheap.
    """

    interval: int = 8
    idle_interval: int = 1
    person_size: int = 120
    margin: float = 0.15
    max_scale: float = 4.0
    max_side: int = 320
    max_people: int = 5
    max_pixels: int = 200_000
    follow_score: float = 0.1
    lost_score: float = 0.3
    min_iou: float = 0.3
    motion: float = 0.5
    min_oks: float = 0.5
    restart_seconds: float | None = 4.0
    interpolate_max_gap: float | None = 0.125
    interpolate_frames: int = 2
    interpolate_min_people: int = 4

    def __post_init__(self):
        if self.interval < 1 or self.idle_interval < 1:
            raise ValueError(f"interval and idle_interval: expected >= 1, got {self.interval}, {self.idle_interval}")
        if self.person_size < _MULTIPLE or self.max_side < _MULTIPLE:
            raise ValueError(f"person_size and max_side: expected >= {_MULTIPLE} pixels")
        if self.margin < 0 or self.max_scale <= 0 or self.max_people < 1 or self.max_pixels < _MULTIPLE ** 2:
            raise ValueError("margin must be >= 0, max_scale > 0, max_people >= 1, max_pixels >= 1024")
        if self.interpolate_frames < 1:
            raise ValueError(f"interpolate_frames: expected >= 1, got {self.interpolate_frames}")
        if self.interpolate_max_gap is not None and not self.interpolate_max_gap >= 0:
            raise ValueError(f"interpolate_max_gap: expected seconds >= 0 or None, got {self.interpolate_max_gap}")
        if self.restart_seconds is not None and not (self.restart_seconds > 0 and math.isfinite(self.restart_seconds)):
            raise ValueError(f"restart_seconds: expected a positive number of seconds or None, got "
                             f"{self.restart_seconds}")


RESTART_TOLERANCE = 1e-6
"""Seconds: a frame this close before a restart time counts as at it (timestamps are rounded PTS)."""


def restart_period(timestamp: float, restart_seconds: float) -> int:
    """Which restart period a frame at ``timestamp`` seconds is in: k for ``k * restart_seconds <= t`` (within
    :data:`RESTART_TOLERANCE`) ``< (k + 1) * restart_seconds``. ``plan_segments`` owns frames by the same test.

    >>> [restart_period(t, 4.0) for t in (0.0, 3.96, 3.9999995, 4.0, 8.04)]
    [0, 0, 1, 1, 2]
    """
    return math.floor((float(timestamp) + RESTART_TOLERANCE) / restart_seconds)


@dataclass
class Window:
    """A rectangle of the frame (x1, y1 and size in frame pixels) shown to the model at ``scale``."""

    x1: float
    y1: float
    width: float
    height: float
    scale: float
    members: list[int]

    @cached_property  # asked for again and again while windows are merged
    def canvas_size(self) -> tuple[int, int]:
        """(height, width) of the model input, multiples of 32."""
        def up(v):
            need = v * self.scale - 1e-6
            return next((side for side in CANVAS_SIDES if side >= need), CANVAS_SIDES[-1])

        return up(self.height), up(self.width)

    @cached_property
    def cost(self) -> int:
        h, w = self.canvas_size
        return h * w + _INVOKE_OVERHEAD_PX


def _window(rect: np.ndarray, scale: float, members: list[int], config: KeyframeConfig) -> Window:
    x1, y1, x2, y2 = rect
    width, height = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    scale = min(scale, min(config.max_side, CANVAS_SIDES[-1]) / width, min(config.max_side, CANVAS_SIDES[-1]) / height)
    return Window(float(x1), float(y1), float(width), float(height), float(scale), members)


def plan_windows(extents: np.ndarray, config: KeyframeConfig = KeyframeConfig()) -> list[Window]:
    """Windows covering each person's extent plus the margin, merged where one window costs less than two.

    Parameters
    ----------
    extents
        (N, 4) x1, y1, x2, y2 frame pixels: where each followed person is expected.

    Returns
    -------
    Windows; each person is a member of exactly one. Their canvases hold at most ``config.max_pixels`` in all
    (when more would be needed, everyone's ``person_size`` shrinks alike).
    """
    extents = np.asarray(extents, np.float64).reshape(-1, 4)
    if not len(extents):
        return []
    person_size = float(config.person_size)
    for _ in range(4):
        windows = _plan(extents, person_size, config)
        pixels = sum(w.cost - _INVOKE_OVERHEAD_PX for w in windows)
        if pixels <= config.max_pixels:
            break
        person_size *= max(0.5, 0.97 * np.sqrt(config.max_pixels / pixels))
    return windows


def _plan(extents: np.ndarray, person_size: float, config: KeyframeConfig) -> list[Window]:
    longer = np.maximum(extents[:, 2] - extents[:, 0], extents[:, 3] - extents[:, 1]).clip(min=8.0)
    pad = (config.margin * longer)[:, None]
    rects = extents + np.concatenate([-pad, -pad, pad, pad], axis=1)
    scales = np.minimum(person_size / longer, config.max_scale)
    windows = [(rect, float(scale), [i]) for i, (rect, scale) in enumerate(zip(rects, scales))]
    built = [_window(r, s, m, config) for r, s, m in windows]
    while len(windows) > 1:
        best, best_saving = None, 0
        for a in range(len(windows)):
            for b in range(a + 1, len(windows)):
                members = windows[a][2] + windows[b][2]
                if len(members) > config.max_people:
                    continue
                ra, rb = windows[a][0], windows[b][0]
                union = np.array([min(ra[0], rb[0]), min(ra[1], rb[1]), max(ra[2], rb[2]), max(ra[3], rb[3])])
                # the union shows everyone at the smaller of their scales; not much smaller for max_side's sake
                scale = min(windows[a][1], windows[b][1])
                merged = _window(union, scale, members, config)
                if merged.scale < 0.8 * scale:
                    continue
                saving = built[a].cost + built[b].cost - merged.cost
                if saving > best_saving:
                    best, best_saving = (a, b, union, scale, merged), saving
        if best is None:
            break
        a, b, union, scale, merged = best
        windows[a] = (union, scale, merged.members)
        built[a] = merged
        del windows[b], built[b]
    return built


def crop_window(image: np.ndarray, window: Window) -> tuple[np.ndarray, Letterbox]:
    """The model input for ``window``: its rectangle (grown to the canvas, centred) resampled at its scale.

    Parts outside the image are black. Returns the (h, w, 3) uint8 canvas and the :class:`Letterbox` mapping
    canvas coordinates back to ``image`` pixels.
    """
    ch, cw = window.canvas_size
    scale = window.scale
    # centre the canvas on the window: the rounding up to multiples of 32 adds context on both sides
    x0 = window.x1 + window.width / 2 - cw / scale / 2
    y0 = window.y1 + window.height / 2 - ch / scale / 2
    offset_x, offset_y = -x0 * scale, -y0 * scale
    # warpAffine indexes pixel centres, hence the half-pixel terms (as crops.crop_square)
    matrix = np.array([[scale, 0.0, offset_x + 0.5 * scale - 0.5], [0.0, scale, offset_y + 0.5 * scale - 0.5]])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas = cv2.warpAffine(image, matrix, (cw, ch), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return canvas, Letterbox(scale, scale, offset_x, offset_y, cw, ch)


def _canvas_rect(window: Window) -> np.ndarray:
    ch, cw = window.canvas_size
    cx, cy = window.x1 + window.width / 2, window.y1 + window.height / 2
    return np.array([cx - cw / window.scale / 2, cy - ch / window.scale / 2,
                     cx + cw / window.scale / 2, cy + ch / window.scale / 2])


class KeyframeDetector:
    """Bottom-up discovery on key frames, windows around the people followed on every frame.

    Parameters
    ----------
    detector
        A :class:`~wildpose.detect2d.movenet.MoveNetMultiPose`: its ``discover`` is the key frames' search, its
        ``run_model`` runs the windows, its ``candidate_threshold`` and ``score_threshold`` apply to both.
    config
        :class:`KeyframeConfig`.

    Not thread-safe, and stateful: :meth:`reset` before each new video, and give each frame's timestamp (seconds)
    for the restarts of ``config.restart_seconds``; :meth:`follow` takes a whole video's frames (what
    ``pipeline.detect_video`` uses).
    """


    def __init__(self, detector, config: KeyframeConfig | None = None):
        self.detector = detector
        self.config = config if config is not None else KeyframeConfig()
        self.name = detector.name
        self.score_threshold = detector.score_threshold
        self.reset()

    def reset(self) -> None:
        """Forget the people followed and the counters: the next frame is a key frame."""
        self._forget()
        self._shape: tuple[int, ...] | None = None
        self._period: int | None = None
        self.frames = 0  # counters, for benchmarks and logs
        self.key_frames = 0
        self.lost_frames = 0
        self.restarts = 0
        self.interpolated = 0
        self.passes = 0
        self.continued = np.zeros(0, np.int64)

    def _forget(self) -> None:
        self._people = People2D.empty()
        self._velocity = np.zeros((0, 2))
        self._since_key = 0
        self._first = True  # the next frame searches (key_frames == 0 no longer says so after a restart)

    def __call__(self, image: np.ndarray, timestamp: float | None = None, skipped: int = 0) -> People2D:
        """People in ``image`` ((H, W, 3) uint8 RGB) scoring >= the detector's ``score_threshold``, best first.
        ``timestamp``: the frame's time on the video's clock, seconds (restarts need it; None: no restart).
        ``skipped``: frames since the previous call that this detector did not see (:meth:`follow`'s
        interpolated ones): the windows move ahead that much further, key frames come as often in frames.
        :attr:`continued` then says, per person returned, which person of the previous call it continues.

        Returns
        -------
        People2D
            keypoints (N, 17, 3) x, y pixels of ``image`` and score; boxes (N, 5) x1, y1, x2, y2, score.
        """
        image = check_image(image)
        if self._shape is not None and image.shape != self._shape:
            self.reset()  # another video, or a resized stream: nothing carries over
        self._shape = image.shape
        config = self.config
        if timestamp is not None and config.restart_seconds is not None:
            period = restart_period(timestamp, config.restart_seconds)
            if self._period is not None and period != self._period:
                self._forget()  # as at a video's start: what follows does not depend on frames before
                self.restarts += 1
            self._period = period
        self.frames += 1
        followed = np.flatnonzero(self._people.scores >= config.follow_score)
        follow, velocity = self._people[followed], self._velocity[followed]
        velocity = velocity * config.motion  # pixels a frame
        ahead = 1 + int(skipped)
        shift = velocity * ahead  # where each window moves since the previous call
        expected = person_extents(follow) + np.tile(shift, 2)
        pool, whole = self._run_windows(image, expected)
        matched = _match(follow.boxes[:, :4].astype(np.float64) + np.tile(shift, 2), follow.scores, pool,
                         config.min_iou)
        matched = self._drop_jumps(follow, shift, pool, matched)
        again = np.zeros(len(follow), bool)
        again[matched >= 0] = pool.scores[matched[matched >= 0]] >= self.score_threshold
        height, width = image.shape[:2]
        inside = (expected[:, 0] > 0) & (expected[:, 1] > 0) & (expected[:, 2] < width) & (expected[:, 3] < height)
        # a second look for who scored well away from the edges (where people leave); among few people, for
        # everyone (someone entering at an edge scores low); those still missing and not at an edge make this
        # a key frame
        confident = (follow.scores >= config.lost_score) & inside
        missing = ~again & (confident | (len(follow) <= config.max_people))
        source = np.full(len(pool), -1)
        source[matched[matched >= 0]] = np.flatnonzero(matched >= 0)
        keep = (source >= 0) | whole
        pool, source = pool[keep], source[keep]
        if missing.any():  # a second look, wider, around where each missing person was expected
            pool, source, missing = self._look_again(image, follow, expected, shift, missing, pool, source)
        lost = missing & (follow.scores >= config.lost_score) & inside
        self._since_key += int(skipped)
        if len(follow):
            key = self._since_key >= config.interval or lost.any()
        else:  # nobody to follow: search, every ``idle_interval`` frames
            key = self._since_key >= config.idle_interval or self._first
        self.lost_frames += int(lost.any())
        if key:
            pool, source = self._discover(image, pool, source)
            self._since_key = 1
            self.key_frames += 1
            self._first = False
        else:
            self._since_key += 1
        kept = pool.scores >= self.score_threshold
        people, source = pool[kept], source[kept]
        order = np.argsort(-people.scores, kind="stable")
        people, source = people[order], source[order]
        self._update_state(people, follow, velocity, source, ahead)
        self.continued = np.where(source >= 0, followed[np.maximum(source, 0)] if len(followed) else -1, -1)
        return people

    def follow(self, frames: Iterable) -> Iterator[tuple[object, People2D]]:
        """Each of ``frames`` (objects with ``.image`` and ``.timestamp``, as ``video.read_frames`` yields) with
        its people, in order: the detector on most frames, and, where ``config.interpolate_max_gap`` allows,
        ``config.interpolate_frames`` frames in a row interpolated from the detected frames either side instead.

        Counting from its restart period's first frame (or the first frame given), every
        ``interpolate_frames + 1``-th frame is detected. The frames between two such frames are interpolated when
        both are in the same period, at most ``interpolate_max_gap`` seconds apart, and at least
        ``interpolate_min_people`` people are followed: each person of the later frame who continues one of the
        earlier frame's gets the keypoints, box and scores between the two, linearly in time. Who is in only one
        of them is absent from the frames between. Otherwise those frames are detected one by one. The rule reads
        only the frames' times and the detector's state, so a video cut at a restart time gives the same frames
        the same people.
        """
        config = self.config
        step = config.interpolate_frames + 1
        items = iter(frames)
        previous: tuple[object, People2D] | None = None
        position, period = 0, None
        pending = next(items, None)
        while pending is not None:
            frame = pending
            this_period = self._period_of(frame.timestamp)
            if this_period != period:
                position, period = 0, this_period
            if (config.interpolate_max_gap is None or position % step == 0 or previous is None
                    or (previous[1].scores >= config.follow_score).sum() < config.interpolate_min_people):
                found = self(frame.image, frame.timestamp)
                yield frame, found
                previous, position, pending = (frame, found), position + 1, next(items, None)
                continue
            between = [frame]  # read ahead to the next frame to detect
            after = next(items, None)
            while (after is not None and self._period_of(after.timestamp) == period
                   and (position + len(between)) % step != 0):
                between.append(after)
                after = next(items, None)
            # the loop stopped at the next frame to detect, unless the video or the period ended first
            if (after is not None and self._period_of(after.timestamp) == period
                    and after.timestamp - previous[0].timestamp <= config.interpolate_max_gap + RESTART_TOLERANCE):
                found_after = self(after.image, after.timestamp, skipped=len(between))
                for skipped in between:
                    yield skipped, _between(previous, (after, found_after), self.continued, skipped.timestamp)
                self.interpolated += len(between)
                yield after, found_after
                previous, position = (after, found_after), position + len(between) + 1
                pending = next(items, None)
            else:  # the period or the video ends, or the frames are too far apart: each its own
                for own in between:
                    found = self(own.image, own.timestamp)
                    yield own, found
                    previous, position = (own, found), position + 1
                pending = after

    def _period_of(self, timestamp: float | None) -> int:
        if timestamp is None or self.config.restart_seconds is None:
            return 0
        return restart_period(timestamp, self.config.restart_seconds)

    def _run_windows(self, image: np.ndarray, extents: np.ndarray,
                     config: KeyframeConfig | None = None) -> tuple[People2D, np.ndarray]:
        """Everyone the windows around ``extents`` show (candidates, duplicates across windows removed, best
        first) and whether each lies wholly inside its window (not cut by a window edge inside the frame)."""
        height, width = image.shape[:2]
        found, interior = [People2D.empty()], [np.zeros(0, bool)]
        for window in plan_windows(extents, config or self.config):
            canvas, box = crop_window(image, window)
            people = self.detector.run_model(canvas, box)
            self.passes += 1
            people = people[people.scores >= self.detector.candidate_threshold]
            found.append(people)
            x1, y1, x2, y2 = _canvas_rect(window)
            tol = 0.02 * max(x2 - x1, y2 - y1)
            b = people.boxes
            interior.append(((b[:, 0] > x1 + tol) | (x1 <= 0)) & ((b[:, 1] > y1 + tol) | (y1 <= 0))
                            & ((b[:, 2] < x2 - tol) | (x2 >= width)) & ((b[:, 3] < y2 - tol) | (y2 >= height)))
        pool = People2D(np.concatenate([p.keypoints for p in found]), np.concatenate([p.boxes for p in found]))
        kept = unique_people(pool)  # windows overlap: one person may be in two
        return pool[kept], np.concatenate(interior)[kept]

    def _drop_jumps(self, follow: People2D, velocity: np.ndarray, pool: People2D, matched: np.ndarray) -> np.ndarray:
        """Unmatch low-scoring people whose keypoints jumped (OKS < ``min_oks`` over >= 3 keypoints scoring
        >= 0.2 in both frames): a window over half a person at the frame's edge follows whatever part stays in
        view; the key frames look for them instead."""
        if self.config.min_oks <= 0:
            return matched
        for i in np.flatnonzero((matched >= 0) & (follow.scores < self.config.lost_score)):
            before = follow[i]
            before.keypoints[..., :2] += velocity[i]
            after = pool[int(matched[i])]
            both = (before.keypoints[0, :, 2] >= 0.2) & (after.keypoints[0, :, 2] >= 0.2)
            if both.sum() >= 3 and keypoint_similarity(before, after)[0, 0] < self.config.min_oks:
                matched[i] = -1
        return matched

    def _look_again(self, image, follow, expected, velocity, lost, pool, source):
        """Windows with a threefold margin around the lost people; those found again join ``pool``. Returns the
        pool, its sources and who is still lost."""
        index = np.flatnonzero(lost)
        wide = dataclasses.replace(self.config, margin=3 * self.config.margin)
        looked, _ = self._run_windows(image, expected[index], wide)
        if len(pool) and len(looked):  # people the first windows found already are not found again
            looked = looked[~(box_iou(looked.boxes[:, :4], pool.boxes[:, :4]) > 0.5).any(1)]
        boxes = follow.boxes[index, :4].astype(np.float64) + np.tile(velocity[index], 2)
        matched = _match(boxes, follow.scores[index], looked, self.config.min_iou)
        matched[matched >= 0] = np.where(looked.scores[matched[matched >= 0]] >= self.score_threshold,
                                         matched[matched >= 0], -1)
        has = matched >= 0
        if has.any():
            pool = People2D(np.concatenate([pool.keypoints, looked.keypoints[matched[has]]]),
                            np.concatenate([pool.boxes, looked.boxes[matched[has]]]))
            source = np.concatenate([source, index[has]])
        still = lost.copy()
        still[index[has]] = False
        return pool, source, still

    def _discover(self, image: np.ndarray, pool: People2D, source: np.ndarray) -> tuple[People2D, np.ndarray]:
        """A key frame: the bottom-up passes find who the windows do not know; each newcomer is looked at again
        in a window of their own, as the crop pass of a full detection would."""
        candidates, _ = self.detector.discover(image)
        self.passes += 1
        if len(pool) and len(candidates):
            known = (box_iou(candidates.boxes[:, :4], pool.boxes[:, :4]) > 0.5).any(1) | (
                keypoint_similarity(candidates, pool) > 0.5).any(1)
            candidates = candidates[~known]
        if not len(candidates):
            return pool, source
        looked, _ = self._run_windows(image, person_extents(candidates))
        matched = _match(candidates.boxes[:, :4].astype(np.float64), candidates.scores, looked, self.config.min_iou)
        keypoints, boxes = candidates.keypoints.copy(), candidates.boxes.copy()
        has = matched >= 0
        keypoints[has], boxes[has] = looked.keypoints[matched[has]], looked.boxes[matched[has]]
        newcomers = People2D(keypoints, boxes)
        merged = People2D(np.concatenate([pool.keypoints, newcomers.keypoints]),
                          np.concatenate([pool.boxes, newcomers.boxes]))
        merged_source = np.concatenate([source, np.full(len(newcomers), -1)])
        kept = unique_people(merged)
        return merged[kept], merged_source[kept]

    def _update_state(self, people: People2D, follow: People2D, velocity: np.ndarray, source: np.ndarray,
                      ahead: int = 1) -> None:
        """Remember ``people`` and each one's motion since the previous frame (pixels a frame, box centre);
        ``source``: per person, the index in ``follow`` it continues, or -1 (new: no motion known); ``ahead``:
        frames since ``follow``'s."""
        new_velocity = np.zeros((len(people), 2))
        has = source >= 0
        if has.any():
            centre = lambda b: (b[:, :2] + b[:, 2:4]) / 2  # noqa: E731
            step = (centre(people.boxes[has].astype(np.float64))
                    - centre(follow.boxes[source[has]].astype(np.float64))) / ahead
            # smoothed: one noisy box must not throw the next window off
            new_velocity[has] = 0.5 * step + 0.5 * velocity[source[has]]
        self._people, self._velocity = people, new_velocity

    def __repr__(self) -> str:
        return f"KeyframeDetector({self.detector!r}, {self.config})"


def _between(before: tuple[object, People2D], after: tuple[object, People2D], continued: np.ndarray,
             timestamp: float) -> People2D:
    """The people of a frame at ``timestamp`` between two detected ones: each person of ``after`` continuing
    (``continued``: index into ``before``'s people, -1 none) one of ``before``'s, linearly in time (positions
    and scores); best first."""
    (frame_a, a), (frame_b, b) = before, after
    pairs = np.flatnonzero(continued >= 0)
    if not len(pairs):
        return People2D.empty()
    span = float(frame_b.timestamp - frame_a.timestamp)
    w = np.float32(0.5 if span <= 0 else (timestamp - frame_a.timestamp) / span)
    ka, kb = a.keypoints[continued[pairs]], b.keypoints[pairs]
    ba, bb = a.boxes[continued[pairs]], b.boxes[pairs]
    keypoints = ka + w * (kb - ka)  # the scores too: between the two frames'
    boxes = ba + w * (bb - ba)
    order = np.argsort(-boxes[:, 4], kind="stable")
    return People2D(keypoints[order].astype(np.float32), boxes[order].astype(np.float32))


def _match(boxes: np.ndarray, scores: np.ndarray, pool: People2D, min_iou: float) -> np.ndarray:
    """For each of ``boxes`` (N, 4), best score first, the free person of ``pool`` overlapping it most (IoU >=
    ``min_iou``) -> (N,) index into ``pool``, -1 where none."""
    matched = np.full(len(boxes), -1)
    if not len(pool) or not len(boxes):
        return matched
    iou = box_iou(boxes, pool.boxes[:, :4])
    taken = np.zeros(len(pool), bool)
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        row = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(row))
        if row[j] >= min_iou:
            taken[j], matched[i] = True, j
    return matched
