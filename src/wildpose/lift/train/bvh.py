"""BVH motion files: parse the hierarchy and motion, forward kinematics over all frames at once (numpy).

Hand-written rather than taken from PyPI: the BVH readers there (bvh, bvhio, pymo) either loop over frames in
Python or carry heavy dependencies; training needs global joint positions of ~100k frames in a second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildpose.errors import FormatError

_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass(frozen=True)
class BVH:
    """One BVH file.

    Attributes
    ----------
    names : joint names, end sites named ``<parent>_end`` (J,)
    parents : parent index of each joint, -1 for the root (J,)
    offsets : joint offsets from the parent in the file's units (J, 3)
    channels : per joint, the channel names in file order (e.g. ``("Zrotation", "Xrotation", "Yrotation")``)
    motion : (F, C) channel values, degrees for rotations
    frame_time : seconds per frame as written in the header
    path : the file read, for messages
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    motion: np.ndarray
    frame_time: float
    path: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.motion.shape[0])

    def index(self, name: str) -> int:
        return self.names.index(name)


def parse_bvh(text: str, path: str = "") -> BVH:
    """Parse BVH text. Raises FormatError naming ``path`` when the text is not a valid BVH."""
    head, sep, motion_text = text.partition("MOTION")
    if not sep:
        raise FormatError("no MOTION section: not a BVH file", path)
    tokens = head.split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    stack: list[int] = []
    pending: int | None = None
    i = 0
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                names.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                offsets.append([0.0, 0.0, 0.0])
                channels.append(())
                pending = len(names) - 1
                i += 2
            elif tok == "End":
                parent = stack[-1]
                names.append(f"{names[parent]}_end")
                parents.append(parent)
                offsets.append([0.0, 0.0, 0.0])
                channels.append(())
                pending = len(names) - 1
                i += 2
            elif tok == "{":
                if pending is None:
                    raise FormatError("unexpected '{' in HIERARCHY", path)
                stack.append(pending)
                pending = None
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                offsets[stack[-1]] = [float(v) for v in tokens[i + 1:i + 4]]
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                channels[stack[-1]] = tuple(tokens[i + 2:i + 2 + n])
                i += 2 + n
            else:
                i += 1  # HIERARCHY keyword
        lines = motion_text.strip().split("\n", 2)
        n_frames = int(lines[0].split(":")[1])
        frame_time = float(lines[1].split(":")[1])
        values = np.array(lines[2].split(), dtype=np.float64) if len(lines) > 2 else np.zeros(0)
    except (IndexError, ValueError) as exc:
        raise FormatError(f"malformed BVH: {exc}", path) from exc
    n_ch = sum(len(c) for c in channels)
    if n_ch == 0 or values.size < n_frames * n_ch:
        raise FormatError(f"motion has {values.size} values, expected {n_frames} x {n_ch}", path)
    motion = values[: n_frames * n_ch].reshape(n_frames, n_ch)
    return BVH(tuple(names), np.array(parents), np.array(offsets, dtype=np.float64), tuple(channels),
               motion, frame_time, path)


def read_bvh(path: str | os.PathLike) -> BVH:
    """Read a BVH file (see parse_bvh)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise FormatError(f"cannot read: {exc}", p) from exc
    return parse_bvh(text, str(p))


def axis_rotations(axis: int, degrees: np.ndarray) -> np.ndarray:
    """Rotation matrices (F, 3, 3) about one axis (0=X, 1=Y, 2=Z) for angles in degrees (F,)."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    r = np.zeros(a.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r[..., axis, axis] = 1.0
    r[..., i, i] = c
    r[..., j, j] = c
    r[..., i, j] = -s
    r[..., j, i] = s
    return r


def local_transforms(bvh: BVH) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint local rotations (F, J, 3, 3) and translations (F, J, 3) from the channels.

    Rotations compose in channel order (``Zrotation Xrotation Yrotation`` -> Rz @ Rx @ Ry, column vectors),
    position channels add to the joint's offset.
    """
    f, j = bvh.n_frames, len(bvh.names)
    rot = np.broadcast_to(np.eye(3), (f, j, 3, 3)).copy()
    trans = np.broadcast_to(bvh.offsets, (f, j, 3)).copy()
    col = 0
    for k, chans in enumerate(bvh.channels):
        for ch in chans:
            axis = _AXES.get(ch[0].upper())
            if axis is None:
                raise FormatError(f"unknown channel {ch!r} on joint {bvh.names[k]}", bvh.path)
            if ch[1:].lower() == "position":
                trans[:, k, axis] += bvh.motion[:, col]
            elif ch[1:].lower() == "rotation":
                rot[:, k] = rot[:, k] @ axis_rotations(axis, bvh.motion[:, col])
            else:
                raise FormatError(f"unknown channel {ch!r} on joint {bvh.names[k]}", bvh.path)
            col += 1
    return rot, trans


def forward_kinematics(bvh: BVH, return_rotations: bool = False):
    """Global joint positions (F, J, 3) in the file's units (and global rotations (F, J, 3, 3) if asked).

    Vectorised over frames; the only Python loop is over joints (parents come before children in BVH order).
    """
    rot, trans = local_transforms(bvh)
    g_rot = np.empty_like(rot)
    g_pos = np.empty_like(trans)
    for k, p in enumerate(bvh.parents):
        if p < 0:
            g_rot[:, k] = rot[:, k]
            g_pos[:, k] = trans[:, k]
        else:
            g_rot[:, k] = g_rot[:, p] @ rot[:, k]
            g_pos[:, k] = g_pos[:, p] + np.einsum("fij,fj->fi", g_rot[:, p], trans[:, k])
    return (g_pos, g_rot) if return_rotations else g_pos
