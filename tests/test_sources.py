"""Training data sources: BVH joint-name mappings (the shipped JSON for the three older shared rigs must reproduce
rigs.py exactly), any skeleton through a mapping, and the reference's data_3d_h36m.npz (built here from real
CMU mocap in that layout; a hostile pickle must be refused without running anything).

Skips (with the reason) when the shared mocap folder is absent.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

from wildpose.errors import FormatError
from wildpose.formats.safe_pickle import write_npz
from wildpose.lift.train.bvh import read_bvh
from wildpose.lift.train.data import load_split, loader_tag
from wildpose.lift.train.rigs import detect_rig, facing_check, load_clip
from wildpose.lift.train.sources import (H36M32_NAMES, H36M32_TO_17, MAPPINGS_DIR, Sources, load_clip_with,
                                         load_h36m_clips, load_mapping, map_bvh_with, parse_mapping,
                                         read_h36m_npz, resolve_split, shipped_mappings)
from wildpose.skeleton import H36M_NAMES

ONE_PER_RIG = {
    "daz57": "cmu_dance_martial/salsa/02.bvh",
    "cc141": "cmu_subjects_01_07/All_BVH/subjects/002/002_01.bvh",
    "asf38": "cmu_motion_prediction_subset/train/walking/walking_1.bvh",
    # defined by their shipped mappings only (rigs.MAPPED_RIGS); tests/test_rigs_new.py checks their anatomy
    "deepmimic15": "cmu_acrobatics/127/127_03.bvh",
    "max31": "cmu_subject_131/131_01.bvh",
}


def test_shipped_mappings_reproduce_the_rigs(mocap_dir):
    maps = shipped_mappings()
    assert set(maps) == set(ONE_PER_RIG)
    for rig, rel in ONE_PER_RIG.items():
        bvh = read_bvh(mocap_dir / rel)
        ref = load_clip(mocap_dir / rel)
        got = map_bvh_with(bvh, maps[rig], str(mocap_dir / rel))
        np.testing.assert_array_equal(got.h36m, ref.h36m, err_msg=rig)
        np.testing.assert_array_equal(got.coco, ref.coco, err_msg=rig)
        np.testing.assert_array_equal(got.toes, ref.toes, err_msg=rig)
        assert got.fps == ref.fps
        # each mapping's detect set picks out its own rig only
        assert [name for name, m in maps.items() if m.matches(bvh.names)] == [detect_rig(bvh.names)]


def test_shipped_mappings_give_the_training_clips(mocap_dir):
    """The shared folder through the three JSON mappings (each file takes the one that fits) loads the same
    clips as the rig code path that training uses."""
    sources = Sources(mocap=[mocap_dir], mapping=["daz57", "cc141", "asf38"])
    for groups in (["cmu:03"], ["mp:*"], ["salsa:61"]):
        ref = load_split(mocap_dir, groups, max_clips=2)
        got = sources.load_split(groups, max_clips=2)
        assert got.names == ref.names and got.subjects == ref.subjects
        np.testing.assert_array_equal(got.h36m, ref.h36m)
        np.testing.assert_array_equal(got.coco, ref.coco)
    with pytest.raises(FormatError, match="no mapping .daz57. fits|no joint"):
        Sources(mocap=[mocap_dir], mapping=["daz57"]).load_split(["cmu:03"], max_clips=1)


def test_mapping_units_up_axis_and_fps(mocap_dir):
    path = mocap_dir / ONE_PER_RIG["asf38"]
    base = json.loads((MAPPINGS_DIR / "asf38.json").read_text())
    ref = load_clip_with(path, parse_mapping(base))
    m = parse_mapping({**base, "units_to_m": 0.02, "up": "z", "fps": 25, "head_top_offset": [0, 0.2, 0.0]})
    got = load_clip_with(path, m)
    assert got.fps == 25.0
    # a Z-up file turned to Y up: (x, y, z) -> (x, z, -y), on top of the doubled units
    expected = 2 * np.stack([ref.h36m[..., 0], ref.h36m[..., 2], -ref.h36m[..., 1]], -1)
    body = [i for i, n in enumerate(H36M_NAMES) if n not in ("neck", "head")]
    np.testing.assert_allclose(got.h36m[:, body], expected[:, body], atol=1e-5)
    # head top moved by the offset override: 0.2 m up the head from the head joint instead of (0.15, 0.03)
    assert not np.allclose(got.h36m[:, 10], expected[:, 10], atol=0.01)


def test_any_skeleton_through_a_mapping(mocap_dir, tmp_path):
    """A renamed skeleton (every joint prefixed, as exporters do) works with a mapping naming the new joints,
    and gives exactly the rig's joints; a Sources folder groups it by folder name."""
    src = mocap_dir / ONE_PER_RIG["asf38"]
    text = src.read_text()
    names = set(read_bvh(src).names)
    for n in sorted(names, key=len, reverse=True):
        if not n.endswith("_end"):
            text = text.replace(f"JOINT {n}\n", f"JOINT rig:{n}\n").replace(f"ROOT {n}\n", f"ROOT rig:{n}\n")
    folder = tmp_path / "subjectA"
    folder.mkdir()
    (folder / "take1.bvh").write_text(text)
    assert "rig:lfemur" in read_bvh(folder / "take1.bvh").names
    with pytest.raises(FormatError):
        detect_rig(read_bvh(folder / "take1.bvh").names)
    m = json.loads((MAPPINGS_DIR / "asf38.json").read_text())

    def rename(v):
        if isinstance(v, str):
            return "rig:" + v
        if isinstance(v, list):
            return [rename(x) for x in v]
        if isinstance(v, dict):
            return {k: rename(x) for k, x in v.items()}
        return v

    for key in ("h36m", "coco", "head_joint", "toes", "detect"):
        m[key] = rename(m[key])
    m["extend_zero_bones"] = {"rig:thorax": ["rig:lowerneck", "rig:lclavicle", "rig:rclavicle"]}
    m["name"] = "renamed"
    (tmp_path / "map.json").write_text(json.dumps(m))
    got = load_clip_with(folder / "take1.bvh", load_mapping(tmp_path / "map.json"))
    ref = load_clip(src)
    np.testing.assert_allclose(got.h36m, ref.h36m, atol=1e-6)
    np.testing.assert_allclose(got.coco, ref.coco, atol=1e-6)
    assert facing_check(got) > 0.9

    sources = Sources(mocap=[tmp_path], mapping=tmp_path / "map.json")
    assert sources.groups() == ["subjectA:?"]
    clips = sources.load_split(["subjectA:?"], cache_dir=tmp_path / "cache")
    assert clips.names == ["subjectA/take1.bvh"] and clips.n_frames == len(ref.h36m)  # 60 fps: no resampling
    again = sources.load_split(["subjectA:?"], cache_dir=tmp_path / "cache")  # from the cache
    np.testing.assert_array_equal(again.h36m, clips.h36m)
    # a changed file is read again, not served from the cache (keys hold size and time, and the loader's hash)
    (folder / "take1.bvh").write_text(text + "\n")  # same motion, another size and time
    os.utime(folder / "take1.bvh", (1e9, 1e9))
    cached = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(cached) == 1 and "mapped" in cached[0].parts and cached[0].parent.name == loader_tag(
        "".join(m.source for m in sources.mappings))
    with np.load(cached[0]) as z:
        np.savez(cached[0], h36m=z["h36m"] + 1.0, coco=z["coco"])  # a stale entry under the old key
    fresh = sources.load_split(["subjectA:?"], cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(fresh.h36m, clips.h36m)
    assert len(sorted((tmp_path / "cache").rglob("*.npz"))) == 2


def test_mapping_errors_name_the_file_and_joint(mocap_dir, tmp_path):
    base = json.loads((MAPPINGS_DIR / "daz57.json").read_text())
    with pytest.raises(FormatError, match="unknown keys"):
        parse_mapping({**base, "scale": 1})
    with pytest.raises(FormatError, match="h36m.thorax is missing"):
        parse_mapping({**base, "h36m": {k: v for k, v in base["h36m"].items() if k != "thorax"}})
    with pytest.raises(FormatError, match="has no joints"):
        parse_mapping({**base, "h36m": {**base["h36m"], "chin": "head"}})
    path = mocap_dir / ONE_PER_RIG["asf38"]  # an ASF file through the DAZ mapping
    with pytest.raises(FormatError, match="walking_1.bvh.*no joint.*abdomen"):
        load_clip_with(path, parse_mapping(base))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FormatError, match="bad.json.*not valid JSON"):
        load_mapping(tmp_path / "bad.json")


def test_h36m_selection_matches_the_reference_names():
    """REFERENCE.md section 4's 17 joints, from the 32 Human3.6M joints by the standard selection."""
    picked = [H36M32_NAMES[i] for i in H36M32_TO_17]
    assert dict(zip(H36M_NAMES, picked)) == {
        "pelvis": "hips", "right_hip": "right_up_leg", "right_knee": "right_leg", "right_ankle": "right_foot",
        "left_hip": "left_up_leg", "left_knee": "left_leg", "left_ankle": "left_foot", "spine": "spine1",
        "thorax": "neck", "neck": "head", "head": "site_head", "left_shoulder": "left_arm",
        "left_elbow": "left_fore_arm", "left_wrist": "left_hand", "right_shoulder": "right_arm",
        "right_elbow": "right_fore_arm", "right_wrist": "right_hand"}


def make_h36m_npz(path, clips_by_subject: dict) -> None:
    """Write clips (Y-up rig Clips) in the reference's data_3d_h36m.npz layout: {subject: {action: (T, 32, 3)}}
    metres, Z up, as a pickled object array (what np.savez writes for a dict)."""
    data = {}
    for subject, clips in clips_by_subject.items():
        data[subject] = {}
        for action, clip in clips.items():
            j32 = np.zeros((len(clip.h36m), 32, 3), np.float32)
            j32[:, H36M32_TO_17] = clip.h36m
            j32[:, 9], j32[:, 4] = clip.toes[:, 0], clip.toes[:, 1]
            x, y, z = j32[..., 0], j32[..., 1], j32[..., 2]
            data[subject][action] = np.stack([x, -z, y], -1)  # Y up -> Z up
    arr = np.empty((), dtype=object)
    arr[()] = data
    write_npz(path, {"positions_3d": arr}, allow_object=True)


@pytest.fixture(scope="module")
def h36m_file(mocap_dir, tmp_path_factory):
    walk = load_clip(mocap_dir / ONE_PER_RIG["asf38"])
    salsa = load_clip(mocap_dir / ONE_PER_RIG["daz57"])
    path = tmp_path_factory.mktemp("h36m") / "data_3d_h36m.npz"
    make_h36m_npz(path, {"S1": {"Walking": walk}, "S9": {"Salsa 1": salsa, "Walking 1": walk}})
    return path, {"walk": walk, "salsa": salsa}


def test_h36m_npz_maps_to_our_layouts(h36m_file):
    path, ref = h36m_file
    with pytest.raises(ValueError):  # pickled like the reference's: plain np.load refuses it
        np.load(path)["positions_3d"]
    raw = read_h36m_npz(path)
    assert sorted(raw) == ["S1", "S9"] and raw["S9"]["Salsa 1"].shape[1:] == (32, 3)
    clips = {c.name: c for c in load_h36m_clips(path)}
    assert sorted(clips) == ["S1/Walking", "S9/Salsa 1", "S9/Walking 1"]
    salsa = clips["S9/Salsa 1"]
    assert salsa.subject == "h36m:S9" and salsa.fps == 50.0
    np.testing.assert_allclose(salsa.h36m, ref["salsa"].h36m, atol=1e-5)  # back to Y up exactly
    body = slice(5, 17)  # COCO shoulders .. ankles (hips widened as the rigs do)
    np.testing.assert_allclose(salsa.coco[:, body], ref["salsa"].coco[:, body], atol=1e-5)
    # face points from the joints' head frame vs the rig's head-joint rotation: same model, a different frame
    # (the shoulders fix its yaw), so within a few cm
    face_err = np.linalg.norm(salsa.coco[:, :5] - ref["salsa"].coco[:, :5], axis=-1)
    assert np.median(face_err) < 0.03 and face_err.max() < 0.12, (np.median(face_err), face_err.max())
    assert facing_check(salsa) > 0.9 and facing_check(clips["S1/Walking"]) > 0.9  # handedness kept
    nose_ahead = np.einsum("fi,fi->f", salsa.coco[:, 0] - salsa.h36m[:, 8],
                           np.cross(salsa.h36m[:, 4] - salsa.h36m[:, 1], [0.0, 1.0, 0.0]))
    assert np.mean(nose_ahead > 0) > 0.95  # the nose is in front of the body

    sources = Sources(h36m=[path])
    assert sources.groups() == ["h36m:S1", "h36m:S9"]
    split = resolve_split({"train": ["mp:*"], "val": ["indian:94"], "test": ["cmu:03"]}, sources)
    assert split["train"][-5:] == ["h36m:S1", "h36m:S5", "h36m:S6", "h36m:S7", "h36m:S8"]
    assert split["test"] == ["cmu:03", "h36m:S9", "h36m:S11"]
    test = sources.load_split(split["test"])
    assert test.subjects == ["h36m:S9", "h36m:S9"]
    # resampled from 50 fps to the 60 fps base: same duration
    assert abs(test.lengths[0] / 60.0 - (len(salsa.h36m) - 1) / 50.0) < 0.05
    assert len(sources.load_split(split["test"], max_clips=1).lengths) == 1


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_h36m_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    np.save(buf, np.array([_Hostile(marker)], dtype=object), allow_pickle=True)  # writing runs nothing
    assert b"system" in buf.getvalue()
    path = tmp_path / "data_3d_h36m.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("positions_3d.npy", buf.getvalue())
    with pytest.raises(FormatError, match="refused pickled global.*nothing was run"):
        read_h36m_npz(path)
    with pytest.raises(FormatError):
        Sources(h36m=[path]).groups()
    assert not marker.exists()
    # and a well-formed pickle of the wrong layout is a FormatError too
    write_npz(tmp_path / "wrong.npz", {"positions_3d": np.zeros((3, 17, 3))})
    with pytest.raises(FormatError, match="not a .subject"):
        read_h36m_npz(tmp_path / "wrong.npz")
