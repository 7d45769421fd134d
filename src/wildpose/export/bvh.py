"""BVH: one file per track, ``{stem}_track{id}.bvh``, plus ``{stem}_bvh.json`` saying when each starts.

The hierarchy is the 17 Human3.6M joints under ``pelvis`` (``skeleton_fit``: T-pose rest, constant bone lengths,
rotations solved from the positions); an End Site beyond each ankle (a foot forward), wrist and the head. Units
are centimetres, axes those of ``poses_world`` (y up, the floor at y = 0, the rest pose facing +z), the root's
position channels absolute (its OFFSET is 0, so readers that add the offset and readers that replace it agree),
rotations ``Zrotation Xrotation Yrotation`` in degrees (intrinsic: parent-from-joint = Rz Rx Ry).

Time: ``Frame Time`` is 1 / the video's frame rate; frame 0 is the track's first row and the clip runs to its last
(a variable frame rate, or holes in the track, are resampled / interpolated onto that grid). BVH has no place for a
start time or comments (Blender refuses a file whose first line is not ``HIERARCHY``), so the JSON sidecar records
each file's track id, start time (seconds from the video's start), first frame, frame count and the fit's error.

BVH is a text format of a few lines of structure and one line of numbers per frame: it is written here (the tests
read it back with the independent ``bvhio`` reader and with Blender's importer).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import FormatError
from ..skeleton import H36M_NAMES
from ..types import Result
from .skeleton_fit import CHILDREN, LEAVES, SkeletonFit, fit_result

CM_PER_M = 100.0
ROTATION_CHANNELS = "Zrotation Xrotation Yrotation"


def fits(result: Result) -> list[SkeletonFit]:
    """The skeleton fit of every track that has world poses."""
    if result.poses_world is None:
        raise FormatError("the result has no world poses (poses_world) to export as a skeleton")
    out = []
    for p in range(len(result.track_ids)):
        fit = fit_result(result, p)
        if fit is not None:
            out.append(fit)
    return out


def export(result: Result, out_dir: Path, stem: str) -> list[Path]:
    """Write ``{stem}_track{id}.bvh`` for every track and ``{stem}_bvh.json``; returns the files written."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    entries = []
    for fit in fits(result):
        path = out_dir / f"{stem}_track{fit.track_id}.bvh"
        with atomic_path(path) as tmp:
            tmp.write_text(bvh_text(fit), encoding="ascii")
        written.append(path)
        error = fit.fit_error() * 1000.0
        entries.append({"file": path.name, "track_id": fit.track_id, "start_time_s": round(fit.start_time, 6),
                        "first_frame": fit.first_frame, "frames": fit.num_samples,
                        "frame_time_s": 1.0 / fit.fps, "filled_frames": int(fit.filled.sum()),
                        "bone_lengths_cm": {H36M_NAMES[j]: round(float(fit.bone_lengths[j]) * CM_PER_M, 3)
                                            for j in range(1, len(H36M_NAMES))},
                        "fit_error_mm": {"mean": round(float(error.mean()), 2), "max": round(float(error.max()), 2)}})
    manifest = out_dir / f"{stem}_bvh.json"
    with atomic_path(manifest) as tmp:
        tmp.write_text(json.dumps({"format": "wildpose-bvh", "version": 1, "units": "cm", "up": "y",
                                   "fps": result.fps, "files": entries}, indent=1) + "\n")
    written.append(manifest)
    return written


def bvh_text(fit: SkeletonFit) -> str:
    """The whole BVH file of one fit."""
    lines = ["HIERARCHY"]

    def joint(j: int, depth: int) -> None:
        pad = "  " * depth
        offset = fit.offsets[j] * CM_PER_M
        lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {H36M_NAMES[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {_numbers(offset)}")
        if j == 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {ROTATION_CHANNELS}")
        else:
            lines.append(f"{pad}  CHANNELS 3 {ROTATION_CHANNELS}")
        for child in CHILDREN[j]:
            joint(child, depth + 1)
        if j in LEAVES:
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            lines.append(f"{pad}    OFFSET {_numbers(fit.end_sites[j] * CM_PER_M)}")
            lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")

    joint(0, 0)
    lines += ["MOTION", f"Frames: {fit.num_samples}", f"Frame Time: {1.0 / fit.fps:.8f}"]
    # one line per frame: root position (cm), then every joint's Z, X, Y degrees in hierarchy order
    order = _hierarchy_order()
    motion = np.concatenate([fit.root_positions * CM_PER_M,
                             fit.euler_zxy[:, order].reshape(fit.num_samples, -1)], axis=1)
    buffer = io.StringIO()
    np.savetxt(buffer, motion, fmt="%.6f", delimiter=" ")
    return "\n".join(lines) + "\n" + buffer.getvalue()


def _hierarchy_order() -> list[int]:
    """The joints in the order the hierarchy lists them (depth first), which is the channels' order."""
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for child in CHILDREN[j]:
            visit(child)

    visit(0)
    return order


def _numbers(values: np.ndarray) -> str:
    return " ".join(f"{v:.6f}" for v in np.round(values, 6) + 0.0)  # + 0.0: no "-0.000000"
