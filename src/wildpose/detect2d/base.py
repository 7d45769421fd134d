"""What every 2D detector is, and the pieces backends share.

A backend is one module holding one class that satisfies :class:`Detector2D`; adding one is adding a file
and a line to ``_BACKENDS``. Shared here: finding an installed package's files without importing it,
checking a model's sha256, creating a LiteRT interpreter, and the letterbox that maps model coordinates
back to pixels of the caller's image.

For example, a single-person BlazePose backend (``blazepose.py``) would locate ``pose_landmark_full.tflite``
with ``package_dir("mediapipe")``, check it with :func:`verify_sha256`, run it through
:func:`make_interpreter` on a ``letterbox(..., square=True)`` canvas (or on
:func:`wildpose.detect2d.crops.crop_square` around a person), take BlazePose-33 landmarks
0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28 as COCO-17, and return a one-row
:class:`People2D`.
"""

from __future__ import annotations

import contextlib

import hashlib
import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from wildpose.errors import ModelError
from wildpose.types import People2D

log = logging.getLogger(__name__)

# name -> "module:Class". Strings, so that creating one backend never imports the others (BlazePose would
# pull mediapipe's files in); read-only, so that no caller can change what a name means for everyone else.
_BACKENDS = MappingProxyType(
    {
        "movenet": "wildpose.detect2d.movenet:MoveNetMultiPose",
    }
)

# beyond two threads the XNNPACK kernels of these small models gain little, and the machine is shared with
# decoding and lifting (measured in benchmarks/bench_detect2d.py)
MAX_DEFAULT_THREADS = 4


@runtime_checkable
class Detector2D(Protocol):
    """Finds people in one RGB image.

    ``__call__(image)`` takes an (H, W, 3) uint8 RGB array and returns a :class:`~wildpose.types.People2D`
    with COCO-17 keypoints (x, y in pixels of that image, score in [0, 1]) and boxes (x1, y1, x2, y2 pixels,
    person score), one row per person kept by the detector's own threshold.
    """

    name: str

    def __call__(self, image: np.ndarray) -> People2D: ...


def available_detectors() -> tuple[str, ...]:
    """Names accepted by :func:`create_detector`."""
    return tuple(_BACKENDS)


def create_detector(name: str = "movenet", **options) -> Detector2D:
    """Create a detector by name.

    Parameters
    ----------
    name
        One of :func:`available_detectors` (``"movenet"``).
    **options
        Passed to the backend's constructor (for MoveNet: ``input_size``, ``num_threads``, ``refine``, ...).

    Raises
    ------
    ValueError
        Unknown name.
    ModelError
        The backend's model file is missing or corrupt.
    """
    try:
        target = _BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; available: {', '.join(_BACKENDS)}") from None
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**options)


def default_num_threads() -> int:
    """Interpreter threads when the caller gives none: the CPU count, capped at ``MAX_DEFAULT_THREADS``."""
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_THREADS))


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (its ``__init__`` may be heavy).

    Raises
    ------
    ModelError
        The package is not installed.
    """
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelError(f"the package {package!r}, which holds the model, is not installed", package)
    return Path(locations[0])


def verify_sha256(data: bytes, expected: str, source: str | os.PathLike) -> None:
    """Raise :class:`ModelError` naming ``source`` unless ``sha256(data)`` is ``expected`` (hex)."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.lower():
        raise ModelError(f"model checksum mismatch: sha256 {actual}, expected {expected}", source)


@contextlib.contextmanager
def native_stderr_silenced():
    """LiteRT's C++ code prints "INFO: Created TensorFlow Lite XNNPACK delegate" straight to file descriptor 2,
    which would break the CLI's promise of one line per failed file; Python-level errors still propagate."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to protect
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def make_interpreter(model: bytes, num_threads: int | None, source: str | os.PathLike):
    """A LiteRT interpreter for a tflite flatbuffer, tensors not yet allocated.

    Raises
    ------
    ModelError
        The runtime refuses the bytes.
    """
    from ai_edge_litert.interpreter import Interpreter

    threads = default_num_threads() if num_threads is None else int(num_threads)
    if threads < 1:
        raise ValueError(f"num_threads: expected >= 1, got {threads}")
    try:
        with native_stderr_silenced():
            return Interpreter(model_content=model, num_threads=threads)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load the tflite model: {exc}", source) from exc


def check_image(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as a C-contiguous (H, W, 3) uint8 array, or raise ValueError naming what is wrong."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image: expected shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image: expected dtype uint8, got {image.dtype}")
    return np.ascontiguousarray(image)


@dataclass(frozen=True)
class Letterbox:
    """Source pixels map to canvas pixels by ``x * scale_x + offset_x``, ``y * scale_y + offset_y``.

    The canvas is ``width`` x ``height`` pixels; model outputs normalised to it map back to source pixels
    with :meth:`to_source`. Used for the letterboxed full frame and for crops (negative offsets).
    """

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    width: int
    height: int

    def to_source(self, x_norm: np.ndarray, y_norm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canvas-normalised [0, 1] coordinates -> pixels of the source image (same shapes)."""
        x = (np.asarray(x_norm, np.float64) * self.width - self.offset_x) / self.scale_x
        y = (np.asarray(y_norm, np.float64) * self.height - self.offset_y) / self.scale_y
        return x, y


def letterbox(image: np.ndarray, longer_side: int, multiple: int = 1, square: bool = False) -> tuple[np.ndarray, Letterbox]:
    """Scale ``image`` so its longer side is ``longer_side`` and pad (black, bottom/right) to the canvas.

    Parameters
    ----------
    image
        (H, W, 3) uint8.
    longer_side
        Pixels of the longer side after scaling.
    multiple
        Canvas height and width are rounded up to a multiple of this (32 for MoveNet).
    square
        Pad to a ``longer_side`` square instead (models with a fixed square input).

    Returns
    -------
    canvas
        (h, w, 3) uint8.
    box
        The :class:`Letterbox` that maps canvas coordinates back.
    """
    h, w = image.shape[:2]
    scale = longer_side / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    # area averaging when shrinking keeps thin limbs visible; bilinear when enlarging
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp) if (new_w, new_h) != (w, h) else image
    if square:
        canvas_w = canvas_h = longer_side
    else:
        canvas_w = -(-new_w // multiple) * multiple
        canvas_h = -(-new_h // multiple) * multiple
    if (canvas_h, canvas_w) == (new_h, new_w):
        canvas = np.ascontiguousarray(resized)
    else:
        canvas = np.zeros((canvas_h, canvas_w, 3), np.uint8)
        canvas[:new_h, :new_w] = resized
    # per-axis ratios: rounding the new size makes them differ slightly from ``scale``
    return canvas, Letterbox(new_w / w, new_h / h, 0.0, 0.0, canvas_w, canvas_h)
