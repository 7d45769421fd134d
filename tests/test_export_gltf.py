"""The glTF exporter, read back with pygltflib (structure, and forward kinematics of the node animation) and
imported by Blender's glTF importer, on the real walk and crowd results and a synthetic turning person."""

from __future__ import annotations

import numpy as np
import pygltflib as gl
import pytest
from scipy.spatial.transform import Rotation

from blender_client import needs_blender, read_bones, world_from_blender
from test_export_bvh import result_of, turning_round
from wildpose.export import gltf
from wildpose.export.skeleton_fit import fit_result
from wildpose.skeleton import H36M_NAMES

COMPONENTS = {gl.FLOAT: np.float32, gl.UNSIGNED_SHORT: np.uint16, gl.UNSIGNED_INT: np.uint32}
WIDTH = {gl.SCALAR: 1, gl.VEC3: 3, gl.VEC4: 4, gl.MAT4: 16}


def read_accessor(doc: gl.GLTF2, blob: bytes, index: int) -> np.ndarray:
    acc = doc.accessors[index]
    view = doc.bufferViews[acc.bufferView]
    dtype = np.dtype(COMPONENTS[acc.componentType])
    n = acc.count * WIDTH[acc.type]
    start = view.byteOffset + (acc.byteOffset or 0)
    assert start + n * dtype.itemsize <= view.byteOffset + view.byteLength <= len(blob)
    return np.frombuffer(blob, dtype, n, start).reshape(acc.count, WIDTH[acc.type])


def check_structure(doc: gl.GLTF2, blob: bytes) -> None:
    """What a glTF validator would refuse first: bounds, required min/max, skins, unit quaternions."""
    assert doc.asset.version == "2.0" and len(doc.buffers) == 1 and doc.buffers[0].byteLength == len(blob)
    for mesh in doc.meshes:
        for prim in mesh.primitives:
            pos = doc.accessors[prim.attributes.POSITION]
            assert pos.min and pos.max
            count = pos.count
            idx = read_accessor(doc, blob, prim.indices)
            assert idx.max() < count
            w = read_accessor(doc, blob, prim.attributes.WEIGHTS_0)
            np.testing.assert_allclose(w.sum(1), 1.0)
    for skin in doc.skins:
        assert doc.accessors[skin.inverseBindMatrices].count == len(skin.joints)
    for anim in doc.animations:
        for sampler in anim.samplers:
            t = read_accessor(doc, blob, sampler.input)[:, 0]
            assert doc.accessors[sampler.input].min and (np.diff(t) > 0).all()
        for ch in anim.channels:
            if ch.target.path == "rotation":
                q = read_accessor(doc, blob, anim.samplers[ch.sampler].output)
                np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)


def gltf_joints(path, track_id: int, times: np.ndarray) -> np.ndarray:
    """(len(times), 17, 3): forward kinematics of the file's node tree and animation (LINEAR/STEP) at ``times``."""
    doc = gl.GLTF2().load(str(path))
    blob = doc.binary_blob()
    check_structure(doc, blob)
    index = {node.name: i for i, node in enumerate(doc.nodes)}
    anim = doc.animations[0]
    tracks = {}
    for ch in anim.channels:
        s = anim.samplers[ch.sampler]
        tracks[(ch.target.node, ch.target.path)] = (read_accessor(doc, blob, s.input)[:, 0],
                                                     read_accessor(doc, blob, s.output), s.interpolation)

    def value(node, path, default, t):
        if (node, path) not in tracks:
            return np.repeat(np.asarray(default, np.float64)[None], len(t), 0)
        keys, values, interp = tracks[(node, path)]
        if interp == gl.ANIM_STEP:
            return values[np.clip(np.searchsorted(keys, t, side="right") - 1, 0, len(keys) - 1)]
        out = np.stack([np.interp(t, keys, values[:, c]) for c in range(values.shape[1])], -1)
        return out / np.linalg.norm(out, axis=1, keepdims=True) if path == "rotation" else out

    out = np.zeros((len(times), 17, 3))
    world = {}
    for j, name in enumerate(H36M_NAMES):
        i = index[f"track{track_id}_{name}"]
        node = doc.nodes[i]
        T = value(i, "translation", node.translation, times)
        R = Rotation.from_quat(value(i, "rotation", node.rotation, times)).as_matrix()
        S = value(i, "scale", node.scale or [1, 1, 1], times)
        M = np.tile(np.eye(4), (len(times), 1, 1))
        M[:, :3, :3] = R * S[:, None, :]
        M[:, :3, 3] = T
        parent = [p for p, n in world.items() if i in (doc.nodes[p].children or [])]
        world[i] = world[parent[0]] @ M if parent else M
        out[:, j] = world[i][:, :3, 3]
    return out


def test_turning_round_read_back(tmp_path):
    poses, times = turning_round()
    (path,) = gltf.export(result_of(poses, np.arange(len(poses)), times, 30.0), tmp_path, "spin")
    np.testing.assert_allclose(gltf_joints(path, 7, times), poses, atol=1e-5)  # float32 file
    # linear interpolation between samples stays a body: bones keep their lengths mid-frame
    mid = gltf_joints(path, 7, times[:-1] + 1 / 60)
    np.testing.assert_allclose(np.linalg.norm(mid[:, 2] - mid[:, 1], axis=-1),
                               np.linalg.norm(poses[0, 2] - poses[0, 1]), atol=1e-4)


def _check_result(result, tmp_path, stem):
    (path,) = gltf.export(result, tmp_path, stem)
    assert path.name == f"{stem}.glb"
    for p in range(len(result.track_ids)):
        fit = fit_result(result, p)
        joints = gltf_joints(path, fit.track_id, fit.times)
        assert np.abs(joints - fit.fitted).max() < 1e-4  # metres: the fit, to float32
        # hidden (scale 0, collapsed onto the pelvis) before its first frame when it starts later
        if fit.start_time > 0.1:
            before = gltf_joints(path, fit.track_id, np.array([fit.start_time - 0.05]))
            assert np.ptp(before[0], axis=0).max() < 1e-6
    return path


@pytest.mark.slow
def test_walk_gltf_read_back(walk_result, tmp_path):
    _check_result(walk_result, tmp_path, "walk")


@pytest.mark.slow
def test_crowd_gltf_read_back(crowd_result, tmp_path):
    _check_result(crowd_result, tmp_path, "crowd")


def _check_in_blender(result, tracks, tmp_path, stem):
    (path,) = gltf.export(result, tmp_path, stem)
    fits = [fit_result(result, p) for p in tracks]
    samples = [(fit, k) for fit in fits for k in np.linspace(0, fit.num_samples - 1, 3).round().astype(int)]
    times = [float(np.float32(fit.times[k])) for fit, k in samples]  # the file's float32 key times
    data = read_bones("gltf", path, times, tmp_path)
    for i, (fit, k) in enumerate(samples):
        (bones,) = [a for a in data["armatures"].values() if f"track{fit.track_id}_pelvis" in a]
        heads = np.stack([bones[f"track{fit.track_id}_{n}"][i] for n in H36M_NAMES])
        # Blender's bones are the file's joints (its importer turned glTF's y up into its z up)
        np.testing.assert_array_less(np.linalg.norm(world_from_blender(heads) - fit.fitted[k], axis=-1), 0.01)
        z = heads[:, 2]
        # upright: head over pelvis over the lower ankle (a far runner of the crowd has a short world height, so
        # no fixed leg length is asked for)
        assert z[H36M_NAMES.index("head")] - z[0] > 0.3
        assert z[0] > min(z[H36M_NAMES.index("right_ankle")], z[H36M_NAMES.index("left_ankle")])


@needs_blender
@pytest.mark.slow
def test_walk_gltf_in_blender(walk_result, tmp_path):
    _check_in_blender(walk_result, [0], tmp_path, "walk")


@needs_blender
@pytest.mark.slow
def test_crowd_gltf_in_blender(crowd_result, tmp_path):
    # the three best-seen people (as `main_track` ranks them): the longest track is a spectator seen from the
    # chest up at the frame's bottom edge, whose leg "keypoints" (scores 0.02-0.17) lie above his hips, so no
    # lifter's guess at his legs has to be upright
    best_seen = np.argsort(crowd_result.seen_totals())[::-1][:3]
    _check_in_blender(crowd_result, best_seen.tolist(), tmp_path, "crowd")


def test_one_row_and_no_tracks(tmp_path):
    """A track of one row is a still figure shown from half a frame before it; a result without tracks is an
    empty, loadable scene."""
    from test_export_bvh import standing_pose
    from wildpose.types import Result

    one = result_of(standing_pose()[None].astype(np.float32), np.array([3]), np.arange(10) / 25.0, 25.0)
    (path,) = gltf.export(one, tmp_path, "one")
    np.testing.assert_allclose(gltf_joints(path, 7, np.array([0.12, 0.2]))[0], standing_pose(), atol=1e-6)
    assert np.ptp(gltf_joints(path, 7, np.array([0.05]))[0], axis=0).max() < 1e-6  # not yet there: hidden
    empty = Result(np.zeros(0), np.zeros(0), np.zeros(0), np.arange(5) / 25.0, keypoints_2d=np.zeros((0, 17, 3)),
                   poses_3d=np.zeros((0, 17, 3)), interpolated=np.zeros(0, bool), fps=25.0, image_size=(4, 4),
                   poses_world=np.zeros((0, 17, 3)))
    (path,) = gltf.export(empty, tmp_path, "empty")
    doc = gl.GLTF2().load(str(path))
    assert not doc.nodes and not doc.animations and doc.scenes[0].nodes == []
