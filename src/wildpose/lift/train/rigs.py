"""Map the CMU mocap rigs to Human3.6M-17 joints (3D targets) and COCO-17 points (2D inputs).

Rigs (detected by joint names):
- ``daz57``: the cgspeed/DAZ conversion (hip, abdomen, chest, neck, head, rThigh, rShin, rFoot, rShldr, ...).
- ``cc141``: the 141-joint character rig (CC_Base_*), CMU subjects 1-7 retargeted.
- ``asf38``: the CMU ASF skeleton of the motion-prediction data (lfemur at the hip, ltibia at the knee, ...).
  Its thorax bone has zero length in the source data (lowerneck and the clavicles sit on the thorax joint),
  which shortens the torso by ~12 cm; we re-insert it (see ``_fix_asf38``). Its lowerneck then sits ~4 cm
  below the shoulders, so the H36M thorax is its upperneck (4-6 cm above the shoulders, as in the other rigs).
- ``deepmimic15``: the DeepMimic humanoid of ``cmu_acrobatics/`` (root, chest, neck, head, left_hip, ...), and
  ``max31``: the 31-joint cgspeed "max" rig of ``cmu_subject_131/`` (Hips, LeftHip, Chest2, lowerneck, ...).
  These two are defined only by their shipped joint-name mappings (``mappings/deepmimic15.json``,
  ``max31.json``, read by ``wildpose.lift.train.sources``); ``map_bvh`` hands them over.

All outputs are metres, world axes of the file (Y up), at the file's real frame rate.
Face points (COCO nose, eyes, ears) and the H36M neck/nose and head top are placed rigidly in the head joint's
frame with one fixed offset model (``FACE_OFFSETS``), expressed in a canonical head frame (left, up, forward).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildpose.errors import FormatError
from wildpose.lift.train.bvh import BVH, forward_kinematics, read_bvh

log = logging.getLogger(__name__)

CM_TO_M = 0.01

# joint names per rig: (pelvis-side joints) used for both layouts; L/R from the subject's point of view
_RIG_JOINTS = {
    "daz57": dict(lhip="lThigh", rhip="rThigh", lknee="lShin", rknee="rShin", lankle="lFoot", rankle="rFoot",
                  lsho="lShldr", rsho="rShldr", lelb="lForeArm", relb="rForeArm", lwri="lHand", rwri="rHand",
                  spine=("abdomen", "chest"), thorax="neck", head="head", ltoe="lFoot_end", rtoe="rFoot_end",
                  leye="leftEye", reye="rightEye"),
    "cc141": dict(lhip="CC_Base_L_Thigh", rhip="CC_Base_R_Thigh", lknee="CC_Base_L_Calf", rknee="CC_Base_R_Calf",
                  lankle="CC_Base_L_Foot", rankle="CC_Base_R_Foot", lsho="CC_Base_L_Upperarm",
                  rsho="CC_Base_R_Upperarm", lelb="CC_Base_L_Forearm", relb="CC_Base_R_Forearm",
                  lwri="CC_Base_L_Hand", rwri="CC_Base_R_Hand", spine=("CC_Base_Spine02",),
                  thorax="CC_Base_NeckTwist01", head="CC_Base_Head", ltoe="CC_Base_L_ToeBase",
                  rtoe="CC_Base_R_ToeBase", leye="CC_Base_L_Eye", reye="CC_Base_R_Eye"),
    "asf38": dict(lhip="lfemur", rhip="rfemur", lknee="ltibia", rknee="rtibia", lankle="lfoot", rankle="rfoot",
                  lsho="lhumerus", rsho="rhumerus", lelb="lradius", relb="rradius", lwri="lwrist", rwri="rwrist",
                  spine=("upperback", "thorax"), thorax="upperneck", head="head", ltoe="ltoes", rtoe="rtoes",
                  leye=None, reye=None),
}

# offsets from the head joint in metres, canonical head frame (x = subject's left, y = up, z = forward)
FACE_OFFSETS = {
    "nose": (0.0, 0.05, 0.10),
    "left_eye": (0.032, 0.085, 0.085),
    "right_eye": (-0.032, 0.085, 0.085),
    "left_ear": (0.075, 0.06, 0.0),
    "right_ear": (-0.075, 0.06, 0.0),
    "h36m_neck_nose": (0.0, 0.035, 0.07),
    "h36m_head_top": (0.0, 0.15, 0.03),
}
# COCO hips are annotated on the body's outline, wider than the joint centres mocap gives
COCO_HIP_WIDEN = 0.10


@dataclass(frozen=True)
class Clip:
    """One mocap clip mapped to our layouts.

    h36m : (F, 17, 3) metres, world (Y up); coco : (F, 17, 3) metres; fps : real capture rate;
    toes : (F, 2, 3) left/right toe points (for facing checks); name, subject, rig, path.
    """

    h36m: np.ndarray
    coco: np.ndarray
    fps: float
    toes: np.ndarray
    name: str
    subject: str
    rig: str
    path: str


# rigs defined by their shipped JSON mapping only (wildpose.lift.train.sources; its "detect" joints identify it)
MAPPED_RIGS = ("deepmimic15", "max31")


def detect_rig(names: tuple[str, ...] | list[str], path: str = "") -> str:
    """Rig id from the joint names: 'daz57', 'cc141', 'asf38', 'deepmimic15' or 'max31'. Raises FormatError
    for unknown rigs."""
    s = set(names)
    if {"CC_Base_Head", "CC_Base_L_Thigh"} <= s:
        return "cc141"
    if {"rShldr", "lShin", "abdomen"} <= s:
        return "daz57"
    if {"lhumerus", "ltibia", "lowerneck"} <= s:
        return "asf38"
    from wildpose.lift.train.sources import load_mapping

    for rig in MAPPED_RIGS:
        if load_mapping(rig).matches(s):
            return rig
    raise FormatError("unknown skeleton (none of the daz57, cc141, asf38, deepmimic15, max31 joint sets)", path)


def _fix_asf38(bvh: BVH) -> BVH:
    """Re-insert the ASF thorax bone: its children (lowerneck, clavicles) get the thorax's length upwards."""
    offsets = bvh.offsets.copy()
    thorax = bvh.index("thorax")
    bone = offsets[thorax].copy()  # the upperback bone; the thorax bone has about the same length and direction
    for child in ("lowerneck", "lclavicle", "rclavicle"):
        k = bvh.index(child)
        if np.linalg.norm(offsets[k]) < 1e-6:
            offsets[k] = bone
    return dataclasses.replace(bvh, offsets=offsets)


def real_fps(path: str | Path, header_fps: float) -> float:
    """The clip's real capture rate. cmu_dance_martial/readme.txt lists per-folder rates
    ("salsa framerate 60"): its salsa headers say 120 but the takes move at 60 fps speeds."""
    p = Path(path)
    readme = p.parent.parent / "readme.txt"
    if readme.is_file():
        for line in readme.read_text(errors="replace").splitlines():
            m = re.match(r"\s*(\w+)\s+framerate\s+([\d.]+)", line)
            if m and m.group(1) == p.parent.name:
                return float(m.group(2))
    return header_fps


def _head_frame_axes(bvh: BVH, rig: str, pos: np.ndarray, rot: np.ndarray, j: dict) -> np.ndarray:
    """Constant (3, 3) matrix whose columns are the canonical head axes (left, up, forward) in the head
    joint's local coordinates: identity for rigs with identity rest orientation, derived from the eyes
    otherwise (cc141's bones have their own local axes)."""
    if rig != "cc141":  # rest pose has identity joint frames: x = left, y = up, z = forward
        return np.eye(3)
    h = bvh.index(j["head"])
    le, re_ = bvh.index(j["leye"]), bvh.index(j["reye"])
    r_t = np.swapaxes(rot[:, h], 1, 2)
    left = np.median(np.einsum("fij,fj->fi", r_t, pos[:, le] - pos[:, re_]), axis=0)
    mid = np.median(np.einsum("fij,fj->fi", r_t, 0.5 * (pos[:, le] + pos[:, re_]) - pos[:, h]), axis=0)
    left /= np.linalg.norm(left)
    up = np.array([0.0, 1.0, 0.0])  # cc141 bones point along their local +Y
    up -= left * (up @ left)
    up /= np.linalg.norm(up)
    fwd = np.cross(left, up)
    if fwd @ mid < 0:  # the eyes must be in front of the head joint
        raise FormatError("head frame: eyes behind the head joint (left/right swapped?)", bvh.path)
    return np.stack([left, up, fwd], axis=1)


def map_bvh(bvh: BVH, path: str = "", subject: str = "", name: str = "") -> Clip:
    """Forward kinematics + mapping of one BVH to H36M-17 and COCO-17, metres, world axes, real fps."""
    rig = detect_rig(bvh.names, path)
    if rig in MAPPED_RIGS:
        from wildpose.lift.train.sources import load_mapping, map_bvh_with

        return map_bvh_with(bvh, load_mapping(rig), path, subject, name)
    if rig == "asf38":
        bvh = _fix_asf38(bvh)
    j = _RIG_JOINTS[rig]
    pos, rot = forward_kinematics(bvh, return_rotations=True)
    pos = pos * CM_TO_M
    g = lambda n: pos[:, bvh.index(n)]  # noqa: E731
    head_axes = _head_frame_axes(bvh, rig, pos, rot, j)
    r_head = rot[:, bvh.index(j["head"])] @ head_axes  # (F, 3, 3) columns = left, up, forward in world
    head = g(j["head"])

    def face(key: str) -> np.ndarray:
        return head + r_head @ np.array(FACE_OFFSETS[key])

    lhip, rhip = g(j["lhip"]), g(j["rhip"])
    pelvis = 0.5 * (lhip + rhip)
    thorax = g(j["thorax"])
    spine = np.mean([g(n) for n in j["spine"]], axis=0)
    h36m = np.stack([
        pelvis, rhip, g(j["rknee"]), g(j["rankle"]), lhip, g(j["lknee"]), g(j["lankle"]),
        spine, thorax, face("h36m_neck_nose"), face("h36m_head_top"),
        g(j["lsho"]), g(j["lelb"]), g(j["lwri"]), g(j["rsho"]), g(j["relb"]), g(j["rwri"]),
    ], axis=1)
    widen = COCO_HIP_WIDEN * (lhip - rhip)
    coco = np.stack([
        face("nose"), face("left_eye"), face("right_eye"), face("left_ear"), face("right_ear"),
        g(j["lsho"]), g(j["rsho"]), g(j["lelb"]), g(j["relb"]), g(j["lwri"]), g(j["rwri"]),
        lhip + widen, rhip - widen, g(j["lknee"]), g(j["rknee"]), g(j["lankle"]), g(j["rankle"]),
    ], axis=1)
    toes = np.stack([g(j["ltoe"]), g(j["rtoe"])], axis=1)
    fps = real_fps(path, 1.0 / bvh.frame_time) if path else 1.0 / bvh.frame_time
    if abs(fps - round(fps)) < 1e-3 * fps:  # headers write 0.016667 for 60 fps
        fps = float(round(fps))
    return Clip(h36m.astype(np.float32), coco.astype(np.float32), float(fps), toes.astype(np.float32),
                name or Path(path).stem, subject, rig, str(path))


def load_clip(path: str | Path, subject: str = "", name: str = "") -> Clip:
    """read_bvh + map_bvh."""
    return map_bvh(read_bvh(path), str(path), subject, name)


def facing_check(clip: Clip) -> float:
    """Fraction of frames where the toes point to the subject's front, with front = left x up
    (left = left hip - right hip, up = +Y). Close to 1 when left/right are correct, close to 0 if swapped."""
    left = clip.h36m[:, 4] - clip.h36m[:, 1]
    fwd = np.cross(left, np.array([0.0, 1.0, 0.0]))
    toe_dir = clip.toes - clip.h36m[:, [6, 3]]
    return float(np.mean(np.einsum("fi,fki->fk", fwd, toe_dir) > 0))


def bone_lengths(h36m: np.ndarray) -> np.ndarray:
    """(F, 16) lengths of the H36M bones (child order 1..16)."""
    from wildpose.skeleton import H36M_PARENTS

    return np.linalg.norm(h36m[:, 1:] - h36m[:, H36M_PARENTS[1:]], axis=-1)


def height(clip: Clip) -> float:
    """Standing-height estimate (m): median over frames of head top above the lower ankle, plus 0.08 m
    (ankle joint to sole)."""
    top = clip.h36m[:, 10, 1] - np.minimum(clip.h36m[:, 3, 1], clip.h36m[:, 6, 1])
    return float(np.median(top) + 0.08)
