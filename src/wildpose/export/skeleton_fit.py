"""A rigged skeleton fitted to one track: constant bone lengths, joint rotations, root translation, on a uniform
time grid. The BVH and glTF exporters write the same fit.

The rig is the 17 Human3.6M joints (``skeleton.H36M_NAMES``, pelvis the root). Its rest pose (every rotation zero)
is a T-pose facing +z, y up, the person's left at +x (the world of ``Result.poses_world``: x right, y up, z towards
the camera, right-handed): legs straight down, spine, neck and head straight up, arms out sideways. The two joints
with several children (pelvis: both hips and the spine; thorax: the neck and both shoulders) take their children's
rest offsets from the track's own median shape in that joint's frame, so the T-pose keeps the person's hip width,
shoulder height and so on.

Fitting, per track:

1. Time. Samples on a uniform grid at the video's frame rate from the track's first to its last frame (a video
   with variable frame rate is resampled; a track's holes, frames it is absent, are spanned by linear interpolation
   of the joint positions: one continuous clip from the first to the last frame, ``filled`` marks the samples with
   no row within half a frame).
2. Bone lengths: the median of each bone's length over the track's rows.
3. Rotations. Each joint with one child turns its rest bone direction onto the observed one exactly; the twist
   about the bone comes from its neighbours: the spine and neck from the hip and shoulder lines, a limb's two
   bones from the limb's bending plane (the knee's / elbow's hinge axis), blended with an axis from the torso that
   takes over as the limb straightens, so the twist neither flips nor spins when the knee or elbow is straight.
   Pelvis and thorax take the rotation that best maps their three children's rest offsets onto the observed ones
   (least squares, Kabsch). Leaf joints (ankles, wrists, head) keep their parent's rotation.
4. Forward kinematics of those rotations and lengths from the observed pelvis gives ``fitted``: the bone
   directions are the observed ones (but at the pelvis and thorax, a best fit), the lengths constant.

Rotations are local (parent-from-child), as quaternions made sign-continuous frame to frame, and as BVH Euler
angles (intrinsic Z, X, Y) unwrapped and chosen between the two equivalent triples for continuity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..skeleton import H36M_NAMES, H36M_PARENTS

J = len(H36M_NAMES)
PELVIS, R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, SPINE, THORAX, NECK, HEAD = range(11)
L_SHOULDER, L_ELBOW, L_WRIST, R_SHOULDER, R_ELBOW, R_WRIST = range(11, 17)
CHILDREN = tuple(tuple(int(c) for c in np.flatnonzero(H36M_PARENTS == j)) for j in range(J))
LEAVES = tuple(j for j in range(J) if not CHILDREN[j])  # ankles, head, wrists: an End Site each in BVH

_UP, _LEFT, _FORWARD = np.eye(3)[1], np.eye(3)[0], np.eye(3)[2]
# rest direction of the bone each one-child joint turns (towards its child), and of its twist reference
REST_BONE = {SPINE: _UP, NECK: _UP,
             R_HIP: -_UP, R_KNEE: -_UP, L_HIP: -_UP, L_KNEE: -_UP,
             L_SHOULDER: _LEFT, L_ELBOW: _LEFT, R_SHOULDER: -_LEFT, R_ELBOW: -_LEFT}
# the hinge axes at rest, from the same formulas as the observed ones (``_limb_hinge``) on a slightly bent T-pose
REST_REFERENCE = {SPINE: _LEFT, NECK: _LEFT,
                  R_HIP: _LEFT, R_KNEE: _LEFT, L_HIP: _LEFT, L_KNEE: _LEFT,
                  L_SHOULDER: -_UP, L_ELBOW: -_UP, R_SHOULDER: _UP, R_ELBOW: _UP}
# End Site offsets beyond the leaves, as fractions of the bone before them, in the leaf's rest frame: a foot
# pointing forward, a hand along the forearm, the top of the head (the rig has no toes, fingers or skull top;
# they give the last bones a length in the tools that draw bones head to tail)
END_SITE = {R_ANKLE: 0.5 * _FORWARD, L_ANKLE: 0.5 * _FORWARD, HEAD: 0.5 * _UP,
            L_WRIST: 0.4 * _LEFT, R_WRIST: -0.4 * _LEFT}
# weight of the torso's axis in a limb's twist reference against the bending plane's normal (whose size is the
# sine of the knee/elbow bend): the two count equally at a right angle, the torso more as the limb straightens.
# Chosen on the shared walk and crowd results: 0.3 let a nearly straight, jittering elbow swing the upper arm's
# twist (99th percentile of the limbs' frame-to-frame turn 22.7 degrees on the walk, 16.5 at 1.0)
TORSO_WEIGHT = 1.0


@dataclass
class SkeletonFit:
    """The rig and motion of one track on a uniform grid of ``len(times)`` samples.

    offsets: (17, 3) each joint's rest position relative to its parent, in the parent's frame, metres (root: 0)
    end_sites: (17, 3) End Site offset beyond each leaf joint, in its frame, metres (zeros elsewhere)
    rotations: (K, 17, 4) local (parent-from-joint) rotations, quaternions x, y, z, w, sign-continuous
    euler_zxy: (K, 17, 3) the same rotations as intrinsic Z, X, Y angles in degrees, continuous
    root_positions: (K, 3) pelvis, metres, world axes
    fitted: (K, 17, 3) the joints of the rig (forward kinematics), metres
    target: (K, 17, 3) ``poses_world`` on the grid (what was fitted)
    filled: (K,) bool, samples with no row of the track within half a frame (interpolated across a hole)
    """

    track_id: int
    start_time: float  # seconds from the video's start, of sample 0 (the track's first row)
    fps: float
    first_frame: int  # the result's frame index of the track's first row
    bone_lengths: np.ndarray  # (17,) metres, joint j to its parent (root: 0)
    offsets: np.ndarray
    end_sites: np.ndarray
    rotations: np.ndarray
    euler_zxy: np.ndarray
    root_positions: np.ndarray
    fitted: np.ndarray
    target: np.ndarray
    filled: np.ndarray

    @property
    def num_samples(self) -> int:
        return len(self.root_positions)

    @property
    def times(self) -> np.ndarray:
        """(K,) seconds from the video's start of each sample."""
        return self.start_time + np.arange(self.num_samples) / self.fps

    def fit_error(self) -> np.ndarray:
        """(K, 17) metres from each fitted joint to ``poses_world`` (on the grid)."""
        return np.linalg.norm(self.fitted - self.target, axis=-1)


def fit_result(result, track: int, fps: float | None = None) -> SkeletonFit | None:
    """The fit of ``result``'s track at position ``track`` (not id); None when it has no finite world pose."""
    rows = result.track(track)
    poses = np.asarray(result.poses_world[rows], np.float64)
    frames = result.frame_index[rows]
    keep = np.isfinite(poses).all(axis=(1, 2))
    if not keep.any():
        return None
    return fit_track(poses[keep], result.timestamps[frames[keep]], fps or result.fps,
                     track_id=int(result.track_ids[track]), first_frame=int(frames[keep][0]))


def fit_track(positions: np.ndarray, times: np.ndarray, fps: float, track_id: int = 0,
              first_frame: int = 0) -> SkeletonFit:
    """Fit the rig to one track's (n, 17, 3) world joints (metres, y up) at increasing ``times`` (seconds)."""
    positions = np.asarray(positions, np.float64)
    times = np.asarray(times, np.float64)
    if positions.ndim != 3 or positions.shape[1:] != (J, 3) or len(times) != len(positions) or not len(times):
        raise ValueError(f"expected (n, {J}, 3) positions and n times, got {positions.shape} and {times.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    target, filled = _resample(positions, times, fps)
    lengths = np.zeros(J)
    parents = H36M_PARENTS[1:]
    lengths[1:] = np.median(np.linalg.norm(positions[:, 1:] - positions[:, parents], axis=-1), axis=0)
    lengths = np.maximum(lengths, 1e-3)  # a collapsed bone still gets a direction to turn

    world = _global_rotations(target, lengths)
    offsets = _rest_offsets(target, lengths, world.rest_children)
    end_sites = np.zeros((J, 3))
    for leaf, fraction in END_SITE.items():
        end_sites[leaf] = fraction * lengths[leaf]
    G = world.rotations
    local = np.empty_like(G)
    local[:, 0] = G[:, 0]
    local[:, 1:] = np.swapaxes(G[:, parents], -1, -2) @ G[:, 1:]
    fitted = forward_kinematics(offsets, G, target[:, PELVIS])
    rot = Rotation.from_matrix(local.reshape(-1, 3, 3))
    quats = continuous_quaternions(rot.as_quat().reshape(-1, J, 4))
    euler = continuous_euler_zxy(rot.as_euler("ZXY", degrees=True).reshape(-1, J, 3))
    return SkeletonFit(track_id=track_id, start_time=float(times[0]), fps=float(fps), first_frame=first_frame,
                       bone_lengths=lengths * (np.arange(J) > 0), offsets=offsets, end_sites=end_sites,
                       rotations=quats, euler_zxy=euler, root_positions=target[:, PELVIS].copy(), fitted=fitted,
                       target=target, filled=filled)


def forward_kinematics(offsets: np.ndarray, world_rotations: np.ndarray, root: np.ndarray) -> np.ndarray:
    """(K, 17, 3) joints from rest offsets (17, 3), world rotations (K, 17, 3, 3) and root positions (K, 3)."""
    out = np.empty(world_rotations.shape[:2] + (3,))
    out[:, 0] = root
    for j in range(1, J):  # parents come before children in the H36M order
        p = H36M_PARENTS[j]
        out[:, j] = out[:, p] + world_rotations[:, p] @ offsets[j]
    return out


def world_from_local(local: np.ndarray) -> np.ndarray:
    """(K, 17, 3, 3) world rotations from local (parent-from-joint) ones."""
    out = np.empty_like(local)
    out[:, 0] = local[:, 0]
    for j in range(1, J):
        out[:, j] = out[:, H36M_PARENTS[j]] @ local[:, j]
    return out


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """(K, ..., 4) with each sample's sign chosen nearest the previous one (q and -q are one rotation)."""
    q = np.array(q, np.float64)
    if len(q) < 2:
        return q
    flip = np.sum(q[1:] * q[:-1], axis=-1) < 0
    sign = np.cumprod(np.where(flip, -1.0, 1.0), axis=0)
    q[1:] *= sign[..., None]
    return q


def continuous_euler_zxy(euler: np.ndarray) -> np.ndarray:
    """(K, ..., 3) intrinsic Z, X, Y degrees (scipy's, middle angle in [-90, 90]) made continuous in time.

    Every rotation has two triples, (z, x, y) and (z + 180, 180 - x, y + 180), each up to whole turns; per sample
    this takes the one nearest the previous sample's (a loop over samples, vectorised over joints: each choice
    depends on the one before), so a joint passing x = +-90 or a person turning round keeps smooth curves.
    """
    euler = np.asarray(euler, np.float64)
    if len(euler) < 2:
        return euler.copy()
    dual = np.stack([euler[..., 0] + 180.0, 180.0 - euler[..., 1], euler[..., 2] + 180.0], axis=-1)
    out = np.empty_like(euler)
    out[0] = euler[0]
    for k in range(1, len(euler)):
        prev = out[k - 1]
        a = euler[k] + 360.0 * np.round((prev - euler[k]) / 360.0)
        b = dual[k] + 360.0 * np.round((prev - dual[k]) / 360.0)
        take_b = np.sum((b - prev) ** 2, axis=-1) < np.sum((a - prev) ** 2, axis=-1)
        out[k] = np.where(take_b[..., None], b, a)
    return out


# -- internals -------------------------------------------------------------------------------------------------
def _resample(positions: np.ndarray, times: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions linearly interpolated onto t0 + k / fps, k = 0..K-1 (clamped at the last row), and which
    samples have no row within half a frame."""
    n = len(times)
    K = int(np.floor((times[-1] - times[0]) * fps + 0.5)) + 1
    grid = times[0] + np.arange(K) / fps
    if n == 1:
        return np.repeat(positions, K, axis=0), np.zeros(K, bool)
    i = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, n - 2)
    w = np.clip((grid - times[i]) / (times[i + 1] - times[i]), 0.0, 1.0)[:, None, None]
    out = positions[i] * (1 - w) + positions[i + 1] * w
    nearest = np.minimum(np.abs(grid - times[i]), np.abs(times[i + 1] - grid))
    return out, nearest > 0.5 / fps + 1e-9


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def _orthonormal_frame(direction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(K, 3, 3) with columns: ``direction``, ``reference`` made perpendicular to it, their cross product.

    Where the reference is (nearly) along the bone, the previous sample's is used (the first valid one before
    the first); where no sample has one, any perpendicular."""
    a = _unit(direction)
    b = reference - np.sum(reference * a, axis=-1, keepdims=True) * a
    ok = np.linalg.norm(b, axis=-1) > 1e-6 * np.maximum(np.linalg.norm(reference, axis=-1), 1e-12)
    if not ok.all():
        if ok.any():
            last = np.maximum.accumulate(np.where(ok, np.arange(len(ok)), -1))
            last = np.where(last < 0, int(np.argmax(ok)), last)
            b = b[last]
            b = b - np.sum(b * a, axis=-1, keepdims=True) * a  # re-orthogonalise to this sample's bone
        else:
            b = np.cross(a, np.where(np.abs(a[:, :1]) < 0.9, np.eye(3)[0], np.eye(3)[1]))
    b = _unit(b)
    return np.stack([a, b, np.cross(a, b)], axis=-1)


def _kabsch(rest: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(K, 3, 3) rotations R minimising sum_c |R rest_c - observed_kc|^2; rest (C, 3), observed (K, C, 3)."""
    M = np.einsum("kci,cj->kij", observed, rest)
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.zeros_like(M)
    D[:, 0, 0] = D[:, 1, 1] = 1.0
    D[:, 2, 2] = np.where(d == 0, 1.0, d)
    return U @ D @ Vt


@dataclass
class _World:
    rotations: np.ndarray  # (K, 17, 3, 3)
    rest_children: dict  # joint -> (C, 3) rest offsets of its children (pelvis, thorax)


def _canonical_frame(up: np.ndarray, left: np.ndarray) -> np.ndarray:
    """(K, 3, 3) columns left, up, forward: y along ``up``, x along ``left`` made perpendicular."""
    F = _orthonormal_frame(up, left)  # columns up, left', up x left' = -forward
    return np.stack([F[..., 1], F[..., 0], -F[..., 2]], axis=-1)


def _rest_offsets(target: np.ndarray, lengths: np.ndarray, rest_children: dict) -> np.ndarray:
    offsets = np.zeros((J, 3))
    for j in range(1, J):
        p = H36M_PARENTS[j]
        if p in rest_children:
            offsets[j] = rest_children[p][CHILDREN[p].index(j)]
        else:
            offsets[j] = lengths[j] * REST_BONE[p]
    return offsets


def _global_rotations(target: np.ndarray, lengths: np.ndarray) -> _World:
    K = len(target)
    G = np.empty((K, J, 3, 3))
    rest_children = {}
    hip_line = _unit(target[:, L_HIP] - target[:, R_HIP])
    shoulder_line = _unit(target[:, L_SHOULDER] - target[:, R_SHOULDER])
    for joint, up, left in ((PELVIS, target[:, SPINE] - target[:, PELVIS], hip_line),
                            (THORAX, target[:, NECK] - target[:, THORAX], shoulder_line)):
        children = list(CHILDREN[joint])
        # observed child offsets scaled to the constant bone lengths: only their directions are fitted
        observed = _unit(target[:, children] - target[:, joint, None]) * lengths[children, None]
        canonical = _canonical_frame(up, left)
        # rest offsets: the track's median shape in the joint's canonical frame, each at its bone's length
        in_frame = np.einsum("kij,kci->kcj", canonical, observed)
        rest = _unit(np.median(in_frame, axis=0)) * lengths[children, None]
        rest_children[joint] = rest
        G[:, joint] = _kabsch(rest, observed)
    G[:, SPINE] = _bone_rotation(SPINE, target[:, THORAX] - target[:, SPINE], hip_line + shoulder_line)
    G[:, NECK] = _bone_rotation(NECK, target[:, HEAD] - target[:, NECK], G[:, THORAX, :, 0])
    for upper, lower, end, torso, sign in ((R_HIP, R_KNEE, R_ANKLE, PELVIS, -1.0), (L_HIP, L_KNEE, L_ANKLE, PELVIS, -1.0),
                                           (L_SHOULDER, L_ELBOW, L_WRIST, THORAX, 1.0),
                                           (R_SHOULDER, R_ELBOW, R_WRIST, THORAX, 1.0)):
        u = target[:, lower] - target[:, upper]
        l = target[:, end] - target[:, lower]
        hinge = _limb_hinge(u, l, sign * G[:, torso, :, 2])
        G[:, upper] = _bone_rotation(upper, u, hinge)
        G[:, lower] = _bone_rotation(lower, l, hinge)
    for leaf in LEAVES:
        G[:, leaf] = G[:, H36M_PARENTS[leaf]]
    return _World(G, rest_children)


def _limb_hinge(upper: np.ndarray, lower: np.ndarray, bend_towards: np.ndarray) -> np.ndarray:
    """The hinge axis of a knee or elbow: the bending plane's normal (upper x lower, its size the sine of the
    bend) plus a torso axis that the limb normally bends towards (forward for elbows, backward for knees)
    crossed with the upper bone, which decides as the limb straightens."""
    plane = np.cross(_unit(upper), _unit(lower))
    torso = np.cross(_unit(upper), _unit(bend_towards))
    return plane + TORSO_WEIGHT * torso


def _bone_rotation(joint: int, direction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(K, 3, 3) world rotation turning the joint's rest bone and reference onto ``direction`` and ``reference``."""
    observed = _orthonormal_frame(direction, reference)
    rest = _orthonormal_frame(REST_BONE[joint][None], REST_REFERENCE[joint][None])[0]
    return observed @ rest.T
