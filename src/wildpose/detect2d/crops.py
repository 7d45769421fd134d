"""The second, top-down pass: look again at each person on an upscaled crop of the full-resolution frame.

A bottom-up model run on the whole frame sees a 60-pixel-tall walker as a 30-pixel figure at input size 256;
cropping a square around him from the original frame and enlarging it to the model's input shows the model
the same person at several times the size. The crop's answer replaces the first pass's where it is more
confident (see ``docs/DETECTION.md`` for what this buys, measured).

Everything here is model-agnostic: the detector passes an ``infer(canvas, letterbox) -> People2D`` callable
that runs its model on a square uint8 canvas and maps the result back through the letterbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from wildpose.detect2d.base import Letterbox
from wildpose.geometry import box_iou
from wildpose.skeleton import COCO_SIGMAS
from wildpose.types import People2D

# per-keypoint falloff of COCO's object keypoint similarity (OKS), nose .. right ankle

Infer = Callable[[np.ndarray, Letterbox], People2D]


@dataclass(frozen=True)
class CropConfig:
    """How the crop pass chooses, cuts and merges crops.

    size: side of the square model input a crop is enlarged (or shrunk) to, pixels.
    margin: fraction of the person's extent added on every side before squaring.
    max_crops: at most this many people per frame are refined, highest score first (bounds the cost in crowds).
    min_gain: refine a person only if the crop shows them at least this many times larger than the first pass
        did; people already large in the first pass gain nothing from a second look.
    min_iou: the crop's person must overlap the first pass's box by this intersection-over-union.
    merge: ``"keypoint"`` keeps, per keypoint, whichever pass scored it higher; ``"person"`` takes the crop's
        whole skeleton when its mean keypoint score is higher; ``"crop"`` takes the crop's skeleton whenever
        the crop found the person (one source per person and frame: the least jitter).
    """

    size: int = 224
    margin: float = 0.3
    max_crops: int = 4
    min_gain: float = 1.5
    min_iou: float = 0.3
    merge: str = "crop"

    def __post_init__(self):
        if self.size < 32 or self.size % 32:
            raise ValueError(f"size: expected a multiple of 32, >= 32, got {self.size}")
        if self.merge not in ("keypoint", "person", "crop"):
            raise ValueError(f"merge: expected 'keypoint', 'person' or 'crop', got {self.merge!r}")
        if self.margin < 0 or self.max_crops < 0 or self.min_gain < 0:
            raise ValueError("margin, max_crops and min_gain must be >= 0")


def person_extents(people: People2D, min_keypoint_score: float = 0.1) -> np.ndarray:
    """Box around each person: the union of its model box and its keypoints scoring >= ``min_keypoint_score``.

    Returns
    -------
    (N, 4) float64 x1, y1, x2, y2 pixels.
    """
    boxes = people.boxes[:, :4].astype(np.float64)
    kp = people.keypoints.astype(np.float64)
    ok = kp[..., 2] >= min_keypoint_score
    # +-inf where a keypoint is not confident, so it never moves the extent
    lo_x, lo_y = np.where(ok, kp[..., 0], np.inf).min(1), np.where(ok, kp[..., 1], np.inf).min(1)
    hi_x, hi_y = np.where(ok, kp[..., 0], -np.inf).max(1), np.where(ok, kp[..., 1], -np.inf).max(1)
    return np.stack(
        [np.minimum(boxes[:, 0], lo_x), np.minimum(boxes[:, 1], lo_y),
         np.maximum(boxes[:, 2], hi_x), np.maximum(boxes[:, 3], hi_y)],
        axis=1,
    ).reshape(-1, 4)


def square_boxes(extents: np.ndarray, margin: float, min_side: float = 16.0) -> np.ndarray:
    """Squares centred on each extent, side = longer side of the extent times ``1 + 2 * margin``.

    Parameters
    ----------
    extents
        (N, 4) x1, y1, x2, y2 pixels.

    Returns
    -------
    (N, 3) float64 centre x, centre y, side (pixels).
    """
    extents = np.asarray(extents, np.float64).reshape(-1, 4)
    cx = (extents[:, 0] + extents[:, 2]) / 2
    cy = (extents[:, 1] + extents[:, 3]) / 2
    side = np.maximum(extents[:, 2] - extents[:, 0], extents[:, 3] - extents[:, 1]) * (1 + 2 * margin)
    return np.stack([cx, cy, np.maximum(side, min_side)], axis=1)


def crop_square(image: np.ndarray, cx: float, cy: float, side: float, size: int) -> tuple[np.ndarray, Letterbox]:
    """Cut the square (centre ``cx, cy``, ``side`` pixels) from ``image`` and resample it to ``size`` x ``size``.

    Parts of the square outside the image are black. Returns the (size, size, 3) uint8 canvas and the
    :class:`Letterbox` mapping canvas coordinates back to ``image`` pixels.
    """
    scale = size / side
    # continuous coordinates (pixel i spans [i, i+1)): canvas = scale * (image - corner)
    offset_x = -(cx - side / 2) * scale
    offset_y = -(cy - side / 2) * scale
    # warpAffine indexes pixel centres, hence the half-pixel terms
    matrix = np.array(
        [[scale, 0.0, offset_x + 0.5 * scale - 0.5], [0.0, scale, offset_y + 0.5 * scale - 0.5]], np.float64
    )
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas = cv2.warpAffine(image, matrix, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return canvas, Letterbox(scale, scale, offset_x, offset_y, size, size)


def keypoint_similarity(a: People2D, b: People2D, min_keypoint_score: float = 0.2) -> np.ndarray:
    """COCO-style object keypoint similarity between every person of ``a`` and of ``b`` -> (N, M) in [0, 1].

    Only keypoints scoring >= ``min_keypoint_score`` in both count; the scale is the larger box's area.
    Pairs with fewer than 3 such keypoints get 0.
    """
    ka = a.keypoints.astype(np.float64)[:, None]
    kb = b.keypoints.astype(np.float64)[None]
    both = (ka[..., 2] >= min_keypoint_score) & (kb[..., 2] >= min_keypoint_score)
    d2 = ((ka[..., :2] - kb[..., :2]) ** 2).sum(-1)
    area = lambda boxes: (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # noqa: E731
    s2 = np.maximum(area(a.boxes.astype(np.float64))[:, None], area(b.boxes.astype(np.float64))[None])
    e = d2 / (2 * np.maximum(s2, 1.0)[..., None] * (2 * COCO_SIGMAS) ** 2)
    count = both.sum(-1)
    oks = np.where(both, np.exp(-e), 0.0).sum(-1) / np.maximum(count, 1)
    return np.where(count >= 3, oks, 0.0)


def suppress_duplicates(people: People2D, oks_threshold: float = 0.5, iou_threshold: float = 0.7) -> People2D:
    """Greedy non-maximum suppression: keep the higher-scoring of any two people whose keypoints agree
    (OKS > ``oks_threshold``) or whose boxes overlap (IoU > ``iou_threshold``). Output sorted by score."""
    if len(people) < 2:
        return people
    return people[unique_people(people, oks_threshold, iou_threshold)]


def unique_people(people: People2D, oks_threshold: float = 0.5, iou_threshold: float = 0.7) -> np.ndarray:
    """Indices of the people :func:`suppress_duplicates` keeps, best score first."""
    order = np.argsort(-people.scores, kind="stable")
    if len(people) < 2:
        return order
    ranked = people[order]
    similar = (keypoint_similarity(ranked, ranked) > oks_threshold) | (
        box_iou(ranked.boxes[:, :4], ranked.boxes[:, :4]) > iou_threshold
    )
    keep = np.ones(len(ranked), bool)
    for i in range(len(ranked)):
        if keep[i]:
            later = np.arange(len(ranked)) > i
            keep[later & similar[i]] = False
    return order[keep]


def refine_people(
    infer: Infer,
    image: np.ndarray,
    people: People2D,
    first_pass_scale: float,
    config: CropConfig = CropConfig(),
) -> People2D:
    """Run the model again on an enlarged square crop around each person and merge the answers.

    Parameters
    ----------
    infer
        Runs the model on a (size, size, 3) uint8 canvas and returns everyone it finds, mapped through the
        given :class:`Letterbox` to pixels of ``image``.
    image
        (H, W, 3) uint8, the full-resolution frame.
    people
        The first pass's people (N), in pixels of ``image``.
    first_pass_scale
        Model-input pixels per image pixel in the first pass (decides whether a crop enlarges a person).
    config
        :class:`CropConfig`.

    Returns
    -------
    People2D
        Same people, same order: keypoints, boxes and scores replaced where the crop did better.
    """
    if len(people) == 0 or config.max_crops == 0:
        return people
    keypoints = people.keypoints.copy()
    boxes = people.boxes.copy()
    squares = square_boxes(person_extents(people), config.margin)
    gain = config.size / squares[:, 2] / first_pass_scale
    order = [i for i in np.argsort(-people.scores, kind="stable") if gain[i] >= config.min_gain]
    for i in order[: config.max_crops]:
        cx, cy, side = squares[i]
        canvas, box = crop_square(image, cx, cy, side, config.size)
        found = infer(canvas, box)
        if len(found) == 0:
            continue
        iou = box_iou(boxes[i, :4], found.boxes[:, :4])[0]
        j = int(np.argmax(iou))
        if iou[j] < config.min_iou:
            continue
        new_kp = found.keypoints[j]
        if config.merge == "keypoint":
            better = new_kp[:, 2] > keypoints[i, :, 2]
            keypoints[i, better] = new_kp[better]
        elif config.merge == "crop" or new_kp[:, 2].mean() > keypoints[i, :, 2].mean():
            keypoints[i] = new_kp
        if found.boxes[j, 4] > boxes[i, 4]:
            # the crop's box was measured at the higher resolution; its score says how sure the model is
            # when it can see the person properly
            boxes[i] = found.boxes[j]
    return People2D(keypoints, boxes)


def tile_windows(width: int, height: int, tiles: int, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """``tiles`` overlapping windows along the image's longer axis, each spanning the whole shorter axis.

    Each window is ``longer / tiles * (1 + overlap)`` long (capped at the image), evenly spaced from edge to
    edge, so a person cut by one window's edge is whole in its neighbour when narrower than the overlap.

    Returns
    -------
    list of (x1, y1, x2, y2) integer pixel windows, ``tiles`` of them (one, the whole image, for ``tiles <= 1``).
    """
    if tiles <= 1:
        return [(0, 0, width, height)]
    longer = max(width, height)
    length = min(longer, int(np.ceil(longer / tiles * (1 + overlap))))
    starts = np.round(np.linspace(0, longer - length, tiles)).astype(int)
    if width >= height:
        return [(int(s), 0, int(s) + length, height) for s in starts]
    return [(0, int(s), width, int(s) + length) for s in starts]
