"""Training data beyond the shared CMU folder: BVH folders of any skeleton (through a JSON joint-name mapping)
and the reference's 3D dataset ``data_3d_h36m.npz``.

Every source gives :class:`wildpose.lift.train.rigs.Clip` objects (H36M-17 and COCO-17 joints, metres, world
axes with **Y up**, the clip's real frame rate) tagged with a split group ("cmu:05", "h36m:S9", ...).
:class:`Sources` bundles several of them and stands in for a mocap folder wherever the training code calls
``wildpose.lift.train.data.load_split`` (training, the held-out pose evaluation, the trajectory evaluation).

Mapping files (``mappings/*.json``; the shared rigs ship as ``daz57``, ``cc141``, ``asf38``, ``deepmimic15`` and
``max31``)::

    {
      "name": "daz57",
      "units_to_m": 0.01,              # file units -> metres
      "up": "y",                       # the file's up axis: "y" (BVH's usual) or "z" (turned to Y up)
      "fps": null,                     # override the header's frame time (null: header / shared readme.txt)
      "detect": ["rShldr", "lShin"],   # joint names that identify the skeleton (optional)
      "h36m": {"pelvis": ["lThigh", "rThigh"], "right_hip": "rThigh", ...},  # H36M_NAMES -> joint or mean
      "coco": {"left_shoulder": "lShldr", ...},   # COCO body points (default: the H36M joint of that name)
      "head_joint": "head",            # face points ride rigidly on this joint
      "head_axes": "rest",             # "rest": the joint's rest frame is (left, up, forward); "eyes": derived
      "left_eye": null, "right_eye": null,        # joints for "eyes"
      "head_top_offset": [0, 0.15, 0.03],        # optional, metres in the head frame (left, up, forward)
      "coco_hip_widen": 0.1,
      "extend_zero_bones": {"thorax": ["lowerneck"]},  # zero-length children get the joint's own bone
      "virtual_joints": {"thorax_point": {"parent": "chest", "offset": [-2.4, 28.1, 0]}},  # optional
      "toes": ["lFoot_end", "rFoot_end"]           # optional, for facing checks
    }

``virtual_joints`` adds points rigidly attached to a joint (``offset`` in the file's units, in the parent's local
frame of the rest pose, like an End Site): for a skeleton whose joints sit elsewhere than the other rigs' (the
DeepMimic humanoid's neck joint is below the shoulder line, its head joint at the head centre). They may be named
wherever a joint may (``h36m``, ``coco``, ``head_joint``, ``toes``); a virtual ``head_joint`` turns with its
parent.

H36M ``neck`` (neck/nose) and ``head`` (head top), and the COCO face points (nose, eyes, ears), are placed
with the fixed head offset model of ``rigs.FACE_OFFSETS`` unless the mapping names a joint for them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from wildpose.errors import FormatError
from wildpose.formats import read_json
from wildpose.lift.train.bvh import BVH, forward_kinematics, read_bvh
from wildpose.lift.train.data import BASE_FPS, ClipSet, load_split
from wildpose.lift.train.rigs import COCO_HIP_WIDEN, FACE_OFFSETS, Clip, real_fps
from wildpose.skeleton import COCO_NAMES, H36M_NAMES

log = logging.getLogger(__name__)

MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"
_FACE_H36M = {"neck": "h36m_neck_nose", "head": "h36m_head_top"}
_FACE_COCO = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
_MAPPING_KEYS = {"name", "description", "units_to_m", "up", "fps", "detect", "h36m", "coco", "head_joint",
                 "head_axes", "left_eye", "right_eye", "head_top_offset", "coco_hip_widen", "extend_zero_bones",
                 "virtual_joints", "toes"}

# ------------------------------------------------------------------------------------------------ mappings


@dataclass(frozen=True)
class Mapping:
    """A BVH skeleton's joint-name mapping (see the module docstring for the JSON keys).

    ``h36m`` / ``coco``: layout name -> tuple of BVH joint names (their mean), or None for the head model.
    """

    name: str
    h36m: dict[str, tuple[str, ...] | None]
    coco: dict[str, tuple[str, ...] | None]
    head_joint: str
    head_axes: str | np.ndarray = "rest"
    eyes: tuple[str, str] | None = None
    units_to_m: float = 0.01
    up: str = "y"
    fps: float | None = None
    detect: tuple[str, ...] = ()
    face_offsets: dict[str, tuple[float, float, float]] = field(default_factory=lambda: dict(FACE_OFFSETS))
    coco_hip_widen: float = COCO_HIP_WIDEN
    extend_zero_bones: dict[str, tuple[str, ...]] = field(default_factory=dict)
    toes: tuple[str, str] | None = None
    virtual_joints: dict[str, tuple[str, tuple[float, float, float]]] = field(default_factory=dict)
    source: str = ""  # the JSON text, for cache keys

    def joints_needed(self) -> set[str]:
        """The file's joints this mapping reads (a virtual joint stands for its parent)."""
        names = {self.head_joint} | set(self.eyes or ()) | set(self.toes or ())
        for spec in list(self.h36m.values()) + list(self.coco.values()):
            names |= set(spec or ())
        return (names - set(self.virtual_joints)) | {parent for parent, _ in self.virtual_joints.values()}

    def matches(self, names: Iterable[str]) -> bool:
        s = set(names)
        return set(self.detect or self.joints_needed()) <= s


def _spec(value: Any, key: str, path: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise FormatError(f"mapping {key!r}: expected a joint name, a list of joint names or null, got {value!r}",
                      path)


def parse_mapping(data: dict, path: str = "") -> Mapping:
    """A :class:`Mapping` from the decoded JSON. Raises FormatError naming ``path`` for bad content."""
    if not isinstance(data, dict):
        raise FormatError("mapping: expected a JSON object", path)
    unknown = set(data) - _MAPPING_KEYS
    if unknown:
        raise FormatError(f"mapping: unknown keys {sorted(unknown)}", path)
    h_in, c_in = data.get("h36m"), data.get("coco", {})
    if not isinstance(h_in, dict) or not isinstance(c_in, dict):
        raise FormatError("mapping: 'h36m' (and 'coco', if given) must be objects of joint names", path)
    for layout, names, given in (("h36m", H36M_NAMES, h_in), ("coco", COCO_NAMES, c_in)):
        bad = set(given) - set(names)
        if bad:
            raise FormatError(f"mapping: {layout} has no joints {sorted(bad)} (known: {', '.join(names)})", path)
    h36m: dict[str, tuple[str, ...] | None] = {}
    for n in H36M_NAMES:
        if n in _FACE_H36M:
            h36m[n] = _spec(h_in.get(n), f"h36m.{n}", path)
        elif n not in h_in:
            raise FormatError(f"mapping: h36m.{n} is missing (every H36M-17 joint but neck/head must be named)",
                              path)
        else:
            h36m[n] = _spec(h_in[n], f"h36m.{n}", path)
    coco: dict[str, tuple[str, ...] | None] = {}
    for n in COCO_NAMES:
        if n in c_in:
            coco[n] = _spec(c_in[n], f"coco.{n}", path)
        else:  # body points default to the H36M joint of the same name; face points to the head model
            coco[n] = None if n in _FACE_COCO else h36m[n]
    head = data.get("head_joint")
    if not isinstance(head, str):
        raise FormatError("mapping: 'head_joint' (a joint name) is required", path)
    axes = data.get("head_axes", "rest")
    eyes = None
    if axes == "eyes":
        if not (isinstance(data.get("left_eye"), str) and isinstance(data.get("right_eye"), str)):
            raise FormatError("mapping: head_axes 'eyes' needs 'left_eye' and 'right_eye' joints", path)
        eyes = (data["left_eye"], data["right_eye"])
    elif axes != "rest":
        m = np.asarray(axes, np.float64)
        if m.shape != (3, 3) or abs(abs(np.linalg.det(m)) - 1) > 1e-3:
            raise FormatError("mapping: head_axes must be 'rest', 'eyes' or a 3x3 rotation matrix", path)
        axes = m
    offsets = dict(FACE_OFFSETS)
    if data.get("head_top_offset") is not None:
        off = data["head_top_offset"]
        if not (isinstance(off, list) and len(off) == 3):
            raise FormatError("mapping: head_top_offset must be [left, up, forward] in metres", path)
        offsets["h36m_head_top"] = tuple(float(v) for v in off)
    up = data.get("up", "y")
    if up not in ("y", "z"):
        raise FormatError(f"mapping: up must be 'y' or 'z', got {up!r}", path)
    toes = data.get("toes")
    virtual = data.get("virtual_joints", {})
    if not isinstance(virtual, dict) or not all(
            isinstance(v, dict) and set(v) == {"parent", "offset"} and isinstance(v["parent"], str)
            and isinstance(v["offset"], list) and len(v["offset"]) == 3 for v in virtual.values()):
        raise FormatError("mapping: virtual_joints must be {name: {\"parent\": joint, \"offset\": [x, y, z]}}",
                          path)
    try:
        return Mapping(
            name=str(data.get("name", Path(path).stem if path else "custom")), h36m=h36m, coco=coco,
            head_joint=head, head_axes=axes, eyes=eyes, units_to_m=float(data.get("units_to_m", 0.01)), up=up,
            fps=None if data.get("fps") is None else float(data["fps"]), detect=tuple(data.get("detect", ())),
            face_offsets=offsets, coco_hip_widen=float(data.get("coco_hip_widen", COCO_HIP_WIDEN)),
            extend_zero_bones={str(k): tuple(v) for k, v in data.get("extend_zero_bones", {}).items()},
            toes=None if toes is None else (str(toes[0]), str(toes[1])),
            virtual_joints={str(k): (v["parent"], tuple(float(x) for x in v["offset"])) for k, v in virtual.items()},
            source=json.dumps(data, sort_keys=True))
    except (TypeError, ValueError, IndexError) as exc:
        raise FormatError(f"mapping: {exc}", path) from None


def load_mapping(path_or_name: str | os.PathLike) -> Mapping:
    """Read a mapping JSON file, or a shipped one by name ('daz57', 'cc141', 'asf38', 'deepmimic15', 'max31')."""
    p = Path(path_or_name)
    if not p.is_file() and (MAPPINGS_DIR / f"{path_or_name}.json").is_file():
        p = MAPPINGS_DIR / f"{path_or_name}.json"
    return parse_mapping(read_json(p, "mapping"), str(p))


def shipped_mappings() -> dict[str, Mapping]:
    """The mappings shipped in ``mappings/``, by name."""
    return {p.stem: load_mapping(p) for p in sorted(MAPPINGS_DIR.glob("*.json"))}


# -------------------------------------------------------------------------------------- BVH with a mapping

_Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (x, y, z) -> (x, z, -y)


def _extend_zero_bones(bvh: BVH, spec: dict[str, tuple[str, ...]]) -> BVH:
    offsets = bvh.offsets.copy()
    for joint, children in spec.items():
        bone = offsets[bvh.index(joint)].copy()
        for child in children:
            k = bvh.index(child)
            if np.linalg.norm(offsets[k]) < 1e-6:
                offsets[k] = bone
    return dataclasses.replace(bvh, offsets=offsets)


def _add_virtual_joints(bvh: BVH, spec: dict[str, tuple[str, tuple[float, float, float]]]) -> BVH:
    """``bvh`` with each virtual joint appended as a channel-less child of its parent (as an End Site)."""
    clash = sorted(set(spec) & set(bvh.names))
    if clash:
        raise FormatError(f"virtual joint(s) {', '.join(clash)}: the file already has joint(s) of that name",
                          bvh.path)
    names = bvh.names + tuple(spec)
    parents = np.concatenate([bvh.parents, [bvh.index(parent) for parent, _ in spec.values()]])
    offsets = np.concatenate([bvh.offsets, np.array([off for _, off in spec.values()], np.float64)])
    channels = bvh.channels + ((),) * len(spec)
    return dataclasses.replace(bvh, names=names, parents=parents, offsets=offsets, channels=channels)


def _head_rotation(mapping: Mapping, bvh: BVH, pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """(F, 3, 3) world rotation whose columns are the head's left, up, forward axes."""
    h = bvh.index(mapping.head_joint)
    if isinstance(mapping.head_axes, np.ndarray):
        axes = mapping.head_axes
    elif mapping.head_axes == "rest":
        axes = np.eye(3)
    else:  # from the eyes: constant axes in the head joint's local frame (bones along local +Y)
        le, re_ = bvh.index(mapping.eyes[0]), bvh.index(mapping.eyes[1])
        r_t = np.swapaxes(rot[:, h], 1, 2)
        left = np.median(np.einsum("fij,fj->fi", r_t, pos[:, le] - pos[:, re_]), axis=0)
        mid = np.median(np.einsum("fij,fj->fi", r_t, 0.5 * (pos[:, le] + pos[:, re_]) - pos[:, h]), axis=0)
        left /= np.linalg.norm(left)
        up = np.array([0.0, 1.0, 0.0]) - left * left[1]
        up /= np.linalg.norm(up)
        fwd = np.cross(left, up)
        if fwd @ mid < 0:
            raise FormatError("head frame: eyes behind the head joint (left/right swapped?)", bvh.path)
        axes = np.stack([left, up, fwd], axis=1)
    return rot[:, h] @ axes


def map_bvh_with(bvh: BVH, mapping: Mapping, path: str = "", subject: str = "", name: str = "") -> Clip:
    """Forward kinematics + mapping of one BVH to H36M-17 and COCO-17 through ``mapping``.

    Returns a Clip: metres, Y up, the frame rate from the mapping's ``fps``, else the shared mocap's
    readme.txt (as ``rigs.real_fps``), else the header. Raises FormatError naming the file and the first
    joint the mapping names that the file lacks.
    """
    missing = sorted(mapping.joints_needed() - set(bvh.names))
    missing += sorted(set(mapping.extend_zero_bones) - set(bvh.names))
    if missing:
        raise FormatError(f"mapping {mapping.name!r}: the file has no joint(s) {', '.join(missing[:5])}",
                          path or bvh.path)
    if mapping.extend_zero_bones:
        bvh = _extend_zero_bones(bvh, mapping.extend_zero_bones)
    if mapping.virtual_joints:
        bvh = _add_virtual_joints(bvh, mapping.virtual_joints)
    pos, rot = forward_kinematics(bvh, return_rotations=True)
    pos = pos * mapping.units_to_m
    if mapping.up == "z":
        pos = pos @ _Z_UP_TO_Y_UP.T
        rot = _Z_UP_TO_Y_UP @ rot
    r_head = _head_rotation(mapping, bvh, pos, rot)
    head = pos[:, bvh.index(mapping.head_joint)]

    def point(spec: tuple[str, ...] | None, face_key: str) -> np.ndarray:
        if spec is None:
            return head + r_head @ np.array(mapping.face_offsets[face_key])
        return np.mean([pos[:, bvh.index(n)] for n in spec], axis=0)

    h36m = np.stack([point(mapping.h36m[n], _FACE_H36M.get(n, "")) for n in H36M_NAMES], axis=1)
    coco = np.stack([point(mapping.coco[n], n) for n in COCO_NAMES], axis=1)
    widen = mapping.coco_hip_widen * (coco[:, 11] - coco[:, 12])
    coco[:, 11] += widen
    coco[:, 12] -= widen
    if mapping.toes is not None:
        toes = np.stack([pos[:, bvh.index(mapping.toes[0])], pos[:, bvh.index(mapping.toes[1])]], axis=1)
    else:
        toes = h36m[:, [6, 3]]
    if mapping.fps is not None:
        fps = mapping.fps
    else:
        fps = real_fps(path, 1.0 / bvh.frame_time) if path else 1.0 / bvh.frame_time
        if abs(fps - round(fps)) < 1e-3 * fps:
            fps = float(round(fps))
    return Clip(h36m.astype(np.float32), coco.astype(np.float32), float(fps), toes.astype(np.float32),
                name or Path(path).stem, subject, mapping.name, str(path))


def load_clip_with(path: str | os.PathLike, mapping: Mapping, subject: str = "", name: str = "") -> Clip:
    """read_bvh + map_bvh_with."""
    return map_bvh_with(read_bvh(path), mapping, str(path), subject, name)


# --------------------------------------------------------------------------------- the reference's H36M npz

# Human3.6M's 32 mocap joints, as the reference's data_3d_h36m.npz stores them ("site" = an end point)
H36M32_NAMES = (
    "hips", "right_up_leg", "right_leg", "right_foot", "right_toe_base", "site_right_toe", "left_up_leg",
    "left_leg", "left_foot", "left_toe_base", "site_left_toe", "spine", "spine1", "neck", "head", "site_head",
    "left_shoulder_girdle", "left_arm", "left_fore_arm", "left_hand", "left_hand_thumb", "site_left_thumb",
    "left_wrist_end", "site_left_wrist", "right_shoulder_girdle", "right_arm", "right_fore_arm", "right_hand",
    "right_hand_thumb", "site_right_thumb", "right_wrist_end", "site_right_wrist",
)
# the standard 32 -> 17 selection, in H36M_NAMES order: pelvis, right hip/knee/ankle, left hip/knee/ankle,
# spine, thorax, neck/nose, head (top), left shoulder/elbow/wrist, right shoulder/elbow/wrist
H36M32_TO_17 = np.array([0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27])
H36M32_TOES = (9, 4)  # left, right toe base
H36M_FPS = 50.0
H36M_SPLIT = {"train": ["h36m:S1", "h36m:S5", "h36m:S6", "h36m:S7", "h36m:S8"], "val": [],
              "test": ["h36m:S9", "h36m:S11"]}


def h36m_group(subject: str) -> str:
    """Split group of a Human3.6M subject: 'S9' -> 'h36m:S9'."""
    return f"h36m:{subject}"


def head_rotation_from_joints(h36m: np.ndarray, offsets: dict = FACE_OFFSETS) -> np.ndarray:
    """(F, 3, 3) head frame (columns left, up, forward; Y-up world) from H36M-17 joints alone.

    The head model's neck/nose -> head-top direction fixes "up" (tilted back as in ``FACE_OFFSETS``); the
    shoulder line fixes "left" (the 32-joint data has no eyes, so head turns relative to the shoulders are
    lost: the face points follow the torso's yaw).
    """
    up_w = h36m[:, 10] - h36m[:, 9]
    up_w = up_w / np.maximum(np.linalg.norm(up_w, axis=-1, keepdims=True), 1e-9)
    left_w = h36m[:, 11] - h36m[:, 14]
    left_w = left_w - np.sum(left_w * up_w, -1, keepdims=True) * up_w
    left_w = left_w / np.maximum(np.linalg.norm(left_w, axis=-1, keepdims=True), 1e-9)
    world = np.stack([left_w, up_w, np.cross(left_w, up_w)], axis=-1)  # (F, 3, 3) columns
    d = np.subtract(offsets["h36m_head_top"], offsets["h36m_neck_nose"]).astype(np.float64)
    up_c = d / np.linalg.norm(d)
    left_c = np.array([1.0, 0.0, 0.0])  # the model's offsets are symmetric: d has no left component
    left_c = left_c - (left_c @ up_c) * up_c
    left_c /= np.linalg.norm(left_c)
    canon = np.stack([left_c, up_c, np.cross(left_c, up_c)], axis=-1)
    return world @ canon.T


def h36m_clip(joints32: np.ndarray, subject: str, action: str, path: str = "",
              z_up: bool = True, fps: float = H36M_FPS) -> Clip:
    """One Human3.6M sequence (T, 32, 3) metres -> Clip (H36M-17 + COCO-17, metres, Y up).

    ``z_up``: the file's world frame has Z up (the reference's data_3d_h36m.npz does); it is turned to our
    Y-up convention by (x, y, z) -> (x, z, -y), a proper rotation (handedness kept). COCO face points are
    placed rigidly in a head frame built from the joints (:func:`head_rotation_from_joints`); COCO hips are
    widened like the rigs'.
    """
    j = np.asarray(joints32, np.float64)
    if j.ndim != 3 or j.shape[1:] != (32, 3) or len(j) < 2:
        raise FormatError(f"{subject}/{action}: expected (T, 32, 3) positions, got {j.shape}", path)
    if not np.isfinite(j).all():
        raise FormatError(f"{subject}/{action}: non-finite positions", path)
    if z_up:
        j = j @ _Z_UP_TO_Y_UP.T
    h36m = j[:, H36M32_TO_17]
    r = head_rotation_from_joints(h36m)
    head = h36m[:, 9] - r @ np.array(FACE_OFFSETS["h36m_neck_nose"])
    face = [head + r @ np.array(FACE_OFFSETS[k]) for k in _FACE_COCO]
    lhip, rhip = h36m[:, 4], h36m[:, 1]
    widen = COCO_HIP_WIDEN * (lhip - rhip)
    coco = np.stack(face + [h36m[:, 11], h36m[:, 14], h36m[:, 12], h36m[:, 15], h36m[:, 13], h36m[:, 16],
                            lhip + widen, rhip - widen, h36m[:, 5], h36m[:, 2], h36m[:, 6], h36m[:, 3]], axis=1)
    toes = j[:, list(H36M32_TOES)]
    return Clip(h36m.astype(np.float32), coco.astype(np.float32), float(fps), toes.astype(np.float32),
                f"{subject}/{action}", h36m_group(subject), "h36m32", str(path))


def read_h36m_npz(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """The reference's ``data_3d_h36m.npz``: {subject: {action: (T, 32, 3) float32 metres, world, Z up}}.

    Read with the restricted unpickler (``wildpose.formats.safe_pickle``): a crafted file cannot run code.
    Raises FormatError for a missing/unreadable file, a refused pickle or an unexpected layout.
    """
    from wildpose.formats.safe_pickle import safe_load_npz

    z = safe_load_npz(path)
    if "positions_3d" not in z:
        raise FormatError(f"no 'positions_3d' (members: {', '.join(sorted(z)) or 'none'}): "
                          "not the reference's 3D dataset", path)
    obj = z["positions_3d"]
    data = obj.item() if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.ndim == 0 else obj
    if not isinstance(data, dict):
        raise FormatError("positions_3d is not a {subject: {action: array}} dict", path)
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in data.items():
        if not isinstance(actions, dict):
            raise FormatError(f"positions_3d[{subject!r}] is not an {{action: array}} dict", path)
        out[str(subject)] = {}
        for action, arr in actions.items():
            a = np.asarray(arr)
            if a.dtype.kind not in "fiu" or a.ndim != 3 or a.shape[1:] != (32, 3):
                raise FormatError(f"positions_3d[{subject!r}][{action!r}]: expected (T, 32, 3) numbers, "
                                  f"got {a.dtype} {a.shape}", path)
            out[str(subject)][str(action)] = a.astype(np.float32)
    return out


def load_h36m_clips(path: str | os.PathLike, subjects: Iterable[str] | None = None) -> list[Clip]:
    """Every sequence of a data_3d_h36m.npz (optionally only ``subjects``) as Clips, sorted."""
    data = read_h36m_npz(path)
    keep = None if subjects is None else set(subjects)
    return [h36m_clip(data[s][a], s, a, str(path)) for s in sorted(data) if keep is None or s in keep
            for a in sorted(data[s])]


# ----------------------------------------------------------------------------------------------- sources


def _to_base_fps(clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    from wildpose.lift.train.data import _to_base_fps as resample

    return resample(clip)


def concat_clipsets(sets: list[ClipSet]) -> ClipSet:
    """One ClipSet from several (clip order kept)."""
    sets = [s for s in sets if len(s.lengths)]
    lengths = np.concatenate([s.lengths for s in sets]) if sets else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths
    return ClipSet(np.concatenate([s.h36m for s in sets]) if sets else np.zeros((0, 17, 3), np.float32),
                   np.concatenate([s.coco for s in sets]) if sets else np.zeros((0, 17, 3), np.float32),
                   starts, lengths, [n for s in sets for n in s.names], [g for s in sets for g in s.subjects])


def _clipset(items: list[tuple[str, str, np.ndarray, np.ndarray]]) -> ClipSet:
    lengths = np.array([len(h) for _, _, h, _ in items], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(items) else lengths
    if not items:
        return ClipSet(np.zeros((0, 17, 3), np.float32), np.zeros((0, 17, 3), np.float32), starts, lengths, [], [])
    return ClipSet(np.concatenate([h for _, _, h, _ in items]).astype(np.float32),
                   np.concatenate([c for _, _, _, c in items]).astype(np.float32), starts, lengths,
                   [n for n, _, _, _ in items], [g for _, g, _, _ in items])


@dataclass
class Sources:
    """Training/evaluation clips from several places; passed where the training code takes a mocap folder.

    Attributes
    ----------
    mocap : BVH folders. Without ``mapping`` each file's rig is detected (the three shared rigs, as
        ``rigs.load_clip``); with it, every file goes through the mapping. Groups as ``data.clip_subject``
        ("<folder>:?" for folders it does not know: put each subject's files in its own folder).
    mapping : a Mapping (or a path / shipped name) for the BVH folders, a list of them (each file takes the
        first whose ``detect`` joints it has), or None.
    h36m : data_3d_h36m.npz files; groups "h36m:S1", ...
    max_clips : cap on the clips of one ``load_split`` call (for quick runs), or None.
    """

    mocap: list[str | os.PathLike] = field(default_factory=list)
    mapping: Mapping | str | os.PathLike | list | None = None
    h36m: list[str | os.PathLike] = field(default_factory=list)
    max_clips: int | None = None

    def __post_init__(self) -> None:
        given = self.mapping if isinstance(self.mapping, (list, tuple)) else (
            [] if self.mapping is None else [self.mapping])
        self.mappings = [m if isinstance(m, Mapping) else load_mapping(m) for m in given]
        self.mapping = self.mappings[0] if len(self.mappings) == 1 else (self.mappings or None)
        for d in self.mocap:
            if not Path(d).is_dir():
                raise FormatError("not a folder of BVH files", d)
        self._h36m_cache: dict[str, list[Clip]] = {}

    def __str__(self) -> str:
        parts = [str(p) for p in self.mocap] + [str(p) for p in self.h36m]
        return " + ".join(parts) + (f" (mapping {self.mapping_names()})" if self.mappings else "")

    def mapping_names(self) -> str:
        return ", ".join(m.name for m in self.mappings)

    def _mapping_for(self, bvh: BVH, path: Path) -> Mapping:
        if len(self.mappings) == 1:
            return self.mappings[0]
        for m in self.mappings:
            if m.matches(bvh.names):
                return m
        raise FormatError(f"no mapping ({self.mapping_names()}) fits this skeleton "
                          f"(joints {', '.join(bvh.names[:6])}, ...)", path)

    def _bvh_items(self) -> list[tuple[Path, Path, str]]:
        from wildpose.lift.train.data import list_clips

        return [(Path(root), p, g) for root in self.mocap for p, g in list_clips(root)]

    def groups(self) -> list[str]:
        """Every split group the sources hold, sorted."""
        g = {s for _, _, s in self._bvh_items()}
        for path in self.h36m:
            g |= {c.subject for c in self._h36m_clips(path)}
        return sorted(g)

    def _h36m_clips(self, path: str | os.PathLike) -> list[Clip]:
        key = str(path)
        if key not in self._h36m_cache:
            self._h36m_cache[key] = load_h36m_clips(path)
        return self._h36m_cache[key]

    def load_split(self, groups: list[str], max_clips: int | None = None,
                   cache_dir: str | os.PathLike | None = None) -> ClipSet:
        """The clips of ``groups`` from every source, resampled to data.BASE_FPS (the ClipSet of
        ``data.load_split``). ``max_clips`` (or the instance's cap) keeps the first clips."""
        caps = [c for c in (max_clips, self.max_clips) if c is not None]
        cap = min(caps) if caps else None
        sets: list[ClipSet] = []
        left = cap
        for root in self.mocap:
            if left is not None and left <= 0:
                break
            if not self.mappings:
                if not any(r == Path(root) and g in groups for r, _, g in self._bvh_items()):
                    continue  # this folder holds none of the groups (another one given may)
                s = load_split(root, groups, left, cache_dir)
            else:
                s = self._load_mapped(Path(root), groups, left, cache_dir)
            sets.append(s)
            left = None if left is None else left - len(s.lengths)
        for path in self.h36m:
            if left is not None and left <= 0:
                break
            clips = [c for c in self._h36m_clips(path) if c.subject in groups][:left]
            sets.append(_clipset([(f"{Path(path).name}:{c.name}", c.subject, *_to_base_fps(c)) for c in clips]))
            left = None if left is None else left - len(clips)
        out = concat_clipsets(sets)
        log.info("sources %s: %d clips, %d frames at %g fps from groups %s", self, len(out.lengths),
                 int(out.lengths.sum()), BASE_FPS, groups)
        return out

    def _load_mapped(self, root: Path, groups: list[str], max_clips: int | None,
                     cache_dir: str | os.PathLike | None) -> ClipSet:
        from wildpose.lift.train.data import cache_name, list_clips, loader_tag, write_cache

        items = [(p, g) for p, g in list_clips(root) if g in groups][:max_clips]
        tag = loader_tag("".join(m.source for m in self.mappings))
        out = []
        for p, g in items:
            cached = Path(cache_dir) / "mapped" / tag / cache_name(p, root) if cache_dir else None
            if cached is not None and cached.is_file():
                with np.load(cached) as z:
                    h, c = z["h36m"], z["coco"]
            else:
                bvh = read_bvh(p)
                h, c = _to_base_fps(map_bvh_with(bvh, self._mapping_for(bvh, p), str(p), g))
                if cached is not None:
                    write_cache(cached, h, c)
            out.append((str(p.relative_to(root)), g, h, c))
        return _clipset(out)


def resolve_split(split: dict[str, list[str]], sources: Sources) -> dict[str, list[str]]:
    """The config's split, plus the standard Human3.6M split (train S1 S5 S6 S7 S8, test S9 S11) when
    ``sources`` has an H36M file and the split names no 'h36m:' group."""
    split = {k: list(v) for k, v in split.items()}
    if sources.h36m and not any(g.startswith("h36m:") for v in split.values() for g in v):
        for k, v in H36M_SPLIT.items():
            split.setdefault(k, [])
            split[k] += v
    return split
