"""glTF 2.0 binary: ``{stem}.glb``, every track in one file, an animated skinned skeleton per track.

Per track: the 17 Human3.6M joints as nodes ``track{id}_{joint}`` (the pelvis node in the scene, the others
below it), their rest translations the ``skeleton_fit`` offsets (T-pose, constant bone lengths), a skin over them
and a skinned mesh ``track{id}_body`` (an octahedron along every bone, rigidly bound to the bone's joint) so the
figure shows. One animation, ``wildpose``: each joint's rotation and the pelvis's translation sampled at the
track's frame times (LINEAR), and a STEP scale on the pelvis, 0 outside the track's span (half a frame before its first
frame to a frame after its last), so a person appears and disappears with the video. Times are seconds from the video's start
(``Result.timestamps``), one uniform grid per track at the video's frame rate (holes and a variable frame rate
resampled, as in ``skeleton_fit``).

Axes are glTF's own, the same as ``poses_world``: metres, y up, right-handed; the rest pose faces +z (glTF's
"front"). Written with pygltflib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pygltflib as gl

from ..atomic import atomic_path
from ..skeleton import H36M_NAMES, H36M_PARENTS
from ..types import Result
from .bvh import fits
from .skeleton_fit import CHILDREN, LEAVES, SkeletonFit

J = len(H36M_NAMES)
ANIMATION = "wildpose"
BONE_WIDTH = 0.12  # the octahedra's width as a fraction of the bone's length


class _Builder:
    """Accumulates the binary buffer, its views and accessors."""

    def __init__(self):
        self.gltf = gl.GLTF2(asset=gl.Asset(generator="wildpose", version="2.0"), scene=0,
                             scenes=[gl.Scene(nodes=[])])
        self.blob = bytearray()

    def accessor(self, data: np.ndarray, kind: str, component=gl.FLOAT, target=None, bounds=False) -> int:
        data = np.ascontiguousarray(data)
        while len(self.blob) % 4:
            self.blob.append(0)
        view = gl.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=data.nbytes, target=target)
        self.blob.extend(data.tobytes())
        self.gltf.bufferViews.append(view)
        count = len(data)
        accessor = gl.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=component, count=count,
                               type=kind)
        if bounds:  # required on POSITION and on animation inputs
            flat = data.reshape(count, -1)
            accessor.min = flat.min(axis=0).tolist()
            accessor.max = flat.max(axis=0).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def node(self, **fields) -> int:
        self.gltf.nodes.append(gl.Node(**fields))
        return len(self.gltf.nodes) - 1


def export(result: Result, out_dir: Path, stem: str) -> list[Path]:
    """Write ``{stem}.glb`` with every track; returns [that path]."""
    path = Path(out_dir) / f"{stem}.glb"
    end_time = float(result.timestamps[-1]) if result.num_frames else 0.0
    glb = build(fits(result), end_time)
    with atomic_path(path) as tmp:
        glb.save_binary(str(tmp))
    return [path]


def build(track_fits: list[SkeletonFit], end_time: float) -> gl.GLTF2:
    b = _Builder()
    animation = gl.Animation(name=ANIMATION, channels=[], samplers=[])
    b.gltf.materials.append(gl.Material(name="body", pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorFactor=[0.8, 0.55, 0.3, 1.0], metallicFactor=0.0, roughnessFactor=0.8)))
    for fit in track_fits:
        _add_track(b, animation, fit, end_time)
    if animation.channels:
        b.gltf.animations.append(animation)
    # (no tracks: an empty scene; pygltflib still writes its one buffer, of 0 bytes, which strict validators flag)
    b.gltf.buffers.append(gl.Buffer(byteLength=len(b.blob)))
    b.gltf.set_binary_blob(bytes(b.blob))
    return b.gltf


def _add_track(b: _Builder, animation: gl.Animation, fit: SkeletonFit, end_time: float) -> None:
    prefix = f"track{fit.track_id}_"
    first = len(b.gltf.nodes)
    nodes = [first + j for j in range(J)]  # joint j is node first + j
    for j in range(J):
        translation = fit.root_positions[0] if j == 0 else fit.offsets[j]
        b.node(name=prefix + H36M_NAMES[j], translation=[float(v) for v in translation],
               rotation=[0.0, 0.0, 0.0, 1.0], children=[first + c for c in CHILDREN[j]] or None)
    b.gltf.scenes[0].nodes.append(nodes[0])

    # bind pose: the T-pose standing where the track starts; joints' world positions
    rest = np.zeros((J, 3))
    rest[0] = fit.root_positions[0]
    for j in range(1, J):
        rest[j] = rest[H36M_PARENTS[j]] + fit.offsets[j]
    inverse_bind = np.tile(np.eye(4, dtype=np.float32), (J, 1, 1))
    inverse_bind[:, :3, 3] = -rest
    # glTF matrices are column-major: the transpose of each, written row by row
    ibm = b.accessor(np.swapaxes(inverse_bind, 1, 2).astype(np.float32), gl.MAT4)
    b.gltf.skins.append(gl.Skin(name=f"track{fit.track_id}", joints=nodes, skeleton=nodes[0],
                                inverseBindMatrices=ibm))
    mesh = _bone_mesh(b, fit, rest)
    body = b.node(name=prefix + "body", mesh=mesh, skin=len(b.gltf.skins) - 1)
    b.gltf.scenes[0].nodes.append(body)

    times = b.accessor(fit.times.astype(np.float32), gl.SCALAR, bounds=True)

    def channel(node: int, path: str, values: np.ndarray, kind: str, input_=times, interpolation=gl.ANIM_LINEAR):
        output = b.accessor(values.astype(np.float32), kind)
        animation.samplers.append(gl.AnimationSampler(input=input_, output=output, interpolation=interpolation))
        animation.channels.append(gl.AnimationChannel(sampler=len(animation.samplers) - 1,
                                                      target=gl.AnimationChannelTarget(node=node, path=path)))

    channel(nodes[0], "translation", fit.root_positions, gl.VEC3)
    for j in range(J):
        if j not in LEAVES:  # leaves keep their parent's rotation: identity, the node's own
            channel(nodes[j], "rotation", fit.rotations[:, j], gl.VEC4)
    # visibility: scale 1 over the track's span, 0 before and after it (STEP holds each key until the next)
    # (it appears half a frame early, so that the first sample shows whatever rounding the player's clock does)
    span_start, span_end = fit.start_time - 0.5 / fit.fps, fit.times[-1] + 1.0 / fit.fps
    keys, scales = [max(span_start, 0.0)], [1.0]
    if span_start > 0:
        keys.insert(0, 0.0)
        scales.insert(0, 0.0)
    if span_end < end_time:
        keys.append(span_end)
        scales.append(0.0)
    if len(keys) > 1:
        step_times = b.accessor(np.array(keys, np.float32), gl.SCALAR, bounds=True)
        channel(nodes[0], "scale", np.repeat(np.array(scales)[:, None], 3, axis=1), gl.VEC3, input_=step_times,
                interpolation=gl.ANIM_STEP)


def _bone_mesh(b: _Builder, fit: SkeletonFit, rest: np.ndarray) -> int:
    """An octahedron from each joint to each child (and to each leaf's End Site), bound to that joint."""
    segments = [(int(H36M_PARENTS[c]), rest[H36M_PARENTS[c]], rest[c]) for c in range(1, J)]
    segments += [(j, rest[j], rest[j] + fit.end_sites[j]) for j in LEAVES]
    positions, joints, faces = [], [], []
    for joint, head, tail in segments:
        axis = tail - head
        length = np.linalg.norm(axis)
        if length < 1e-6:
            continue
        a = axis / length
        side = np.cross(a, [0, 0, 1.0] if abs(a[2]) < 0.9 else [1.0, 0, 0])
        side /= np.linalg.norm(side)
        other = np.cross(a, side)
        mid = head + 0.2 * axis
        w = BONE_WIDTH * length
        base = len(positions)
        positions += [head, tail, mid + w * side, mid + w * other, mid - w * side, mid - w * other]
        joints += [joint] * 6
        for k in range(4):
            ring, nxt = base + 2 + k, base + 2 + (k + 1) % 4
            faces += [(base, nxt, ring), (base + 1, ring, nxt)]
    position = b.accessor(np.asarray(positions, np.float32), gl.VEC3, target=gl.ARRAY_BUFFER, bounds=True)
    joint_ids = np.zeros((len(joints), 4), np.uint16)
    joint_ids[:, 0] = joints
    weights = np.zeros((len(joints), 4), np.float32)
    weights[:, 0] = 1.0
    joints_0 = b.accessor(joint_ids, gl.VEC4, component=gl.UNSIGNED_SHORT, target=gl.ARRAY_BUFFER)
    weights_0 = b.accessor(weights, gl.VEC4, target=gl.ARRAY_BUFFER)
    indices = b.accessor(np.asarray(faces, np.uint32).reshape(-1), gl.SCALAR, component=gl.UNSIGNED_INT,
                         target=gl.ELEMENT_ARRAY_BUFFER)
    primitive = gl.Primitive(attributes=gl.Attributes(POSITION=position, JOINTS_0=joints_0, WEIGHTS_0=weights_0),
                             indices=indices, material=0)
    b.gltf.meshes.append(gl.Mesh(name=f"track{fit.track_id}_body", primitives=[primitive]))
    return len(b.gltf.meshes) - 1
