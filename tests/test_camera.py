"""Camera intrinsics and lens distortion: construction and validation, OpenCV round trips on grids and on real
MoveNet keypoints, straight lines, and the lifter's principal point."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from wildpose.camera import CameraIntrinsics, distort_points, parse_coefficients, undistort_keypoints
from wildpose.lift import lift, load_lifter
from wildpose.lift.normalize import DEFAULT_FOV_DEG, denormalize_keypoints, focal_from_fov, normalize_keypoints

SIZE = (1920, 1080)
# a wide phone/action camera in its "linear-ish" mode: strong barrel distortion, OpenCV's 5-parameter order
BARREL = CameraIntrinsics(1200.0, 1200.0, 955.0, 547.0, "opencv", (-0.3, 0.1, 0.001, -0.001))
# an action camera's fisheye: ~120 degrees across 1920 px, coefficients of the size fisheye calibrations give
GOPRO = CameraIntrinsics(870.0, 868.0, 962.0, 538.0, "fisheye", (0.045, -0.012, 0.004, -0.0008))
LENSES = pytest.mark.parametrize("camera", [BARREL, GOPRO], ids=["opencv", "fisheye"])


def grid(size=SIZE, n=(49, 28)) -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(0, size[0], n[0]), np.linspace(0, size[1], n[1]))
    return np.stack([xs, ys], -1)  # (28, 49, 2) pixels, edges and corners included


def central(points: np.ndarray, size=SIZE, fraction: float = 0.8) -> np.ndarray:
    """Mask of points inside the central ``fraction`` of the image in each direction."""
    w, h = size
    return ((np.abs(points[..., 0] - w / 2) <= fraction * w / 2) & (np.abs(points[..., 1] - h / 2) <= fraction * h / 2))


@pytest.fixture(scope="module")
def astronaut_keypoints(astronaut) -> np.ndarray:
    """MoveNet's keypoints on skimage's astronaut (512 x 512): (17, 3) float32, pixels and scores."""
    from wildpose.detect2d import create_detector

    people = create_detector("movenet")(astronaut)
    assert len(people) >= 1, "MoveNet found nobody in the astronaut image"
    return people.keypoints[int(np.argmax(people.scores))]


# -- construction ------------------------------------------------------------------------------------------------


def test_constructors_match_the_lifters_default_focal_length():
    default = CameraIntrinsics.default(SIZE)
    assert default.fx == default.fy == focal_from_fov(SIZE, DEFAULT_FOV_DEG)
    assert default.principal_point == (960.0, 540.0) and default.model == "pinhole" and default.distortion == ()
    # horizontal field of view across the LONGER side, portrait video included
    for size in (SIZE, (1080, 1920)):
        cam = CameraIntrinsics.from_fov(size, 90.0)
        assert cam.fx == pytest.approx(max(size) / 2)
        assert 2 * math.degrees(math.atan(max(size) / 2 / cam.fx)) == pytest.approx(90.0)
    cam = CameraIntrinsics.from_focal((640, 480), 500)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (500.0, 500.0, 320.0, 240.0)
    np.testing.assert_array_equal(cam.matrix, [[500, 0, 320], [0, 500, 240], [0, 0, 1]])
    assert isinstance(BARREL.distortion, tuple) and BARREL.is_distorted and not default.is_distorted
    assert not CameraIntrinsics(500, 500, 320, 240, "opencv", (0, 0, 0, 0)).is_distorted


@pytest.mark.parametrize("kwargs, field", [
    (dict(fx=0.0), "fx"), (dict(fy=-3.0), "fy"), (dict(fx=float("nan")), "fx"), (dict(cx=float("inf")), "cx"),
    (dict(cy="middle"), "cy"), (dict(model="kannala"), "model"),
    (dict(model="opencv", distortion=(0.1, 0.2, 0.0)), "distortion"),
    (dict(model="opencv", distortion=(0.1,) * 6), "distortion"),
    (dict(model="fisheye", distortion=(0.1, 0.2, 0.0, 0.0, 0.0)), "distortion"),
    (dict(model="pinhole", distortion=(0.1, 0.0, 0.0, 0.0)), "distortion"),
    (dict(model="opencv", distortion=(0.1, float("nan"), 0.0, 0.0)), "distortion"),
    (dict(model="opencv", distortion="0.1,0,0,0"), "distortion"),
])
def test_invalid_intrinsics_name_the_field(kwargs, field):
    args = dict(fx=800.0, fy=800.0, cx=320.0, cy=240.0) | kwargs
    with pytest.raises(ValueError, match=rf"^{field}"):
        CameraIntrinsics(**args)


def test_intrinsics_are_frozen_and_hashable():
    with pytest.raises(AttributeError):
        BARREL.fx = 1.0
    assert len({BARREL, CameraIntrinsics(1200, 1200, 955, 547, "opencv", [-0.3, 0.1, 0.001, -0.001])}) == 1


def test_parse_cli_builds_each_camera():
    assert CameraIntrinsics.parse_cli(SIZE) == CameraIntrinsics.default(SIZE)
    assert CameraIntrinsics.parse_cli(SIZE, focal=1400) == CameraIntrinsics.from_focal(SIZE, 1400)
    assert CameraIntrinsics.parse_cli(SIZE, fov=75) == CameraIntrinsics.from_fov(SIZE, 75)
    cam = CameraIntrinsics.parse_cli(SIZE, focal=1200, distortion="-0.3, 0.1,0.001,-0.001")
    assert cam.model == "opencv" and cam.distortion == (-0.3, 0.1, 0.001, -0.001) and cam.fx == 1200
    cam = CameraIntrinsics.parse_cli(SIZE, focal=870, fisheye="0.045,-0.012,0.004,-0.0008")
    assert cam.model == "fisheye" and cam.distortion == (0.045, -0.012, 0.004, -0.0008) and cam.fx == 870
    cam = CameraIntrinsics.parse_cli(SIZE, fov=100, distortion="-0.1,0.01,0,0")
    assert cam.model == "opencv" and cam.fx == pytest.approx(focal_from_fov(SIZE, 100))
    eight = CameraIntrinsics.parse_cli(SIZE, focal=900, distortion=[0.1, 0.01, 0, 0, 0.001, 0.2, 0.02, 0.002])
    assert len(eight.distortion) == 8


@pytest.mark.parametrize("kwargs, message", [
    (dict(focal=1000, fov=60), "--focal and --fov are mutually exclusive"),
    (dict(focal=1000, distortion="0,0,0,0", fisheye="0,0,0,0"), "--distortion and --fisheye are mutually exclusive"),
    (dict(distortion="-0.3,0.1,0,0"), "--distortion needs --focal"),
    (dict(fisheye="0.1,0,0,0"), "--fisheye needs --focal"),
    (dict(fov=120, fisheye="0.1,0,0,0"), "--fisheye needs --focal: "),
    (dict(focal=1000, distortion="-0.3,0.1,0"), "--distortion: expected 4, 5 or 8"),
    (dict(focal=1000, distortion="-0.3,0.1,x,0"), "--distortion: coefficient 3 is not a number: 'x'"),
    (dict(focal=1000, distortion="-0.3,,0,0"), "--distortion: expected comma-separated numbers"),
    (dict(focal=1000, distortion=""), "--distortion: expected comma-separated numbers"),
    (dict(focal=1000, distortion="-0.3,0.1,0,nan"), "--distortion: coefficient 4 is not finite"),
    (dict(focal=1000, fisheye="0.1,0,0,0,0"), r"--fisheye: expected 4 \(k1,k2,k3,k4\)"),
    (dict(focal=-5), "--focal: expected a positive"),
    (dict(focal=float("inf")), "--focal: expected a finite"),
    (dict(fov=180), "--fov: expected a field of view in degrees between 0 and 180"),
    (dict(fov="wide"), "--fov: expected a number"),
])
def test_parse_cli_errors_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        CameraIntrinsics.parse_cli(SIZE, **kwargs)
    assert "\n" not in str(info.value)


def test_parse_coefficients_accepts_strings_and_sequences():
    assert parse_coefficients("1e-3, -2,0,0", "opencv") == (0.001, -2.0, 0.0, 0.0)
    assert parse_coefficients(np.array([0.1, 0.2, 0.3, 0.4]), "fisheye") == (0.1, 0.2, 0.3, 0.4)


# -- undistortion ------------------------------------------------------------------------------------------------


def test_pinhole_is_the_identity_and_does_not_copy():
    cam = CameraIntrinsics.default(SIZE)
    kp = np.random.default_rng(0).uniform(0, 1000, (5, 17, 3)).astype(np.float32)
    assert undistort_keypoints(kp, cam) is kp and distort_points(kp, cam) is kp
    as_int = np.array([[10, 20], [30, 40]])
    out = undistort_keypoints(as_int, cam)
    assert out.dtype == np.float32 and np.array_equal(out, as_int)
    zero = CameraIntrinsics(1000, 1000, 960, 540, "opencv", (0.0, 0.0, 0.0, 0.0))
    assert undistort_keypoints(kp, zero) is kp


@LENSES
def test_round_trip_on_a_grid_over_the_image(camera):
    ideal = grid()
    distorted = distort_points(ideal, camera)
    # the lens really moves points (tens to hundreds of pixels at the edges), so the round trip means something
    assert np.max(np.linalg.norm(distorted - ideal, axis=-1)) > 100
    back = undistort_keypoints(distorted, camera)
    err = np.linalg.norm(back - ideal, axis=-1)
    assert back.shape == ideal.shape and back.dtype == np.float64
    assert np.max(err[central(distorted)]) < 0.05
    assert np.max(err) < 0.05  # and, for these lenses, everywhere in the frame
    # the other direction: points as detected in the distorted frame, to pinhole and back
    seen = grid()
    again = distort_points(undistort_keypoints(seen, camera), camera)
    assert np.max(np.linalg.norm(again - seen, axis=-1)[central(seen)]) < 0.05


@LENSES
def test_round_trip_on_real_keypoints(camera, astronaut_keypoints):
    """MoveNet on a real image, as if the 512 x 512 picture came from this lens (intrinsics scaled to it)."""
    s = 512 / SIZE[0]
    small = CameraIntrinsics(camera.fx * s, camera.fy * s, 256.0 + 3.0, 256.0 - 2.0, camera.model, camera.distortion)
    kp = astronaut_keypoints
    assert kp.shape == (17, 3) and kp.dtype == np.float32 and np.all(np.isfinite(kp))
    for distorted in (kp, distort_points(kp, small)):  # detections as lens pixels; and as ideal pixels
        ideal = undistort_keypoints(distorted, small)
        assert np.max(np.linalg.norm(ideal[:, :2] - distorted[:, :2], axis=-1)) > 1.0  # moved
        np.testing.assert_array_equal(ideal[:, 2], kp[:, 2])  # scores untouched
        err = np.linalg.norm(distort_points(ideal, small)[:, :2] - distorted[:, :2], axis=-1)
        assert ideal.dtype == np.float32 and np.max(err) < 0.05
    err = np.linalg.norm(undistort_keypoints(distort_points(kp, small), small)[:, :2] - kp[:, :2], axis=-1)
    assert np.max(err) < 0.05


@LENSES
def test_nan_keypoints_stay_nan_and_others_are_unaffected(camera):
    kp = np.concatenate([grid()[::4, ::4], np.full((7, 13, 1), 0.5)], -1).astype(np.float32)
    holed = kp.copy()
    holed[1, 2, :2] = np.nan
    holed[3, :, 0] = np.nan  # half-NaN points count as absent
    out = undistort_keypoints(holed, camera)
    assert np.isnan(out[1, 2, :2]).all() and np.isnan(out[3, :, :2]).all()
    np.testing.assert_array_equal(out[..., 2], holed[..., 2])
    present = np.isfinite(holed[..., :2]).all(-1)
    np.testing.assert_array_equal(out[present], undistort_keypoints(kp, camera)[present])
    assert np.isnan(undistort_keypoints(np.full((2, 17, 3), np.nan), camera)[..., :2]).all()
    assert undistort_keypoints(np.zeros((0, 17, 3)), camera).shape == (0, 17, 3)


def test_points_the_lens_cannot_explain_become_nan(caplog):
    # r_d = r (1 - 0.5 r^2) peaks at r = sqrt(2/3): no ray lands further than 0.544 f from the centre
    cam = CameraIntrinsics(800, 800, 960, 540, "opencv", (-0.5, 0.0, 0.0, 0.0))
    pts = np.array([[960 + 300, 540], [960 + 600, 540], [960, 540 + 900]], np.float64)
    with caplog.at_level(logging.WARNING, logger="wildpose.camera"):
        out = undistort_keypoints(pts, cam)
    assert np.all(np.isfinite(out[0])) and np.isnan(out[1:]).all()
    assert "2 of 3 keypoints" in caplog.text
    # a fisheye sees beyond 90 degrees; a pinhole cannot
    beyond = np.array([[GOPRO.cx + GOPRO.fx * 2.2, GOPRO.cy]])
    assert np.isnan(undistort_keypoints(beyond, GOPRO)).all()


def collinearity_residual(points: np.ndarray) -> float:
    """Largest distance (pixels) of the points from their best-fitting straight line."""
    centred = points - points.mean(0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    return float(np.max(np.abs(centred @ normal)))


@LENSES
def test_straight_lines_come_out_straight(camera):
    # straight edges in the world image to straight lines in an ideal camera: near the top, a diagonal across
    # the upper left, near the right edge (a line through the centre is not bent by radial distortion)
    for start, end in (((80.0, 90.0), (1840.0, 120.0)), ((80.0, 700.0), (1000.0, 40.0)),
                       ((1800.0, 100.0), (1850.0, 1000.0))):
        t = np.linspace(0, 1, 60)[:, None]
        line = np.array(start) * (1 - t) + np.array(end) * t
        bent = distort_points(line, camera)
        assert collinearity_residual(bent) > 10.0  # the lens bends it visibly
        assert collinearity_residual(undistort_keypoints(bent, camera)) < 0.01


# -- the lifter's principal point --------------------------------------------------------------------------------


def track_from(keypoints: np.ndarray, frames: int = 40) -> np.ndarray:
    """A (T, 17, 3) track: the real pose swaying sideways and bobbing, as a person filmed in a 512 x 512 frame."""
    t = np.arange(frames)[:, None, None] / 30.0
    offset = np.concatenate([12.0 * np.sin(2 * np.pi * t), 4.0 * np.cos(4 * np.pi * t), 0 * t], -1)
    return (keypoints[None] + offset).astype(np.float32)


def test_normalisation_with_principal_point_and_separate_focals():
    xy = grid((640, 480), (5, 4)).astype(np.float32)
    old = normalize_keypoints(xy, (640, 480), "focal", 500.0)
    np.testing.assert_array_equal(normalize_keypoints(xy, (640, 480), "focal", 500.0, (320.0, 240.0)), old)
    np.testing.assert_array_equal(normalize_keypoints(xy, (640, 480), "focal", (500.0, 500.0)), old)
    np.testing.assert_array_equal(normalize_keypoints(xy, (640, 480), "focal"),
                                  normalize_keypoints(xy, (640, 480), "focal", focal_from_fov((640, 480))))
    uv = normalize_keypoints(xy, (640, 480), "focal", (500.0, 400.0), (300.0, 250.0))
    np.testing.assert_allclose(uv[..., 0], (xy[..., 0] - 300) / 500, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(uv[..., 1], (xy[..., 1] - 250) / 400, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(denormalize_keypoints(uv, (640, 480), "focal", (500.0, 400.0), (300.0, 250.0)), xy,
                               atol=1e-4)
    # the reference's screen normalisation has no camera
    np.testing.assert_array_equal(normalize_keypoints(xy, (640, 480), "screen", 500.0, (1.0, 2.0)),
                                  normalize_keypoints(xy, (640, 480), "screen"))


def test_lift_principal_point(astronaut_keypoints):
    model = load_lifter()
    if model.input_normalisation not in ("focal", "crop"):  # both start from camera rays
        pytest.skip("the shipped lifter does not use camera rays (focal or crop normalisation)")
    size = (512, 512)
    track = track_from(astronaut_keypoints)
    old = lift(track, size, 30.0, model=model)
    np.testing.assert_array_equal(lift(track, size, 30.0, model=model, principal_point=(256.0, 256.0)), old)
    np.testing.assert_array_equal(lift(track, size, 30.0, model=model, focal_length=focal_from_fov(size),
                                       principal_point=(256, 256)), old)
    cam = CameraIntrinsics.default(size)
    np.testing.assert_array_equal(lift(track, size, 30.0, model=model, focal_length=cam.focal_length,
                                       principal_point=cam.principal_point), old)
    # a principal point 40 px right and 25 px up of the centre sees what the centred camera sees of the
    # keypoints shifted the other way
    d = np.array([40.0, -25.0, 0.0], np.float32)
    shifted = lift(track, size, 30.0, model=model, principal_point=(256.0 + d[0], 256.0 + d[1]))
    np.testing.assert_allclose(shifted, lift(track - d, size, 30.0, model=model), atol=2e-5)
    assert np.max(np.abs(shifted - old)) > 1e-3  # and the shift matters to the pose
    with pytest.raises(ValueError, match="principal_point"):
        lift(track, size, 30.0, model=model, principal_point=(256.0,))
    with pytest.raises(ValueError, match="principal_point"):
        lift(track, size, 30.0, model=model, principal_point=(256.0, float("nan")))
    with pytest.raises(ValueError, match="focal_length"):
        lift(track, size, 30.0, model=model, focal_length=(500.0, 0.0))


def test_undistorting_before_lifting_recovers_the_pinhole_pose(astronaut_keypoints):
    """A person filmed through a strong lens: lifting the undistorted keypoints gives the pose an ideal camera
    would have given; lifting the raw ones does not."""
    model = load_lifter()
    size = (512, 512)
    track = track_from(astronaut_keypoints)
    s = 512 / SIZE[0]
    lens = CameraIntrinsics(BARREL.fx * s, BARREL.fy * s, 262.0, 251.0, "opencv", BARREL.distortion)
    ideal = lift(track, size, 30.0, model=model, focal_length=lens.focal_length, principal_point=lens.principal_point)
    seen = distort_points(track, lens)
    fixed = lift(undistort_keypoints(seen, lens), size, 30.0, model=model, focal_length=lens.focal_length,
                 principal_point=lens.principal_point)
    raw = lift(seen, size, 30.0, model=model, focal_length=lens.focal_length, principal_point=lens.principal_point)
    mpjpe = lambda a, b: float(np.mean(np.linalg.norm(a - b, axis=-1)))  # noqa: E731 (metres)
    assert mpjpe(fixed, ideal) < 1e-4
    assert mpjpe(raw, ideal) > 100 * mpjpe(fixed, ideal)
