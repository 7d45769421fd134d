"""Camera intrinsics and lens distortion: where a video's pixels come from, so the lifter sees true camera rays.

The lifter is trained on ideal pinhole projections. A real lens bends straight lines (barrel distortion of wide
phone and action cameras, the equidistant-like projection of fisheye lenses), so its 2D keypoints are moved back
to where an ideal pinhole camera with the same focal length and principal point would have seen them before they
are lifted. Coefficients follow OpenCV's conventions, so the output of ``cv2.calibrateCamera`` or
``cv2.fisheye.calibrate`` can be used as it is.

- ``"pinhole"``: no distortion.
- ``"opencv"``: k1, k2, p1, p2[, k3[, k4, k5, k6]]: radial polynomial (rational with k4..k6) and tangential terms.
- ``"fisheye"``: k1, k2, k3, k4 of OpenCV's fisheye model, theta_d = theta (1 + k1 theta^2 + ... + k4 theta^8).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from wildpose.lift.normalize import DEFAULT_FOV_DEG, focal_from_fov

log = logging.getLogger(__name__)

MODELS = ("pinhole", "opencv", "fisheye")
_N_COEFFICIENTS = {"pinhole": (0,), "opencv": (4, 5, 8), "fisheye": (4,)}

# a point whose undistorted position does not map back onto the detected one (to this many pixels) lies where
# the lens model cannot be inverted (beyond the calibrated field, behind a fisheye's 90 degrees): it becomes NaN
_ROUND_TRIP_TOLERANCE_PX = 0.5
# OpenCV's default for undistortPoints is 5 fixed-point iterations: not enough for strong barrel distortion near
# the corners. Its EPS criterion is the reprojection error in pixels.
_OPENCV_CRITERIA = (3, 100, 1e-4)  # cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS
_FISHEYE_CRITERIA = (3, 20, 1e-10)


def _finite_float(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return out


def _image_size(image_size) -> tuple[float, float]:
    try:
        w, h = (float(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size: expected (width, height) in pixels, got {image_size!r}") from None
    if not (w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h)):
        raise ValueError(f"image_size: expected positive (width, height) in pixels, got {image_size!r}")
    return w, h


@dataclass(frozen=True)
class CameraIntrinsics:
    """A camera's intrinsic parameters, in pixels of the displayed frame (x right, y down).

    Attributes
    ----------
    fx, fy : float
        Focal lengths in pixels (positive).
    cx, cy : float
        Principal point in pixels (where the optical axis meets the image).
    model : str
        ``"pinhole"`` (no distortion), ``"opencv"`` or ``"fisheye"`` (see the module docstring).
    distortion : tuple of float
        The model's coefficients in OpenCV's order: none for pinhole; 4, 5 or 8 for opencv; 4 for fisheye.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "pinhole"
    distortion: tuple[float, ...] = ()

    def __post_init__(self):
        for name in ("fx", "fy"):
            value = _finite_float(getattr(self, name), name)
            if value <= 0:
                raise ValueError(f"{name}: expected a positive focal length in pixels, got {value!r}")
            object.__setattr__(self, name, value)
        for name in ("cx", "cy"):
            object.__setattr__(self, name, _finite_float(getattr(self, name), name))
        if self.model not in MODELS:
            raise ValueError(f"model: expected one of {', '.join(MODELS)}, got {self.model!r}")
        if isinstance(self.distortion, str):
            raise ValueError(f"distortion: expected a sequence of numbers, got the string {self.distortion!r}")
        try:
            coefficients = tuple(self.distortion)
        except TypeError:
            raise ValueError(f"distortion: expected a sequence of numbers, got {self.distortion!r}") from None
        coefficients = tuple(_finite_float(c, f"distortion[{i}]") for i, c in enumerate(coefficients))
        allowed = _N_COEFFICIENTS[self.model]
        if len(coefficients) not in allowed:
            raise ValueError(f"distortion: the {self.model} model takes "
                             f"{' or '.join(str(n) for n in allowed)} coefficients, got {len(coefficients)}")
        object.__setattr__(self, "distortion", coefficients)

    # -- constructors ------------------------------------------------------------------------------------------
    @classmethod
    def from_focal(cls, image_size: tuple[int, int], focal_px: float) -> "CameraIntrinsics":
        """Pinhole camera with square pixels, focal length ``focal_px`` (pixels), principal point at the centre."""
        w, h = _image_size(image_size)
        return cls(focal_px, focal_px, w / 2.0, h / 2.0)

    @classmethod
    def from_fov(cls, image_size: tuple[int, int], fov_deg: float) -> "CameraIntrinsics":
        """Pinhole camera whose horizontal field of view across the LONGER image side is ``fov_deg`` degrees."""
        w, h = _image_size(image_size)
        fov = _finite_float(fov_deg, "fov_deg")
        return cls.from_focal((w, h), focal_from_fov((w, h), fov))

    @classmethod
    def default(cls, image_size: tuple[int, int]) -> "CameraIntrinsics":
        """What wildpose assumes when nothing is known: a pinhole with DEFAULT_FOV_DEG (60) degrees across the
        longer side, principal point at the centre (the same focal length as ``lift(focal_length=None)``)."""
        return cls.from_fov(image_size, DEFAULT_FOV_DEG)

    @classmethod
    def parse_cli(cls, image_size: tuple[int, int], focal: float | None = None, fov: float | None = None,
                  distortion: str | Sequence[float] | None = None,
                  fisheye: str | Sequence[float] | None = None) -> "CameraIntrinsics":
        """The camera described by the command line's --focal/--fov/--distortion/--fisheye, for one video.

        Parameters
        ----------
        image_size : (width, height)
            Pixels; the principal point is the image centre.
        focal : float, optional
            Focal length in pixels. Exclusive with ``fov``.
        fov : float, optional
            Horizontal field of view in degrees across the longer side. Neither: DEFAULT_FOV_DEG.
        distortion : str or sequence of float, optional
            OpenCV coefficients "k1,k2,p1,p2[,k3[,k4,k5,k6]]". Exclusive with ``fisheye``.
        fisheye : str or sequence of float, optional
            OpenCV fisheye coefficients "k1,k2,k3,k4". Needs ``focal``: a fisheye's field of view does not
            give its focal length by the pinhole relation ``fov`` uses.

        Raises
        ------
        ValueError
            with a one-line message naming the option, for conflicting or malformed options. Coefficients
            without a focal length are refused: they only mean something for the focal length they were
            calibrated with.
        """
        if focal is not None and fov is not None:
            raise ValueError("--focal and --fov are mutually exclusive: give the focal length in pixels or the "
                             "field of view in degrees, not both")
        if distortion is not None and fisheye is not None:
            raise ValueError("--distortion and --fisheye are mutually exclusive: a lens has one model")
        if focal is not None:
            f = _finite_float(focal, "--focal")
            if f <= 0:
                raise ValueError(f"--focal: expected a positive focal length in pixels, got {focal!r}")
            camera = cls.from_focal(image_size, f)
        elif fov is not None:
            v = _finite_float(fov, "--fov")
            if not 0.0 < v < 180.0:
                raise ValueError(f"--fov: expected a field of view in degrees between 0 and 180, got {fov!r}")
            camera = cls.from_fov(image_size, v)
        else:
            camera = cls.default(image_size)
        if distortion is None and fisheye is None:
            return camera
        option, model, text = (("--distortion", "opencv", distortion) if distortion is not None
                               else ("--fisheye", "fisheye", fisheye))
        if focal is None and (fov is None or model == "fisheye"):
            raise ValueError(f"{option} needs --focal{'' if model == 'fisheye' else ' (or --fov)'}: lens "
                             "coefficients are relative to the focal length they were calibrated with")
        coefficients = parse_coefficients(text, model, option)
        return cls(camera.fx, camera.fy, camera.cx, camera.cy, model, coefficients)

    # -- views -------------------------------------------------------------------------------------------------
    @property
    def focal_length(self) -> tuple[float, float]:
        """(fx, fy) in pixels."""
        return (self.fx, self.fy)

    @property
    def principal_point(self) -> tuple[float, float]:
        """(cx, cy) in pixels."""
        return (self.cx, self.cy)

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K, float64."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], np.float64)

    @property
    def is_distorted(self) -> bool:
        """True when the lens model moves points (a non-pinhole model with a non-zero coefficient)."""
        return self.model != "pinhole" and any(c != 0.0 for c in self.distortion)


def parse_coefficients(text: str | Sequence[float], model: str, option: str = "distortion") -> tuple[float, ...]:
    """"k1,k2,p1,p2" (commas, optional spaces) or a sequence of numbers -> a tuple of floats, checked for ``model``.

    Raises ValueError with a one-line message naming ``option``.
    """
    if model not in MODELS:
        raise ValueError(f"model: expected one of {', '.join(MODELS)}, got {model!r}")
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        if text.strip() == "" or any(p == "" for p in parts):
            raise ValueError(f"{option}: expected comma-separated numbers like 'k1,k2,p1,p2', got {text!r}")
    else:
        parts = list(text)
    values = []
    for i, part in enumerate(parts):
        try:
            value = float(part)
        except (TypeError, ValueError):
            raise ValueError(f"{option}: coefficient {i + 1} is not a number: {part!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"{option}: coefficient {i + 1} is not finite: {part!r}")
        values.append(value)
    allowed = _N_COEFFICIENTS[model]
    if len(values) not in allowed:
        expected = {"opencv": "4, 5 or 8 (k1,k2,p1,p2[,k3[,k4,k5,k6]])", "fisheye": "4 (k1,k2,k3,k4)",
                    "pinhole": "none"}[model]
        raise ValueError(f"{option}: expected {expected} coefficients, got {len(values)}")
    return tuple(values)


# -- point mapping ---------------------------------------------------------------------------------------------
def _split(keypoints: np.ndarray, name: str):
    """(..., 2|3) -> (float dtype for the output, (N, 2) float64 points, (N,) finite mask)."""
    kp = np.asarray(keypoints)
    if kp.ndim < 1 or kp.shape[-1] not in (2, 3):
        raise ValueError(f"{name}: expected shape (..., 2) or (..., 3) (x, y[, score]) in pixels, got {kp.shape}")
    dtype = kp.dtype if np.issubdtype(kp.dtype, np.floating) else np.dtype(np.float32)
    xy = kp[..., :2].reshape(-1, 2).astype(np.float64)
    return kp, dtype, xy, np.isfinite(xy).all(axis=1)


def _merge(kp: np.ndarray, dtype, mapped: np.ndarray, ok: np.ndarray) -> np.ndarray:
    out = kp.astype(dtype, copy=True)
    xy = np.full((ok.size, 2), np.nan, np.float64)
    xy[ok] = mapped
    out[..., :2] = xy.reshape(kp.shape[:-1] + (2,))
    return out


def _distort(xy: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """(N, 2) ideal pinhole pixels -> (N, 2) pixels through the lens, float64."""
    import cv2

    K = intrinsics.matrix
    D = np.asarray(intrinsics.distortion, np.float64)
    rays = (xy - [intrinsics.cx, intrinsics.cy]) / [intrinsics.fx, intrinsics.fy]
    if intrinsics.model == "fisheye":
        out = cv2.fisheye.distortPoints(np.ascontiguousarray(rays.reshape(-1, 1, 2)), K, D)
    else:
        obj = np.concatenate([rays, np.ones((len(rays), 1))], axis=1).reshape(-1, 1, 3)
        out, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), K, D)
    return out.reshape(-1, 2)


def _undistort(xy: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """(N, 2) pixels through the lens -> (N, 2) ideal pinhole pixels, float64, NaN where not invertible."""
    import cv2

    K = intrinsics.matrix
    D = np.asarray(intrinsics.distortion, np.float64)
    src = np.ascontiguousarray(xy.reshape(-1, 1, 2))
    if intrinsics.model == "fisheye":
        out = cv2.fisheye.undistortPoints(src, K, D, R=np.eye(3), P=K, criteria=_FISHEYE_CRITERIA)
    else:
        out = cv2.undistortPointsIter(src, K, D, np.eye(3), K, _OPENCV_CRITERIA)
    out = out.reshape(-1, 2).astype(np.float64)
    # both solvers are iterative and return their last iterate (or a sentinel) when they fail: check by mapping
    # back through the lens, so a wrong answer becomes NaN instead of a plausible-looking point
    with np.errstate(invalid="ignore"):
        back = _distort(np.where(np.isfinite(out), out, 0.0), intrinsics)
        bad = ~(np.isfinite(out).all(axis=1) & (np.linalg.norm(back - xy, axis=1) <= _ROUND_TRIP_TOLERANCE_PX))
    if bad.any():
        log.warning("%d of %d keypoints lie where the %s lens model cannot be inverted (set to NaN); if that is "
                    "more than a few far off the frame, the focal length or coefficients do not fit this video",
                    int(bad.sum()), len(xy), intrinsics.model)
        out[bad] = np.nan
    return out


def undistort_keypoints(keypoints: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Move keypoints seen through a real lens to where an ideal pinhole camera would have seen them.

    Parameters
    ----------
    keypoints : ndarray, (..., 2) or (..., 3)
        x, y in pixels of the displayed (distorted) frame, optionally a score column. NaN marks absence.
    intrinsics : CameraIntrinsics

    Returns
    -------
    ndarray, same shape
        x, y in pixels of an ideal pinhole camera with the same fx, fy, cx, cy; scores untouched; NaN stays
        NaN. Points where the lens model cannot be inverted (far outside the calibrated field, or beyond 90
        degrees off-axis for a fisheye) become NaN. Float input keeps its dtype; other input becomes float32.
        A pinhole camera returns the input itself (as a float array, no copy when it already is one).
    """
    kp, dtype, xy, ok = _split(keypoints, "keypoints")
    if not intrinsics.is_distorted:
        return np.asarray(kp, dtype)
    mapped = _undistort(xy[ok], intrinsics) if ok.any() else np.zeros((0, 2))
    return _merge(kp, dtype, mapped, ok)


def distort_points(points: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """The forward lens model: ideal pinhole pixels -> pixels of the real (distorted) image.

    The inverse of ``undistort_keypoints`` (to within the solver's 1e-4 px). For tests, and to give synthetic
    training projections a real lens.

    Parameters
    ----------
    points : ndarray, (..., 2) or (..., 3)
        x, y in pixels of an ideal pinhole camera with the same fx, fy, cx, cy; an optional score column.
    intrinsics : CameraIntrinsics

    Returns
    -------
    ndarray, same shape
        Distorted x, y in pixels; scores untouched; NaN stays NaN. Same dtype rules as ``undistort_keypoints``.
    """
    kp, dtype, xy, ok = _split(points, "points")
    if not intrinsics.is_distorted:
        return np.asarray(kp, dtype)
    mapped = _distort(xy[ok], intrinsics) if ok.any() else np.zeros((0, 2))
    return _merge(kp, dtype, mapped, ok)


__all__ = ["CameraIntrinsics", "MODELS", "parse_coefficients", "undistort_keypoints", "distort_points"]
