"""The two newest shared mocap folders: ``cmu_acrobatics/`` (DeepMimic humanoid, ``deepmimic15``) and
``cmu_subject_131/`` (cgspeed "max" 31-joint rig, ``max31``). Their joints must land where a person's are (bone
lengths, left/right, up, head above pelvis), the DeepMimic takes that the motion-prediction subset also holds must
match the original CMU skeleton frame by frame, frame rates must be resampled as the other folders', and no CMU
subject may be in two splits across all five folders.

Real shared data only; skips (with the reason) when the shared mocap folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wildpose.lift.train.bvh import read_bvh
from wildpose.lift.train.data import BASE_FPS, DEFAULT_SPLIT, _to_base_fps, list_clips, load_split
from wildpose.lift.train.rigs import bone_lengths, detect_rig, height, load_clip
from wildpose.lift.train.sources import Sources, shipped_mappings

FOLDERS = {"deepmimic15": "cmu_acrobatics", "max31": "cmu_subject_131"}
# H36M bone (child index, as bone_lengths orders them) -> plausible adult range in metres
BONE_RANGES = {
    "thigh": ((2, 5), 0.30, 0.55), "shin": ((3, 6), 0.30, 0.55), "upper arm": ((12, 15), 0.20, 0.40),
    "forearm": ((13, 16), 0.15, 0.35), "pelvis-spine": ((7,), 0.15, 0.35), "spine-thorax": ((8,), 0.15, 0.35),
    "thorax-shoulder": ((11, 14), 0.10, 0.25),
}
# DeepMimic takes whose joint angles equal a motion-prediction take's (found by matching knee and elbow angles)
SHARED_TAKES = [("13/13_11", "train/jumping/jumping_1"), ("10/10_05", "train/soccer/soccer_4"),
                ("49/49_02", "test/jumping/jumping_1")]


def _clips(mocap_dir: Path, rig: str) -> list:
    return [load_clip(p, g) for p, g in list_clips(mocap_dir / FOLDERS[rig])]


def _forward(h36m: np.ndarray) -> np.ndarray:
    """(F, 3) unit vectors to the person's front: (left hip - right hip) x the body's up (pelvis -> thorax),
    which holds in a flip or a roll as well as standing."""
    fwd = np.cross(h36m[:, 4] - h36m[:, 1], h36m[:, 8] - h36m[:, 0])
    return fwd / np.maximum(np.linalg.norm(fwd, axis=-1, keepdims=True), 1e-9)


def _knee_angle(h: np.ndarray, hip: int, knee: int, ankle: int) -> np.ndarray:
    u, v = h[:, hip] - h[:, knee], h[:, ankle] - h[:, knee]
    cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.mark.parametrize("rig", sorted(FOLDERS))
def test_new_rig_detected_and_its_mapping_used(mocap_dir, rig):
    """Every file of the folder is detected as its rig; the rig code path (what training uses by default) and
    the shipped JSON mapping through Sources give the same clips."""
    folder = mocap_dir / FOLDERS[rig]
    paths = [p for p, _ in list_clips(folder)]
    assert paths
    for p in paths[:: max(1, len(paths) // 8)]:
        names = read_bvh(p).names
        assert detect_rig(names, str(p)) == rig
        assert [r for r, m in shipped_mappings().items() if m.matches(names)] == [rig]
    groups = sorted({g for _, g in list_clips(folder)})
    ref = load_split(folder, groups, max_clips=3)
    got = Sources(mocap=[folder], mapping=[rig]).load_split(groups, max_clips=3)
    assert got.names == ref.names and got.subjects == ref.subjects
    np.testing.assert_array_equal(got.h36m, ref.h36m)
    np.testing.assert_array_equal(got.coco, ref.coco)


@pytest.mark.parametrize("rig", sorted(FOLDERS))
def test_new_rig_joints_land_where_a_persons_are(mocap_dir, rig):
    clips = _clips(mocap_dir, rig)
    h = np.concatenate([c.h36m for c in clips])
    coco = np.concatenate([c.coco for c in clips])
    assert {c.rig for c in clips} == {rig}
    # bones: human lengths, rigid (mapped joints ride on the skeleton), left and right alike
    bl = bone_lengths(h)
    for name, (children, lo, hi) in BONE_RANGES.items():
        for k in children:
            med = float(np.median(bl[:, k - 1]))
            assert lo < med < hi, (name, med)
            assert bl[:, k - 1].std() < 0.01, name
        if len(children) == 2:
            a, b = (float(np.median(bl[:, k - 1])) for k in children)
            assert abs(a - b) < 0.08 * max(a, b), name  # subject 131's own: 5-7%
    hip_width = np.median(np.linalg.norm(h[:, 4] - h[:, 1], axis=-1))
    shoulder_width = np.median(np.linalg.norm(h[:, 11] - h[:, 14], axis=-1))
    assert 0.12 < hip_width < 0.30 and 0.25 < shoulder_width < 0.50
    # standing height: head top above the lower ankle, plus the ankle's height (rigs.height), in the frames
    # where the person stands tallest (a median over a roll or a crouch is not a standing height)
    stand = np.percentile(h[:, 10, 1] - np.minimum(h[:, 3, 1], h[:, 6, 1]), 95) + 0.08
    assert 1.4 < stand < 2.0, stand
    assert 1.3 < max(height(c) for c in clips) < 2.0
    # up is up: head top above the thorax above the pelvis in most frames (acrobatics: flips and rolls), and
    # every clip has its lowest point at the floor most of the time (Y up, floor at 0)
    top, thorax, pelvis = h[:, 10, 1], h[:, 8, 1], h[:, 0, 1]
    upright = 0.9 if rig == "max31" else 0.7
    assert np.mean((top > thorax) & (thorax > pelvis)) > upright
    assert np.mean(top - pelvis > 0.4) > upright
    on_floor = [-0.05 < np.median(np.min(c.h36m[..., 1], axis=1)) < 0.2 for c in clips]
    assert np.mean(on_floor) > 0.9  # all but the swings on a bar (43)
    # left is the person's left: knees bend to the front given by (left hip - right hip) x the body's up, the
    # feet and the nose point that way, the left eye and ear are on the left
    fwd = _forward(h)
    for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
        bent = _knee_angle(h, hip, knee, ankle) < 150
        ahead = np.einsum("fi,fi->f", fwd, h[:, knee] - 0.5 * (h[:, hip] + h[:, ankle]))
        assert bent.sum() > 100 and np.mean(ahead[bent] > 0) > 0.95
    toes = np.concatenate([c.toes for c in clips])
    assert np.mean(np.einsum("fi,fki->fk", fwd, toes - h[:, [6, 3]]) > 0) > 0.75
    assert np.mean(np.einsum("fi,fi->f", fwd, coco[:, 0] - h[:, 8]) > 0) > 0.9
    left = h[:, 11] - h[:, 14]
    assert np.mean(np.einsum("fi,fi->f", left, coco[:, 1] - coco[:, 2]) > 0) > 0.95
    assert np.mean(np.einsum("fi,fi->f", left, coco[:, 3] - coco[:, 4]) > 0) > 0.95
    assert np.mean(np.einsum("fi,fi->f", left, h[:, 13] - h[:, 16]) > 0) > 0.6  # wrists mostly on their side
    # COCO body points are the H36M joints (hips widened outwards)
    np.testing.assert_array_equal(coco[:, 5], h[:, 11])
    np.testing.assert_array_equal(coco[:, 16], h[:, 3])
    assert np.all(np.linalg.norm(coco[:, 11] - coco[:, 12], axis=-1) > np.linalg.norm(h[:, 4] - h[:, 1], axis=-1))


def _kabsch_residual(a: np.ndarray, b: np.ndarray) -> float:
    """Median joint distance (m) between point sets a, b (J, 3) after the best proper rotation of b."""
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return float(np.median(np.linalg.norm(a - b @ r.T, axis=-1)))


def _torso_local(h36m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(F, K, 3) points in the torso frame (origin mid-shoulders; left, up, forward axes; torso-length units)."""
    mid = 0.5 * (h36m[:, 11] + h36m[:, 14])
    up = mid - h36m[:, 0]
    length = np.linalg.norm(up, axis=-1, keepdims=True)
    up = up / length
    left = h36m[:, 11] - h36m[:, 14]
    left = left - np.sum(left * up, -1, keepdims=True) * up
    left /= np.linalg.norm(left, axis=-1, keepdims=True)
    axes = np.stack([left, up, np.cross(left, up)], -1)
    return np.einsum("fij,fki->fkj", axes, points - mid[:, None]) / length[:, :, None]


@pytest.mark.parametrize("acro, mp", SHARED_TAKES)
def test_deepmimic_matches_the_cmu_skeleton_on_shared_takes(mocap_dir, acro, mp):
    """A take in both cmu_acrobatics/ (DeepMimic, 30 fps) and the motion-prediction subset (CMU ASF skeleton,
    60 fps): the same knee angles frame for frame; each frame's body, pelvis-centred, matches the other rig's
    after a rotation (never only after a mirror); face points and thorax sit where the ASF rig's do relative
    to the torso."""
    a = load_clip(mocap_dir / "cmu_acrobatics" / f"{acro}.bvh")
    b = load_clip(mocap_dir / "cmu_motion_prediction_subset" / f"{mp}.bvh")
    assert (a.rig, a.fps, b.rig, b.fps) == ("deepmimic15", 30.0, "asf38", 60.0)
    hb = b.h36m[2::2]  # the ASF take at 30 fps, aligned (the DeepMimic copy starts one frame later)
    n = min(len(a.h36m), len(hb))
    ha, hb, cb = a.h36m[:n], hb[:n], b.coco[2::2][:n]
    for joints in ((1, 2, 3), (4, 5, 6)):
        assert np.median(np.abs(_knee_angle(ha, *joints) - _knee_angle(hb, *joints))) < 1.0
    # the same take: its subject trains with the subset
    group = f"cmu:{int(acro.split('/')[0]):02d}"
    assert group in DEFAULT_SPLIT["train"] and "mp:*" in DEFAULT_SPLIT["train"]
    body = [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16]
    mirror = np.array([-1.0, 1.0, 1.0])
    same, mirrored = [], []
    for f in range(0, n, 3):
        pa, pb = ha[f, body] - ha[f, 0], hb[f, body] - hb[f, 0]
        same.append(_kabsch_residual(pa, pb))
        mirrored.append(_kabsch_residual(pa, pb * mirror))
    assert np.median(same) < 0.06
    assert np.median(mirrored) > 1.8 * np.median(same)
    # thorax and face (nose, eyes, ears, and H36M neck/nose and head top) in torso units, scaled to metres
    scale = np.median(np.linalg.norm(0.5 * (ha[:, 11] + ha[:, 14]) - ha[:, 0], axis=-1))
    for pa, pb, tol in ((ha[:, [8]], hb[:, [8]], 0.03),
                        (np.concatenate([ha[:, 9:11], a.coco[:n, :5]], 1),
                         np.concatenate([hb[:, 9:11], cb[:, :5]], 1), 0.06)):
        d = np.linalg.norm(_torso_local(ha, pa) - _torso_local(hb, pb), axis=-1) * scale
        assert np.median(d) < tol


def test_frame_rates_resampled_to_the_base_rate(mocap_dir):
    """120 fps (subject 131) is decimated to BASE_FPS, 30 fps (acrobatics) interpolated, as the other folders."""
    assert BASE_FPS == 60.0
    c120 = load_clip(mocap_dir / "cmu_subject_131/131_01.bvh")
    assert c120.fps == 120.0 and len(c120.h36m) == 995
    h, c = _to_base_fps(c120)
    assert len(h) == 498
    np.testing.assert_allclose(h, c120.h36m[::2], atol=1e-6)
    np.testing.assert_allclose(c, c120.coco[::2], atol=1e-6)
    c30 = load_clip(mocap_dir / "cmu_acrobatics/127/127_03.bvh")
    assert c30.fps == 30.0 and len(c30.h36m) == 82
    h, _ = _to_base_fps(c30)
    assert len(h) == 163
    np.testing.assert_allclose(h[::2], c30.h36m, atol=1e-6)
    np.testing.assert_allclose(h[1::2], 0.5 * (c30.h36m[:-1] + c30.h36m[1:]), atol=1e-6)
    # through the split loader too
    clips = load_split(mocap_dir / "cmu_subject_131", ["cmu:131"])
    assert clips.lengths.tolist() == [498, 624, 624]


def _cmu_subject(path: Path, group: str) -> int | None:
    """The CMU subject number of a clip where the data says it (None for the motion-prediction subset and the
    martial arts folder, which name none)."""
    if group.startswith("cmu:"):
        return int(group[4:])
    return {"salsa:60": 60, "salsa:61": 61, "indian:94": 94}.get(group)


def test_no_cmu_subject_in_two_splits_across_all_folders(mocap_dir):
    folders = sorted(p.name for p in mocap_dir.iterdir() if p.is_dir())
    assert folders == ["cmu_acrobatics", "cmu_dance_martial", "cmu_motion_prediction_subset", "cmu_subject_131",
                       "cmu_subjects_01_07"]
    split_of = {g: part for part, groups in DEFAULT_SPLIT.items() for g in groups}
    assert len(split_of) == sum(len(v) for v in DEFAULT_SPLIT.values())  # no group in two splits
    splits: dict[int, set[str]] = {}
    folders_of: dict[int, set[str]] = {}
    for p, g in list_clips(mocap_dir):
        assert g in split_of, p  # every clip of every folder is in a split
        s = _cmu_subject(p, g)
        if s is not None:
            splits.setdefault(s, set()).add(split_of[g])
            folders_of.setdefault(s, set()).add(p.relative_to(mocap_dir).parts[0])
    assert all(len(v) == 1 for v in splits.values()), {s: v for s, v in splits.items() if len(v) > 1}
    assert set(splits) >= {8, 9, 10, 11, 13, 16, 43, 49, 85, 88, 90, 127, 131, 139, 140}
    # subjects that may share takes with the motion-prediction subset (shared README) are in its split
    for s in (1, 2, 6, 7, 8, 9, 10, 11, 13, 16, 49):
        assert splits[s] == {split_of["mp:*"]}, s
    # the new folders add to validation and test, not only to training
    assert {splits[s].pop() for s in (88, 140)} == {"val"} and {splits[s].pop() for s in (90, 131)} == {"test"}


def test_folders_given_one_by_one_load_their_groups(mocap_dir):
    """`wildpose train --mocap A --mocap B`: each folder gives the clips of the groups it holds, and a folder
    holding none of them is skipped (it used to fail: the check counted the clips of every folder)."""
    acro, s131 = mocap_dir / "cmu_acrobatics", mocap_dir / "cmu_subject_131"
    sources = Sources(mocap=[acro, s131])
    assert set(sources.groups()) == {g for _, g in list_clips(acro)} | {"cmu:131"}
    only_131 = sources.load_split(["cmu:131"])
    assert only_131.subjects == ["cmu:131"] * 3 and only_131.n_frames == 498 + 624 + 624
    val = sources.load_split(DEFAULT_SPLIT["val"])
    assert sorted(set(val.subjects)) == ["cmu:140", "cmu:88"] and len(val.lengths) == 6
    test = sources.load_split(DEFAULT_SPLIT["test"])
    assert sorted(set(test.subjects)) == ["cmu:131", "cmu:90"] and test.n_frames == 911 + 1746


def test_cache_follows_the_shipped_mapping(mocap_dir, tmp_path, monkeypatch):
    """The two new rigs are defined by their JSON: editing it changes the cache key of the rig-detected loader,
    so the cache never serves joints of the old definition."""
    import shutil

    from wildpose.lift.train import sources
    from wildpose.lift.train.data import loader_tag

    maps = tmp_path / "mappings"
    shutil.copytree(sources.MAPPINGS_DIR, maps)
    monkeypatch.setattr(sources, "MAPPINGS_DIR", maps)
    folder = mocap_dir / "cmu_acrobatics"
    before_tag = loader_tag()
    before = load_split(folder, ["cmu:08"], cache_dir=tmp_path / "cache")
    text = (maps / "deepmimic15.json").read_text()
    assert '"offset": [-2.4, 28.1, 0.0]' in text
    (maps / "deepmimic15.json").write_text(text.replace("[-2.4, 28.1,", "[-2.4, 38.1,"))  # thorax 10 cm higher
    assert loader_tag() != before_tag
    after = load_split(folder, ["cmu:08"], cache_dir=tmp_path / "cache")
    moved = np.linalg.norm(after.h36m[:, 8] - before.h36m[:, 8], axis=-1)
    np.testing.assert_allclose(moved, 0.1, atol=1e-3)
    np.testing.assert_array_equal(after.h36m[:, :8], before.h36m[:, :8])
    assert len(list((tmp_path / "cache").glob("rigs-*"))) == 2


def test_bad_virtual_joints_are_refused_naming_the_file(mocap_dir, tmp_path):
    import json

    from wildpose.errors import FormatError
    from wildpose.lift.train.sources import MAPPINGS_DIR, load_mapping, map_bvh_with

    base = json.loads((MAPPINGS_DIR / "deepmimic15.json").read_text())
    (tmp_path / "bad.json").write_text(json.dumps(dict(base, virtual_joints={"thorax_point": {"parent": "chest"}})))
    with pytest.raises(FormatError, match="virtual_joints") as err:
        load_mapping(tmp_path / "bad.json")
    assert "bad.json" in str(err.value)
    clash = dict(base["virtual_joints"], neck={"parent": "chest", "offset": [0, 1, 0]})
    (tmp_path / "clash.json").write_text(json.dumps(dict(base, virtual_joints=clash)))
    path = mocap_dir / "cmu_acrobatics/127/127_03.bvh"
    with pytest.raises(FormatError, match="already has joint") as err:
        map_bvh_with(read_bvh(path), load_mapping(tmp_path / "clash.json"), str(path))
    assert "127_03.bvh" in str(err.value)
    orphan = dict(base["virtual_joints"], thorax_point={"parent": "spine3", "offset": [0, 1, 0]})
    (tmp_path / "orphan.json").write_text(json.dumps(dict(base, virtual_joints=orphan)))
    with pytest.raises(FormatError, match="no joint.*spine3"):
        map_bvh_with(read_bvh(path), load_mapping(tmp_path / "orphan.json"), str(path))
