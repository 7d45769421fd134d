"""2D detection: the real MoveNet model on real pixels (skimage's astronaut, the shared videos)."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from wildpose.detect2d import CropConfig, Detector2D, MoveNetMultiPose, available_detectors, create_detector
from wildpose.detect2d import movenet
from wildpose.detect2d.base import letterbox, verify_sha256
from wildpose.detect2d.crops import crop_square, suppress_duplicates, tile_windows
from wildpose.errors import ModelError
from wildpose.skeleton import COCO_FLIP, COCO_NAMES
from wildpose.types import People2D
from wildpose.video import read_frames as decode_frames

K = {name: i for i, name in enumerate(COCO_NAMES)}


@pytest.fixture(scope="module")
def detector() -> MoveNetMultiPose:
    return MoveNetMultiPose()


@pytest.fixture(scope="module")
def plain() -> MoveNetMultiPose:
    """Full-frame pass only, so that geometry tests see the model and the letterbox alone."""
    return MoveNetMultiPose(refine=False, tiles=1)


def read_frames(path, step: int = 1) -> dict[int, np.ndarray]:
    """Every ``step``-th frame's image, by frame index."""
    return {f.index: f.image for f in decode_frames(path) if f.index % step == 0}


# --- registry and model file ---------------------------------------------------------------------------


def test_registry_creates_movenet_and_refuses_unknown_names():
    assert "movenet" in available_detectors()
    detector = create_detector("movenet", refine=False)
    assert isinstance(detector, MoveNetMultiPose) and isinstance(detector, Detector2D)
    assert detector.name == "movenet"
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        create_detector("nope")


def test_verify_sha256_refuses_tampered_bytes():
    data = movenet.read_model()
    verify_sha256(data, movenet.MODEL_SHA256, "movenet.tflite")  # the shipped bytes pass
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(ModelError, match="checksum mismatch") as info:
        verify_sha256(bytes(tampered), movenet.MODEL_SHA256, "movenet.tflite")
    assert info.value.path == "movenet.tflite"


def test_read_model_refuses_tampered_missing_and_broken_bundles(tmp_path):
    original = movenet.model_archive_path()
    data = movenet.read_model(original)
    tampered = tmp_path / "tampered.nfd"
    with zipfile.ZipFile(tampered, "w") as bundle:
        bundle.writestr(movenet.MODEL_MEMBER, data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(ModelError, match="checksum mismatch"):
        movenet.read_model(tampered)

    no_member = tmp_path / "empty.nfd"
    with zipfile.ZipFile(no_member, "w") as bundle:
        bundle.writestr("other.txt", "x")
    with pytest.raises(ModelError, match="no member"):
        movenet.read_model(no_member)

    with pytest.raises(ModelError, match="missing"):
        movenet.read_model(tmp_path / "absent.nfd")

    truncated = tmp_path / "truncated.nfd"
    shutil.copyfile(original, truncated)
    with open(truncated, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(ModelError):
        movenet.read_model(truncated)


def test_rejects_bad_images_and_options(plain):
    with pytest.raises(ValueError, match="dtype"):
        plain(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        plain(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="input_size"):
        MoveNetMultiPose(input_size=250)
    with pytest.raises(ValueError, match="tiles"):
        MoveNetMultiPose(tiles=0)
    with pytest.raises(ValueError, match="merge"):
        CropConfig(merge="average")


# --- geometry without the model ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(360, 480), (540, 960), (700, 333), (512, 512)])
def test_letterbox_maps_a_marked_pixel_back(shape):
    h, w = shape
    image = np.zeros((h, w, 3), np.uint8)
    y0, x0 = int(h * 0.61), int(w * 0.27)
    image[y0 - 4 : y0 + 5, x0 - 4 : x0 + 5] = 255  # a 9x9 square centred on pixel (x0, y0)
    canvas, box = letterbox(image, 256, multiple=32)
    assert canvas.shape[0] % 32 == 0 and canvas.shape[1] % 32 == 0 and max(canvas.shape[:2]) == 256
    weights = canvas[..., 0].astype(np.float64)
    cy, cx = (np.indices(weights.shape) * weights).reshape(2, -1).sum(1) / weights.sum()
    # the blob's centre of mass in canvas pixel-centre coordinates -> normalised continuous coordinates
    x, y = box.to_source((cx + 0.5) / box.width, (cy + 0.5) / box.height)
    assert abs(x - (x0 + 0.5)) < 0.5 and abs(y - (y0 + 0.5)) < 0.5


def test_crop_square_maps_back_and_pads_outside_with_black():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    # scale 1: a pure shift; the square (118..182, -12..52) reaches past the right and top edges
    canvas, box = crop_square(image, cx=150.0, cy=20.0, side=64.0, size=64)
    assert np.array_equal(canvas[12:, :42], image[:52, 118:])
    assert canvas[:12].max() == 0 and canvas[:, 42:].max() == 0
    x, y = box.to_source((np.array([5]) + 0.5) / 64, (np.array([30]) + 0.5) / 64)
    assert np.allclose([x[0], y[0]], [118 + 5 + 0.5, 30 - 12 + 0.5])
    # enlarged 2.5 times: a marked blob's centre maps back to where it was drawn
    image = np.zeros((120, 160, 3), np.uint8)
    image[60:65, 40:45] = 255  # centred on pixel (42, 62)
    canvas, box = crop_square(image, cx=47.3, cy=55.1, side=51.2, size=128)
    weights = canvas[..., 0].astype(np.float64)
    cy, cx = (np.indices(weights.shape) * weights).reshape(2, -1).sum(1) / weights.sum()
    x, y = box.to_source((cx + 0.5) / 128, (cy + 0.5) / 128)
    assert abs(x - 42.5) < 0.2 and abs(y - 62.5) < 0.2


def test_tile_windows_cover_the_image_with_overlap():
    windows = tile_windows(960, 540, 2)
    assert windows[0][0] == 0 and windows[-1][2] == 960 and all(w[1] == 0 and w[3] == 540 for w in windows)
    assert windows[0][2] > windows[1][0]  # they overlap
    assert tile_windows(540, 960, 3)[-1][3] == 960 and tile_windows(100, 50, 1) == [(0, 0, 100, 50)]


def test_suppress_duplicates_keeps_the_better_of_two_copies(astronaut, plain):
    person = plain(astronaut)
    assert len(person) == 1
    shifted = People2D(person.keypoints + [2.0, 1.0, 0.0], person.boxes + [2, 1, 2, 1, -0.05])
    far = People2D(person.keypoints + [600.0, 0.0, 0.0], person.boxes + [600, 0, 600, 0, -0.1])
    crowd = People2D(
        np.concatenate([shifted.keypoints, person.keypoints, far.keypoints]),
        np.concatenate([shifted.boxes, person.boxes, far.boxes]),
    )
    kept = suppress_duplicates(crowd)
    assert len(kept) == 2
    assert np.array_equal(kept.keypoints[0], person.keypoints[0]) and np.array_equal(kept.keypoints[1], far.keypoints[0])


# --- the model on the astronaut -----------------------------------------------------------------------


def test_astronaut_is_one_person_facing_the_camera(astronaut, detector):
    people = detector(astronaut)
    assert len(people) == 1
    kp = people.keypoints[0]
    for name in ("nose", "left_eye", "right_eye"):
        x, y, score = kp[K[name]]
        assert score > 0.3 and 150 < x < 300 and 50 < y < 200, (name, kp[K[name]])
    nose_y = kp[K["nose"], 1]
    for name in ("left_shoulder", "right_shoulder"):
        assert kp[K[name], 2] > 0.3 and kp[K[name], 1] > nose_y + 60, name
    # she faces us: her left shoulder is on the image's right
    assert kp[K["left_shoulder"], 0] > kp[K["right_shoulder"], 0] + 100
    assert kp[K["left_eye"], 0] > kp[K["right_eye"], 0]
    box = people.boxes[0]
    assert box[0] < kp[K["nose"], 0] < box[2] and box[1] < kp[K["nose"], 1] < box[3]


def test_mirrored_astronaut_gives_mirrored_keypoints(astronaut, detector):
    width = astronaut.shape[1]
    kp = detector(astronaut).keypoints[0]
    mirrored = detector(np.ascontiguousarray(astronaut[:, ::-1])).keypoints
    assert len(mirrored) == 1
    back = mirrored[0][COCO_FLIP]  # her left is the mirror image's right
    back[:, 0] = width - back[:, 0]
    confident = (kp[:, 2] > 0.3) & (back[:, 2] > 0.3)
    assert confident.sum() >= 7
    assert np.abs(back[confident, :2] - kp[confident, :2]).max() < 12  # pixels of a 512-pixel image


def test_padding_into_a_wide_canvas_moves_keypoints_by_the_offset(astronaut, plain):
    # same model scale (0.5) for both: the astronaut alone at 256, the 512x1024 canvas at 512;
    # an offset of 384 px = 192 model px (a multiple of 32) keeps the network's grid aligned
    alone = plain(astronaut)
    wide = np.zeros((512, 1024, 3), np.uint8)
    wide[:, 384:896] = astronaut
    padded = MoveNetMultiPose(input_size=512, refine=False, tiles=1)(wide)
    assert len(alone) == 1 and len(padded) == 1
    confident = (alone.keypoints[0, :, 2] > 0.3) & (padded.keypoints[0, :, 2] > 0.3)
    assert confident.sum() >= 7
    shift = padded.keypoints[0, confident, :2] - alone.keypoints[0, confident, :2]
    assert np.abs(shift - [384, 0]).max() < 3
    assert np.allclose(padded.boxes[0, [0, 2]] - alone.boxes[0, [0, 2]], 384, atol=3)


def test_no_person_in_coffee_or_a_flat_image(detector):
    from skimage import data

    assert len(detector(data.coffee())) == 0
    assert len(detector(np.full((360, 480, 3), 128, np.uint8))) == 0


# --- the shared videos ---------------------------------------------------------------------------------


def test_walk_video_man_found_while_visible_and_nobody_after(walk_video, detector):
    frames = read_frames(walk_video, step=6)
    visible = [i for i in frames if 20 <= i <= 280]  # wholly in view (checked by eye)
    absent = [i for i in frames if i >= 300]
    found = [len(detector(frames[i])) for i in visible]
    assert np.mean([n >= 1 for n in found]) >= 0.9, found
    assert max(found) == 1  # one man: never two people
    assert sum(len(detector(frames[i])) for i in absent) == 0


def test_refinement_finds_the_small_man_more_often(walk_video, detector, plain):
    frames = read_frames(walk_video, step=10)
    visible = [frames[i] for i in frames if 20 <= i <= 280]
    refined = [detector.detect_all(f) for f in visible]
    first = [plain.detect_all(f) for f in visible]
    # confident people and the man's mean keypoint score both rise with the second look
    assert sum(len(p[p.scores >= 0.2]) for p in refined) > sum(len(p[p.scores >= 0.2]) for p in first)
    best = lambda ps: np.mean([p.keypoints[np.argmax(p.scores), :, 2].mean() for p in ps if len(p)])  # noqa: E731
    assert best(refined) > best(first)


def test_crowd_video_several_people_per_frame_beyond_the_model_cap(crowd_video, detector):
    frames = read_frames(crowd_video, step=14)
    counts = [len(detector(f)) for f in frames.values()]
    assert min(counts) >= 4, counts
    assert np.mean(counts) > movenet.MAX_PEOPLE, counts  # tiling finds more than one pass's 6 slots
    people = detector(next(iter(frames.values())))
    h, w = next(iter(frames.values())).shape[:2]
    inside = (people.keypoints[..., 0] > -0.1 * w) & (people.keypoints[..., 0] < 1.1 * w)
    assert inside.all()
