"""Lifter training parts on real CMU mocap: BVH forward kinematics, rig mappings, virtual cameras,
augmentation invariants, a few training steps, and the shipped model's held-out error.

Skips (with the reason) when the shared mocap folder or torch is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from wildpose.lift.train.bvh import forward_kinematics, read_bvh
from wildpose.lift.train.cameras import backproject, mirror, project, random_cameras, world_to_camera
from wildpose.lift.train.data import DEFAULT_SPLIT, clip_subject, list_clips, load_split
from wildpose.lift.train.rigs import bone_lengths, detect_rig, facing_check, height, load_clip

ONE_PER_RIG = {
    "daz57": "cmu_dance_martial/salsa/02.bvh",
    "cc141": "cmu_subjects_01_07/All_BVH/subjects/002/002_01.bvh",
    "asf38": "cmu_motion_prediction_subset/train/walking/walking_1.bvh",
}


@pytest.fixture(scope="module")
def clips(mocap_dir):
    return {rig: load_clip(mocap_dir / rel) for rig, rel in ONE_PER_RIG.items()}


def test_bvh_fk_bones_rigid_and_height_plausible(mocap_dir):
    bvh = read_bvh(mocap_dir / ONE_PER_RIG["asf38"])
    pos = forward_kinematics(bvh)
    assert pos.shape == (bvh.n_frames, len(bvh.names), 3)
    bones = np.linalg.norm(pos[:, 1:] - pos[:, bvh.parents[1:]], axis=-1)
    assert bones.std(axis=0).max() < 1e-6 * bones.max()  # FK keeps every bone length over all frames
    head_top = pos[:, bvh.index("head_end"), 1] - pos[:, bvh.index("lfoot"), 1]
    assert 1.2 < np.median(head_top) / 100 < 1.9  # metres, file units are cm
    assert 1.0 / bvh.frame_time == pytest.approx(60.0, rel=1e-3)


def test_fps_detection_salsa_is_60(mocap_dir, clips):
    salsa = clips["daz57"]
    assert salsa.fps == 60.0  # the header says 120
    martial = load_clip(mocap_dir / "cmu_dance_martial/martial/04.bvh")
    assert martial.fps == 120.0
    # at 60 fps the dancers' root moves at dancing speeds (< 1 m/s median), not at running speeds
    speed = np.linalg.norm(np.diff(salsa.h36m[:, 0, [0, 2]], axis=0), axis=-1) * salsa.fps
    assert 0.1 < np.median(speed) < 1.0


@pytest.mark.parametrize("rig", list(ONE_PER_RIG))
def test_rig_mapping(clips, rig):
    c = clips[rig]
    assert detect_rig(read_bvh_names(c.path), c.path) == rig
    assert c.h36m.shape[1:] == (17, 3) and c.coco.shape[1:] == (17, 3)
    assert np.isfinite(c.h36m).all() and np.isfinite(c.coco).all()
    assert 1.45 < height(c) < 1.95
    # feet below hips, head above thorax
    assert (c.h36m[:, [3, 6], 1].max(1) < c.h36m[:, [1, 4], 1].min(1)).mean() > 0.95
    assert (c.h36m[:, 10, 1] > c.h36m[:, 8, 1]).all()
    # left is the subject's left: toes point to the front defined by (left hip - right hip) x up
    assert facing_check(c) > 0.8
    # the nose is in front of the thorax, left eye on the left
    left = c.h36m[:, 4] - c.h36m[:, 1]
    fwd = np.cross(left, [0.0, 1.0, 0.0])
    assert (np.einsum("fi,fi->f", fwd, c.coco[:, 0] - c.h36m[:, 8]) > 0).mean() > 0.95
    assert (np.einsum("fi,fi->f", left, c.coco[:, 1] - c.coco[:, 2]) > 0).mean() > 0.95
    bl = bone_lengths(c.h36m)
    assert bl.std(axis=0).max() < 0.02  # metres: mapped bones are (nearly) rigid


def read_bvh_names(path):
    return read_bvh(path).names


def test_split_is_by_subject(mocap_dir):
    groups = {s for _, s in list_clips(mocap_dir)}
    used = [g for part in DEFAULT_SPLIT.values() for g in part]
    assert len(used) == len(set(used))  # no subject group in two splits
    assert groups == set(used)  # every clip is in some split
    # subjects that duplicate motion-prediction takes stay with it
    for g in ("cmu:01", "cmu:02", "cmu:06", "cmu:07"):
        assert g in DEFAULT_SPLIT["train"] and "mp:*" in DEFAULT_SPLIT["train"]
    assert clip_subject(mocap_dir / "cmu_dance_martial/salsa/16.bvh") == "salsa:61"
    # the same CMU subject has one group in every folder
    assert clip_subject(mocap_dir / "cmu_acrobatics/08/x.bvh") == "cmu:08"
    assert clip_subject(mocap_dir / "cmu_subject_131/131_01.bvh") == "cmu:131"


def test_camera_projection_backprojects():
    rng = np.random.default_rng(0)
    path = np.cumsum(rng.normal(0, 0.02, (8, 40, 3)), axis=1) + np.array([0, 0.9, 0])
    cams = random_cameras(rng, path)
    pts = path[:, :, None, :] + rng.normal(0, 0.3, (8, 40, 17, 3))
    cam = world_to_camera(pts, cams["rot"], cams["centre"])
    assert (cam[..., 2] > 0.5).all()
    px = project(cam, cams["focal"], cams["image_size"])
    back = backproject(px, cam[..., 2], cams["focal"], cams["image_size"])
    np.testing.assert_allclose(back, cam, atol=1e-9)
    # rotations are proper and the person's root is mostly in view
    np.testing.assert_allclose(np.linalg.det(cams["rot"]), 1.0, atol=1e-9)
    root_px = project(world_to_camera(path, cams["rot"], cams["centre"]), cams["focal"], cams["image_size"])
    inside = (root_px >= 0).all(-1) & (root_px <= cams["image_size"][:, None, :]).all(-1)
    assert inside.mean() > 0.8
    # camera y points down: a point above the root projects higher in the image (smaller v)
    up = world_to_camera(path + np.array([0, 0.5, 0]), cams["rot"], cams["centre"])
    assert (project(up, cams["focal"], cams["image_size"])[..., 1] < root_px[..., 1]).all()


def test_mirror_twice_is_identity_and_swaps_sides():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 9, 17, 2)), rng.normal(size=(4, 1, 17, 3))
    x1, y1 = mirror(x, y)
    x2, y2 = mirror(x1, y1)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(x1[..., 5, 0], -x[..., 6, 0])  # left shoulder <- mirrored right
    np.testing.assert_array_equal(y1[..., 4, 0], -y[..., 1, 0])  # left hip <- mirrored right hip


def test_make_batch_targets_consistent(mocap_dir, tmp_path):
    from wildpose.lift.train.loop import make_batch

    clips = load_split(mocap_dir, ["cmu:03"], max_clips=1)
    rng = np.random.default_rng(0)
    x, y = make_batch(rng, clips, 64, 27, aug={"noise_fraction": 0.0, "mirror": 0.0, "wrong_focal_fraction": 0.0})
    assert x.shape == (64, 27, 17, 2) and y.shape == (64, 1, 17, 3)
    np.testing.assert_array_equal(y[:, :, 0], 0.0)
    # the hips' 2D midpoint (COCO, widened symmetric) is the ray through the 3D pelvis: compare directions
    # of the 3D target's hip vector and the 2D hip vector in x (same sign in most frames)
    hip2d = x[:, 13, 11, 0] - x[:, 13, 12, 0]
    hip3d = y[:, 0, 4, 0] - y[:, 0, 1, 0]
    assert np.mean(np.sign(hip2d) == np.sign(hip3d)) > 0.8


def test_crop_batch_is_the_focal_batch_seen_from_virtual_cameras(mocap_dir):
    """The "crop" space's windows are the focal ones re-expressed per frame (lift/normalize.py), and its
    target is the centre frame's pose in that frame's virtual camera."""
    from wildpose.lift.normalize import crop_normalize
    from wildpose.lift.train.loop import make_batch

    clips = load_split(mocap_dir, ["cmu:03"], max_clips=1)
    aug = {"noise_fraction": 0.5, "mirror": 0.5}
    xf, yf = make_batch(np.random.default_rng(3), clips, 32, 27, aug=aug)
    xc, yc = make_batch(np.random.default_rng(3), clips, 32, 27, aug=aug, normalisation="crop")
    uv, rot = crop_normalize(xf)
    np.testing.assert_allclose(xc, uv, atol=1e-5)
    np.testing.assert_allclose(yc[:, 0], np.einsum("bij,bnj->bni", rot[:, 13], yf[:, 0]), atol=1e-5)
    # people off the image centre: the virtual camera turns, so the two targets differ
    assert np.abs(yc - yf).max() > 0.05
    with pytest.raises(ValueError, match="normalisation"):
        make_batch(np.random.default_rng(3), clips, 4, 27, normalisation="pixels")


def test_limb_rotation_makes_new_poses_with_the_same_bones(mocap_dir):
    from wildpose.lift.train.loop import COCO_ANCHOR, rotate_limbs, sample_windows
    from wildpose.skeleton import H36M_PARENTS

    clips = load_split(mocap_dir, ["cmu:03"], max_clips=1)
    rng = np.random.default_rng(0)
    h, c = sample_windows(rng, clips, 64, 27, 30.0)
    h2, c2 = rotate_limbs(rng, h, c, 15.0)

    def bones(x):
        return np.linalg.norm(x[:, :, 1:] - x[:, :, H36M_PARENTS[1:]], axis=-1)

    np.testing.assert_allclose(bones(h2), bones(h), atol=1e-5)  # rigid: lengths kept
    np.testing.assert_allclose(np.linalg.norm(c2 - h2[:, :, COCO_ANCHOR], axis=-1),
                               np.linalg.norm(c - h[:, :, COCO_ANCHOR], axis=-1), atol=1e-5)
    np.testing.assert_allclose(h2[:, :, [0, 1, 4]], h[:, :, [0, 1, 4]], atol=1e-6)  # pelvis and hips stay
    moved = np.linalg.norm(h2 - h, axis=-1)[:, :, [3, 6, 13, 16]]  # ankles and wrists
    assert 0.05 < np.median(moved) < 0.4, np.median(moved)
    # one rotation per window: the motion stays as smooth as the mocap's (no frame-to-frame shaking)
    speed = lambda x: np.linalg.norm(np.diff(x, axis=1), axis=-1).mean()  # noqa: E731
    assert speed(h2) < 1.5 * speed(h) + 1e-3


def test_mixing_body_halves_keeps_each_half_real(mocap_dir):
    from wildpose.lift.train.loop import COCO_ANCHOR, mix_body_halves, sample_windows

    clips = load_split(mocap_dir, ["cmu:03", "cmu:05"], max_clips=4)
    rng = np.random.default_rng(1)
    h, c = sample_windows(rng, clips, 128, 27, 30.0)
    h2, c2 = mix_body_halves(np.random.default_rng(2), h, c, 1.0)
    np.testing.assert_array_equal(h2[:, :, :7], h[:, :, :7])  # legs and trajectory stay the receiver's
    lower = COCO_ANCHOR < 7
    np.testing.assert_array_equal(c2[:, :, lower], c[:, :, lower])
    # the upper body is another window's, moved rigidly per frame: find its donor by shape
    upper = np.concatenate([h2[:, :, 7:], c2[:, :, ~lower]], axis=2)
    def shape(x):  # pairwise distances within the half, relative to the pelvis
        d = np.concatenate([x, np.zeros_like(x[:, :, :1])], axis=2)
        return np.linalg.norm(d[:, :, :, None] - d[:, :, None], axis=-1)
    moved = shape(upper - h2[:, :, :1])
    originals = shape(np.concatenate([h[:, :, 7:], c[:, :, ~lower]], axis=2) - h[:, :, :1])
    err = np.abs(moved[:, None] - originals[None]).max(axis=(2, 3, 4))  # (receiver, candidate donor)
    assert (err.min(axis=1) < 1e-4).all()
    assert (err.argmin(axis=1) != np.arange(128)).mean() > 0.9  # nearly all from another window
    # turned so that the donor's shoulders keep their angle to the receiving hips
    def heading(a, b):
        d = a - b
        return np.arctan2(d[..., 0], d[..., 2])
    donor = err.argmin(axis=1)
    twist_new = heading(h2[:, :, 14], h2[:, :, 11]) - heading(h2[:, :, 1], h2[:, :, 4])
    twist_old = heading(h[donor][:, :, 14], h[donor][:, :, 11]) - heading(h[donor][:, :, 1], h[donor][:, :, 4])
    wrap = lambda a: (a + np.pi) % (2 * np.pi) - np.pi  # noqa: E731
    assert np.abs(wrap(twist_new - twist_old)).max() < 1e-4
    h3, c3 = mix_body_halves(np.random.default_rng(2), h, c, 0.0)
    assert h3 is h and c3 is c


def test_mixing_limbs_keeps_joint_angles_of_a_real_limb(mocap_dir):
    from wildpose.lift.train.loop import COCO_ANCHOR, _segment_frames, mix_limbs, sample_windows

    clips = load_split(mocap_dir, ["cmu:03", "cmu:05"], max_clips=4)
    h, c = sample_windows(np.random.default_rng(1), clips, 96, 27, 30.0)
    h2, c2 = mix_limbs(np.random.default_rng(2), h, c, 1.0)
    roots = [0, 1, 4, 7, 8, 9, 10, 11, 14]  # trunk, head, hips and shoulders stay the receiver's
    np.testing.assert_array_equal(h2[:, :, roots], h[:, :, roots])
    np.testing.assert_array_equal(c2[:, :, :7], c[:, :, :7])
    np.testing.assert_array_equal(c2[:, :, 11:13], c[:, :, 11:13])
    for root, below, seg in ((11, [12, 13], "thorax"), (1, [2, 3], "pelvis")):
        # the new limb, seen from the receiver's trunk, is some window's limb seen from its own trunk
        local = lambda hh: np.einsum("ntji,ntkj->ntki", _segment_frames(hh, seg),  # noqa: E731
                                     hh[:, :, below] - hh[:, :, root:root + 1])
        err = np.abs(local(h2)[:, None] - local(h)[None]).max(axis=(2, 3, 4))  # (receiver, donor)
        assert (err.min(axis=1) < 1e-4).all()
        assert (err.argmin(axis=1) != np.arange(96)).mean() > 0.9
        # COCO points of the limb moved with it: same offsets from their H36M joints as the donor's
        k = np.flatnonzero(np.isin(COCO_ANCHOR, below))
        donor = err.argmin(axis=1)
        np.testing.assert_allclose(np.linalg.norm(c2[:, :, k] - h2[:, :, COCO_ANCHOR[k]], axis=-1),
                                   np.linalg.norm(c[donor][:, :, k] - h[donor][:, :, COCO_ANCHOR[k]], axis=-1),
                                   atol=1e-5)
    h3, c3 = mix_limbs(np.random.default_rng(2), h, c, 0.0)
    np.testing.assert_array_equal(h3, h)


torch = pytest.importorskip("torch", reason="torch is not installed (the optional train extra)")


def test_strided_training_mode_matches_dilated():
    from wildpose.lift.train.model import TemporalLifter

    torch.manual_seed(0)
    m = TemporalLifter(filter_widths=(3, 3, 3), channels=32).eval()
    x = torch.randn(1, 40, 17, 2)
    full = m(x)  # 40 - 27 + 1 = 14 output frames
    for k in (0, 5, 13):
        single = m(x[:, k:k + 27], single=True)
        torch.testing.assert_close(single[:, 0], full[:, k], atol=1e-5, rtol=1e-5)
    names = set(m.export_tensors())
    assert {"expand_conv.weight", "expand_bn.running_var", "layers_conv.3.weight", "layers_bn.3.bias",
            "shrink.weight", "shrink.bias"} <= names


def test_few_training_steps_reduce_loss(mocap_dir):
    from wildpose.lift.train.loop import make_batch, seed_everything
    from wildpose.lift.train.model import TemporalLifter

    torch.set_num_threads(2)
    rng = seed_everything(0)
    clips = load_split(mocap_dir, ["cmu:03"], max_clips=1)
    x, y = make_batch(rng, clips, 128, 27, aug={"noise_fraction": 0.0})
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    m = TemporalLifter(filter_widths=(3, 3, 3), channels=64, dropout=0.0)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    losses = []
    for _ in range(30):
        loss = (m(x, single=True) - y).norm(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def _held_out(model) -> list[str]:
    """The test groups a shipped lifter was held out on (its provenance), all still in the test split: the
    groups added to the split later (acrobatics 90, subject 131) are scored by `wildpose eval`, not here."""
    groups = model.config["provenance"]["split"]["test"]
    assert groups and set(groups) <= set(DEFAULT_SPLIT["test"])
    return groups


def test_shipped_model_beats_mean_pose_on_held_out(mocap_dir):
    from wildpose.lift.train.evaluate import make_sequences, numpy_predictor, score
    from wildpose.lift.weights import default_model_path, load_lifter

    if not default_model_path().exists():
        pytest.skip("no shipped lifter yet")
    model = load_lifter()
    clips = load_split(mocap_dir, _held_out(model), max_clips=3)  # test subjects only
    res = score(numpy_predictor(model), make_sequences(clips, model.fps, max_segments=6))
    assert res["frames"] > 300
    assert res["mpjpe_mm"] < 0.6 * res["baseline_mpjpe_mm"]
    assert res["p_mpjpe_mm"] < 0.6 * res["baseline_p_mpjpe_mm"]


@pytest.mark.parametrize("causal", [False, True])
def test_strided_matches_dilated_and_numpy_inference(causal):
    from wildpose.lift.model import TemporalModel
    from wildpose.lift.train.loop import lifter_config
    from wildpose.lift.train.model import TemporalLifter

    torch.manual_seed(1)
    m = TemporalLifter(filter_widths=(3, 3, 3), channels=32, causal=causal)
    m.train()
    for _ in range(3):  # move the batch-norm statistics away from their initial values
        m(torch.randn(8, 27, 17, 2), single=True)
    m.eval()
    x = torch.randn(1, 40, 17, 2)
    with torch.no_grad():
        full = m(x)
        for k in (0, 7, 13):
            torch.testing.assert_close(m(x[:, k:k + 27], single=True)[:, 0], full[:, k], atol=1e-5, rtol=1e-5)
    numpy_model = TemporalModel(lifter_config({"filter_widths": [3, 3, 3], "channels": 32, "causal": causal}),
                                m.export_tensors())
    pred = numpy_model.predict(x[0].numpy())
    # torch's output k sees inputs k..k+26: the numpy model puts it at the window's last (causal) or centre frame
    off = 26 if causal else 13
    np.testing.assert_allclose(pred[off:off + 14], full[0].numpy(), atol=1e-5)


def test_noise_calibration_recovers_the_augmentation(mocap_dir):
    """The detector-noise estimator, run on tracks noised by the calibrated augmentation, gives back its
    per-joint sds (a round trip through the real mocap motion, which leaks into the high-pass residual)."""
    from wildpose.lift.train.loop import add_noise_2d
    from wildpose.lift.train.noise import MOVENET_NOISE, noise_stats, track_residuals

    clips = load_split(mocap_dir, ["cmu:03"], max_clips=2)
    rng = np.random.default_rng(3)
    h, c = clips.clip(0)
    c = c[::2][None]  # 30 fps
    cams = random_cameras(rng, h[::2][None, :, 0], {"fov_deg": (50.0, 50.0)})
    px = project(world_to_camera(c, cams["rot"], cams["centre"]), cams["focal"], cams["image_size"])
    size = np.ptp(px[..., 1], axis=2).mean(axis=1)
    aug = {**MOVENET_NOISE, "lowscore_prob": 0.0}
    noisy = add_noise_2d(rng, px, size, np.array([True]), aug)
    kp = np.concatenate([noisy, np.ones(noisy.shape[:3] + (1,))], axis=-1)
    r = track_residuals(kp, np.zeros(kp.shape[:2], bool))
    stats = noise_stats(r["residual"], r["score"])
    ratio = np.array(stats["joint_sd"]) / np.array(MOVENET_NOISE["joint_sd"])
    # the outliers' residuals (at t and, halved, at t +- 1) widen the robust sd by 5-15%
    assert 0.95 < np.median(ratio) < 1.25
    # outliers smaller than the threshold hide in the jitter: a fraction of the true rate is found, not more
    assert 0.3 * aug["outlier_prob"] < stats["outlier_prob"] < 1.3 * aug["outlier_prob"]
    clean = track_residuals(np.concatenate([px, kp[..., 2:]], -1), np.zeros(kp.shape[:2], bool))
    assert np.median(noise_stats(clean["residual"], clean["score"])["joint_sd"]) < 0.3 * np.median(
        stats["joint_sd"])  # the motion itself contributes little


def test_causal_model_beats_mean_pose_and_ignores_the_future(mocap_dir):
    from wildpose.lift.train.evaluate import make_sequences, numpy_predictor, score
    from wildpose.lift.weights import default_model_path, load_lifter

    path = default_model_path().with_name("lifter_causal.safetensors")
    if not path.exists():
        pytest.skip("no shipped causal lifter")
    model = load_lifter(path)
    assert model.causal
    clips = load_split(mocap_dir, _held_out(model), max_clips=3)  # test subjects only
    seqs = make_sequences(clips, model.fps, max_segments=6)
    res = score(numpy_predictor(model), seqs)
    assert res["frames"] > 300
    assert res["mpjpe_mm"] < 0.6 * res["baseline_mpjpe_mm"]
    assert res["p_mpjpe_mm"] < 0.6 * res["baseline_p_mpjpe_mm"]
    # streaming: changing frames after t leaves the outputs up to t unchanged (and does change later ones)
    x = seqs[0]["inputs"]
    t = len(x) // 2
    changed = x.copy()
    changed[t + 1:] = changed[t + 1:][::-1] + 0.05
    a, b = model.predict(x, flip=True), model.predict(changed, flip=True)
    np.testing.assert_array_equal(a[:t + 1], b[:t + 1])
    assert np.abs(a[t + 1:] - b[t + 1:]).max() > 1e-3
