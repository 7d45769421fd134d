"""Offline tracklet linking: join the fragments of one person across gaps, occlusions and crossings.

The online :class:`~wildpose.track.Tracker` decides frame by frame, so a person missed for a moment (behind a
lamp post, behind another person, out of the frame) comes back under a new id. Offline, the whole video is
known: every fragment ("tracklet") has a start and an end, and an end can be joined to a later start by a
global assignment. This module does that, on summaries of each tracklet's first and last half second.

Cues, each turned into a z-score (a residual divided by its allowed spread, the spreads growing with the gap
``g`` in seconds; lengths are in units of the person's box height ``h``, so the cost does not depend on the
image resolution or on how far away the person is):

- motion: the end's box centre and velocity (a straight-line fit over its last ``WINDOW`` seconds) and the
  start's (over its first ``WINDOW`` seconds). Position: the start must lie where both velocities carry the end
  (``p_start - p_end - g (v_end + v_start) / 2``, a constant acceleration between the two measured velocities),
  allowed ``POSITION_SPREAD + POSITION_GROWTH * g`` heights. Velocity: ``|v_start - v_end|`` allowed
  ``VELOCITY_SPREAD + VELOCITY_GROWTH * g`` heights per second. People walking past each other in opposite
  directions are told apart by this term: in a fraction of a second nobody turns round.
- size: ``|log(h_start / h_end)|`` allowed ``SIZE_SPREAD + SIZE_GROWTH * g``.
- body shape: log ratios of the upper arm, forearm, thigh and shin to the torso, medians over the tracklet
  (2D, so foreshortening blurs them; a loose ``SHAPE_SPREAD``).
- appearance: the median Lab colour of the torso, thighs and shins, sampled inside the keypoints' polygon while
  the video is decoded (:func:`colour_descriptors`; no frame is kept); the mean Euclidean distance over the
  regions both tracklets have, allowed ``COLOUR_SPREAD`` Lab units.

The cost of a link is the mean of the squared z-scores of the cues available for the pair (a Gaussian negative
log-likelihood per cue, averaged so that a pair missing one cue is not cheaper or dearer for it). A pair is
forbidden when any z-score exceeds ``TrackerConfig.link_gate``, when the start does not come strictly after the
end (a tracklet never links to one that overlaps it in time: two detections of one frame are two people) or
when the gap exceeds ``TrackerConfig.link_max_gap`` seconds. The links are the minimum-cost set over all ends
and starts at once (:func:`scipy.optimize.linear_sum_assignment` on the matrix augmented with "no link"
entries of cost ``link_max_cost / 2`` per end and per start, so a link is made only where it costs less than
``link_max_cost`` and the total is minimal). Chains of links become one track.

Why hand-written: the trackers with re-identification (BoT-SORT, StrongSORT, Deep OC-SORT) need a deep
appearance network, torch, and work online; none links keypoint tracklets offline. The assignment itself is
scipy's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

WINDOW = 0.5  # seconds at each end of a tracklet used for its position, velocity and size
POSITION_SPREAD, POSITION_GROWTH = 0.3, 0.3  # heights, heights per second of gap
VELOCITY_SPREAD, VELOCITY_GROWTH = 0.3, 0.1  # heights per second, and its growth per second of gap
EDGE_MARGIN = 0.02  # of the image width: a box this close to a border touches it (the person is leaving/entering)
SIZE_SPREAD, SIZE_GROWTH = 0.15, 0.1  # log of the height ratio
SHAPE_SPREAD = 0.25  # log of a bone ratio, mean over the ratios
COLOUR_SPREAD = 12.0  # Lab units (CIE76 delta E)
MIN_DETECTIONS = 3  # a tracklet needs this many detections to be linked (a velocity needs two, noise a third)
KEYPOINT_SCORE = 0.3  # keypoints scored below this place no colour sample and no bone

# COCO-17 indices
_SHOULDERS, _HIPS = (5, 6), (11, 12)
_BONES = (((5, 7), (6, 8)), ((7, 9), (8, 10)), ((11, 13), (12, 14)), ((13, 15), (14, 16)))  # left, right
_LIMB_REGIONS = (((11, 13), (12, 14)), ((13, 15), (14, 16)))  # thighs, shins
COLOUR_REGIONS = ("torso", "thighs", "shins")
COLOUR_DIM = 3 * len(COLOUR_REGIONS)

# where colour is sampled: a 5 x 5 grid inside the torso quadrilateral (shrunk to its inner 70 %, so the arms
# and the background at its edges stay out) and 5 x 3 points along each limb, across a strip a fifth of the
# torso width wide
_GRID = np.linspace(0.15, 0.85, 5)
_ALONG = np.linspace(0.15, 0.85, 5)
_ACROSS = np.array([-0.1, 0.0, 0.1])


def colour_descriptors(image: np.ndarray, keypoints: np.ndarray, min_score: float = KEYPOINT_SCORE) -> np.ndarray:
    """Median CIE Lab colour of each person's torso, thighs and shins, from a few pixels inside the keypoints.

    Parameters
    ----------
    image : (H, W, 3) uint8 RGB
    keypoints : (N, 17, 3) COCO-17 x, y pixels and score
    min_score : a region is sampled only where its keypoints all score at least this

    Returns
    -------
    (N, 9) float32: L, a, b of the torso, thighs and shins (both legs pooled: a mirrored view swaps left and
    right); NaN for a region whose keypoints are missing or that falls outside the image.
    """
    import cv2  # opencv-python-headless: already a dependency of the camera modules

    keypoints = np.asarray(keypoints, np.float64).reshape(-1, 17, 3)
    N = len(keypoints)
    out = np.full((N, COLOUR_DIM), np.nan, np.float32)
    if N == 0:
        return out
    H, W = image.shape[:2]
    xy, ok = keypoints[..., :2], keypoints[..., 2] >= min_score
    points: list[np.ndarray] = []  # per (person, region): the (K, 2) sample positions, or None
    owners: list[tuple[int, int]] = []
    for n in range(N):
        p = xy[n]
        if ok[n, [5, 6, 11, 12]].all():
            ls, rs, lh, rh = p[5], p[6], p[11], p[12]
            u, v = np.meshgrid(_GRID, _GRID)
            u, v = u.ravel()[:, None], v.ravel()[:, None]
            top, bottom = ls + u * (rs - ls), lh + u * (rh - lh)
            points.append(top + v * (bottom - top))
            owners.append((n, 0))
            width = np.linalg.norm(rs - ls) + np.linalg.norm(rh - lh)
        else:
            width = None
        for region, limbs in enumerate(_LIMB_REGIONS, start=1):
            samples = []
            for a, b in limbs:
                if not (ok[n, a] and ok[n, b]):
                    continue
                d = p[b] - p[a]
                length = np.linalg.norm(d)
                if length < 1.0:
                    continue
                normal = np.array([-d[1], d[0]]) / length * (width if width is not None else 0.5 * length)
                samples.append((p[a] + _ALONG[:, None, None] * d + _ACROSS[None, :, None] * normal).reshape(-1, 2))
            if samples:
                points.append(np.concatenate(samples))
                owners.append((n, region))
    if not points:
        return out
    sizes = [len(s) for s in points]
    allxy = np.rint(np.concatenate(points)).astype(np.int64)
    inside = (allxy[:, 0] >= 0) & (allxy[:, 0] < W) & (allxy[:, 1] >= 0) & (allxy[:, 1] < H)
    pixels = image[np.clip(allxy[:, 1], 0, H - 1), np.clip(allxy[:, 0], 0, W - 1)]
    # one conversion for every sample of the frame; OpenCV's 8-bit Lab is L * 255 / 100, a + 128, b + 128
    lab = cv2.cvtColor(np.ascontiguousarray(pixels[None], np.uint8), cv2.COLOR_RGB2Lab)[0].astype(np.float32)
    lab = (lab - np.array([0.0, 128.0, 128.0], np.float32)) * np.array([100 / 255, 1.0, 1.0], np.float32)
    start = 0
    for (n, region), k in zip(owners, sizes):
        keep = inside[start:start + k]
        if keep.sum() * 2 >= k:  # at least half the samples in the image
            out[n, 3 * region:3 * region + 3] = np.median(lab[start:start + k][keep], axis=0)
        start += k
    return out


def bone_ratios(keypoints: np.ndarray, min_score: float = KEYPOINT_SCORE) -> np.ndarray:
    """(N, 4) log of upper arm, forearm, thigh and shin length over the torso length (mid-shoulder to mid-hip),
    each the mean of the left and right bones that are visible; NaN where a bone or the torso is missing."""
    k = np.asarray(keypoints, np.float64).reshape(-1, 17, 3)
    xy, ok = k[..., :2], k[..., 2] >= min_score
    torso = np.linalg.norm(xy[:, list(_SHOULDERS)].mean(1) - xy[:, list(_HIPS)].mean(1), axis=-1)
    torso_ok = ok[:, list(_SHOULDERS + _HIPS)].all(1) & (torso > 1.0)
    out = np.full((len(k), len(_BONES)), np.nan)
    for i, sides in enumerate(_BONES):
        lengths = np.stack([np.where(ok[:, a] & ok[:, b], np.linalg.norm(xy[:, a] - xy[:, b], axis=-1), np.nan)
                            for a, b in sides], 1)
        with np.errstate(all="ignore"), _quiet():
            mean = np.nanmean(lengths, 1)
            out[:, i] = np.where(torso_ok & (mean > 0), np.log(mean / np.where(torso_ok, torso, 1.0)), np.nan)
    return out


class _quiet:
    """Silence numpy's 'mean of empty slice' warnings: an all-NaN column is an expected NaN here."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


@dataclass(frozen=True)
class TrackletEnd:
    """One end of a tracklet, from a straight-line fit of its box centre over ``WINDOW`` seconds.

    time: seconds of the end's detection; position: (2,) pixels at that time; velocity: (2,) pixels per second;
    height: median box height in pixels over the window.
    """

    time: float
    position: np.ndarray
    velocity: np.ndarray
    height: float
    edge: int = -1  # the image border the end's box touches: 0 left, 1 right, 2 top, 3 bottom; -1 none or unknown


@dataclass(frozen=True)
class Tracklet:
    """What linking knows of one fragment: its two ends, its body shape and its colours.

    shape: (4,) median log bone ratios (:func:`bone_ratios`); colour: (9,) median Lab per region
    (:func:`colour_descriptors`), NaN where never seen; detections: how many frames it was detected in.
    """

    head: TrackletEnd
    tail: TrackletEnd
    shape: np.ndarray
    colour: np.ndarray
    detections: int


def _edge(box: np.ndarray, image_size: tuple[int, int] | None) -> int:
    if image_size is None:
        return -1
    W, H = image_size
    m = EDGE_MARGIN * W
    gaps = np.array([box[0], W - box[2], box[1], H - box[3]])
    return int(np.argmin(gaps)) if gaps.min() <= m else -1


def _end(times: np.ndarray, boxes: np.ndarray, at_start: bool, image_size=None) -> TrackletEnd:
    t0 = times[0] if at_start else times[-1]
    near = np.abs(times - t0) <= WINDOW + 1e-9
    t, b = times[near], boxes[near]
    centre = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)
    height = float(np.median(b[:, 3] - b[:, 1]))
    if len(t) >= 2 and np.ptp(t) > 0:
        # least squares line per coordinate, evaluated at the end itself: less noisy than the last box alone
        dt = t - t0
        A = np.stack([np.ones_like(dt), dt], 1)
        coef = np.linalg.lstsq(A, centre, rcond=None)[0]
        position, velocity = coef[0], coef[1]
    else:
        position, velocity = centre[0 if at_start else -1], np.zeros(2)
    return TrackletEnd(float(t0), np.asarray(position, np.float64), np.asarray(velocity, np.float64),
                       max(height, 1.0), _edge(boxes[0 if at_start else -1], image_size))


def summarise(times: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
              colours: np.ndarray | None = None, image_size: tuple[int, int] | None = None) -> Tracklet:
    """A tracklet's summary from its detections: ``times`` (n,) increasing seconds, ``boxes`` (n, 5),
    ``keypoints`` (n, 17, 3), ``colours`` (n, 9) or None; ``image_size`` (width, height), if known, tells
    which ends touch the image's border."""
    times = np.asarray(times, np.float64)
    boxes = np.asarray(boxes, np.float64)
    with _quiet():
        shape = np.nanmedian(bone_ratios(keypoints), 0)
        colour = (np.nanmedian(np.asarray(colours, np.float64), 0) if colours is not None
                  else np.full(COLOUR_DIM, np.nan))
    return Tracklet(_end(times, boxes, True, image_size), _end(times, boxes, False, image_size), shape, colour,
                    len(times))


def _z_scores(end: TrackletEnd, start: TrackletEnd, a: Tracklet, b: Tracklet) -> list[float]:
    """The cues' z-scores for linking ``end`` (of ``a``) to ``start`` (of ``b``); see the module docstring."""
    g = start.time - end.time
    h = float(np.sqrt(end.height * start.height))
    size = abs(np.log(start.height / end.height)) / (SIZE_SPREAD + SIZE_GROWTH * g)
    if end.edge >= 0 and end.edge == start.edge:
        # out of view: left at a border and came back at the same one. Unseen, they may have turned round:
        # no velocity term, and they come back near where they left
        return [np.linalg.norm(start.position - end.position) / h / (POSITION_SPREAD + POSITION_GROWTH * g),
                size] + _looks(a, b)
    residual = start.position - end.position - g * (end.velocity + start.velocity) / 2
    return [np.linalg.norm(residual) / h / (POSITION_SPREAD + POSITION_GROWTH * g),
            np.linalg.norm(start.velocity - end.velocity) / h / (VELOCITY_SPREAD + VELOCITY_GROWTH * g),
            size] + _looks(a, b)


def _looks(a: Tracklet, b: Tracklet) -> list[float]:
    """The z-scores of body shape and colours, where both tracklets have them."""
    z = []
    shape = np.abs(a.shape - b.shape)
    if np.isfinite(shape).any():
        z.append(float(np.nanmean(shape)) / SHAPE_SPREAD)
    colour = np.linalg.norm((a.colour - b.colour).reshape(-1, 3), axis=1)
    if np.isfinite(colour).any():
        z.append(float(np.nanmean(colour)) / COLOUR_SPREAD)
    return z


def link_candidates(tracklets: list[Tracklet], max_gap: float, gate: float) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
    """The links allowed: (ends, starts, costs), tracklet ``ends[k]``'s end may join tracklet ``starts[k]``'s
    start at ``costs[k]``. Only starts within ``max_gap`` after each end are looked at (sorted times, a binary
    search), so the work grows with the tracklets times the people starting in any ``max_gap`` seconds, not
    with the square of a long video's tracklets."""
    n = len(tracklets)
    head_times = np.array([t.head.time for t in tracklets])
    order = np.argsort(head_times, kind="stable")
    sorted_times = head_times[order]
    ends, starts, costs = [], [], []
    for i, a in enumerate(tracklets):
        if a.detections < MIN_DETECTIONS:
            continue
        lo = np.searchsorted(sorted_times, a.tail.time, side="right")  # strictly after the end: no overlap
        hi = np.searchsorted(sorted_times, a.tail.time + max_gap + 1e-9, side="right")
        for j in order[lo:hi]:
            b = tracklets[j]
            if j == i or b.detections < MIN_DETECTIONS:
                continue
            z = _z_scores(a.tail, b.head, a, b)
            if max(z) <= gate:
                ends.append(i)
                starts.append(int(j))
                costs.append(float(np.mean(np.square(z))))
    return np.array(ends, np.int64), np.array(starts, np.int64), np.array(costs, np.float64)


def link_tracklets(tracklets: list[Tracklet], max_gap: float, max_cost: float, gate: float) -> list[list[int]]:
    """Group tracklets into people: chains of indices into ``tracklets``, each in time order; every tracklet is
    in exactly one chain (alone where nothing links to it). No chain holds two tracklets that overlap in time.

    ``max_gap`` seconds, ``max_cost`` and ``gate`` as :class:`~wildpose.track.TrackerConfig`'s ``link_*``.
    The assignment is solved separately on each connected group of ends and starts that could be linked to
    one another (exact: links in one group do not change the cost of another), so a long video is many small
    problems rather than one cubic one.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(tracklets)
    successor = np.full(n, -1)
    ends, starts, costs = (link_candidates(tracklets, max_gap, gate) if n > 1 and max_gap > 0
                           else (np.zeros(0, np.int64),) * 2 + (np.zeros(0),))
    if len(ends):
        # nodes 0..n-1 are ends, n..2n-1 starts; a group is a connected component of the candidate links
        graph = coo_matrix((np.ones(len(ends)), (ends, n + starts)), shape=(2 * n, 2 * n))
        _, group = connected_components(graph, directed=False)
        link_group = group[ends]
        for g in np.unique(link_group):
            k = np.flatnonzero(link_group == g)
            rows, row_of = np.unique(ends[k], return_inverse=True)
            cols, col_of = np.unique(starts[k], return_inverse=True)
            R, C = len(rows), len(cols)
            # augmented square matrix: [[links, end-without-successor], [start-without-predecessor, filler]];
            # leaving an end and a start unlinked costs max_cost in all, so a link is made only where cheaper
            big = 1e9
            m = np.full((R + C, C + R), big)
            m[row_of, col_of] = costs[k]
            m[:R, C:] = np.where(np.eye(R, dtype=bool), max_cost / 2, big)
            m[R:, :C] = np.where(np.eye(C, dtype=bool), max_cost / 2, big)
            # the filler pairs the unused starts and ends with each other at no cost, so that nothing forces a
            # link just to complete the square
            m[R:, C:] = 0.0
            r, c = linear_sum_assignment(m)
            for a, b in zip(r, c):
                if a < R and b < C and m[a, b] < big:
                    successor[rows[a]] = cols[b]
    has_predecessor = np.zeros(n, bool)
    has_predecessor[successor[successor >= 0]] = True
    chains = []
    for i in range(n):
        if has_predecessor[i]:
            continue
        chain = [i]
        while successor[chain[-1]] >= 0:
            chain.append(int(successor[chain[-1]]))
        chains.append(chain)
    return chains
