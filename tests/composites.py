"""Videos built from the real walker (walk_single.mp4) for the tracking tests and benchmark: occluded by a
painted box, crossing a mirrored copy of himself, leaving the frame and coming back. Real pixels throughout:
the walker is cut out of his frames by subtraction of the scene's median background and pasted onto it.

The walker crosses the 480 x 360 field from right to left at about 35 pixels a second; his box is about 100
pixels tall. Every helper writes an H.264 file with wildpose.video.VideoWriter (PyAV) and returns the ground
truth that goes with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS = 25.0


@dataclass
class Walker:
    """The source: ``background`` (H, W, 3) uint8, the median of the video's frames (the walker moves, the scene
    does not), and the walker's box centre x per frame (NaN where he is not detected) from a detection pass."""

    path: Path
    background: np.ndarray
    centre_x: np.ndarray  # (444,) pixels
    boxes: np.ndarray  # (444, 4) x1, y1, x2, y2 pixels, NaN where not detected

    @property
    def width(self) -> int:
        return self.background.shape[1]


def load_walker(path: Path, detector) -> Walker:
    from wildpose.video import read_frames

    samples, centre, boxes = [], [], []
    for frame in read_frames(path):
        if frame.index % 4 == 0:
            samples.append(frame.image)
        people = detector(frame.image)
        ok = people.scores >= 0.2
        if ok.any():
            b = people.boxes[np.flatnonzero(ok)[np.argmax(people.scores[ok])], :4]
            boxes.append(b)
            centre.append((b[0] + b[2]) / 2)
        else:
            boxes.append(np.full(4, np.nan, np.float32))
            centre.append(np.nan)
    background = np.median(np.stack(samples), axis=0).astype(np.uint8)
    return Walker(Path(path), background, np.array(centre), np.array(boxes))


def _frames(walker: Walker, first: int, last: int) -> list[np.ndarray]:
    """Frames first..last (inclusive) of the source, as RGB arrays (a few seconds: tens of MB)."""
    from wildpose.video import read_frames

    return [f.image for f in read_frames(walker.path) if first <= f.index <= last]


def _foreground(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels that differ from the background (the walker), closed and dilated a little."""
    import cv2

    diff = np.abs(image.astype(np.int16) - background.astype(np.int16)).max(-1)
    mask = (diff > 30).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    return cv2.dilate(mask, np.ones((5, 5), np.uint8)).astype(bool)


def _write(path: Path, images: list[np.ndarray]) -> Path:
    from wildpose.video import VideoWriter

    h, w = images[0].shape[:2]
    with VideoWriter(path, w, h, FPS) as writer:
        for image in images:
            writer.write(image)
    return path


def occluded(walker: Walker, out: Path, first: int = 60, last: int = 160,
             hidden: tuple[int, int] = (105, 120)) -> tuple[Path, tuple[int, int]]:
    """Frames first..last with a grey box painted where the walker is during source frames ``hidden`` (the
    union of his boxes then, 8 px wider each side): he is wholly behind it for those frames, like behind a
    pillar. Returns the file and the box's x range."""
    a, b = hidden
    boxes = walker.boxes[a:b + 1]
    x1, x2 = int(np.nanmin(boxes[:, 0])) - 8, int(np.nanmax(boxes[:, 2])) + 8
    y1, y2 = int(np.nanmin(boxes[:, 1])) - 8, int(np.nanmax(boxes[:, 3])) + 8
    images = _frames(walker, first, last)
    for image in images:
        image[max(0, y1):y2, max(0, x1):x2] = (128, 128, 128)
    return _write(out, images), (x1, x2)


def crossing(walker: Walker, out: Path, first: int = 100, last: int = 200) -> tuple[Path, np.ndarray]:
    """The walker (right to left) and his mirror image (left to right) on the same background: they meet in
    the middle of the clip, the original passing in front. Returns the file and (T, 2) the two copies' box
    centre x per frame, [original, mirrored] (the ground truth, by position)."""
    background = walker.background
    mirrored_background = background[:, ::-1]
    images = []
    for image in _frames(walker, first, last):
        mirrored = image[:, ::-1]
        front = _foreground(image, background)
        behind = _foreground(mirrored, mirrored_background) & ~front
        images.append(np.where(behind[..., None], mirrored, image))
    x = walker.centre_x
    seen = np.flatnonzero(np.isfinite(x))
    x = np.interp(np.arange(len(x)), seen, x[seen])[first:last + 1]  # frames the detector missed: in between
    return _write(out, images), np.stack([x, walker.width - x], 1)


def reentry(walker: Walker, out: Path, gap_frames: int = 38, leave: tuple[int, int] = (210, 285),
            enter: tuple[int, int] = (20, 95)) -> tuple[Path, int]:
    """The walker leaves at the left edge (source frames ``leave``), the empty scene for ``gap_frames``, then
    he comes back in at the left edge walking right (the mirror image of source frames ``enter``, where he
    walks in from the right, pasted onto the unmirrored background). Returns the file and the index of the
    first frame of the re-entry part."""
    background = walker.background
    images = _frames(walker, *leave)
    images += [background.copy() for _ in range(gap_frames)]
    back = len(images)
    for image in _frames(walker, *enter):
        mirrored = image[:, ::-1]
        mask = _foreground(mirrored, background[:, ::-1])
        images.append(np.where(mask[..., None], mirrored, background))
    return _write(out, images), back
