"""Where the DeepMimic rig (``cmu_acrobatics/``) puts its thorax and face, against the CMU ASF skeleton on the
takes that both folders hold: the measurement behind the ``virtual_joints`` of
``src/wildpose/lift/train/mappings/deepmimic15.json`` (docs/MODEL.md, "Data and licence").

1. Finds the shared takes: an acrobatics clip (30 fps) whose knee and elbow angles equal a motion-prediction
   clip's (60 fps, every second frame) at some lag; the mean difference is 0.0 degrees for a shared take.
2. Fits, by least squares, the thorax point in the ``chest`` frame and the face model's origin in the ``head``
   frame so that, in the torso frame (mid-shoulders; left, up, forward; torso-length units), they land where
   the asf38 rig has its thorax and face points (H36M neck/nose and head top, COCO nose, eyes, ears).
3. With the shipped mapping, scores each shared take: the median joint distance after the best rotation of
   each frame's pelvis-centred body (and after a mirror, which must be far worse), and the thorax and face
   distances in the torso frame.

    python benchmarks/bench_rig_fit.py [--mocap ../shared/data/mocap]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from wildpose.lift.train.bvh import forward_kinematics, read_bvh
from wildpose.lift.train.rigs import FACE_OFFSETS, load_clip
from wildpose.lift.train.sources import load_mapping

ROOT = Path(__file__).resolve().parents[1]
FACE_KEYS = ("h36m_neck_nose", "h36m_head_top", "nose", "left_eye", "right_eye", "left_ear", "right_ear")
BODY = [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16]


def angles(h: np.ndarray) -> np.ndarray:
    """(F, 4) knee and elbow angles in degrees (right knee, left knee, left elbow, right elbow)."""
    out = []
    for a, b, c in ((1, 2, 3), (4, 5, 6), (11, 12, 13), (14, 15, 16)):
        u, v = h[:, a] - h[:, b], h[:, c] - h[:, b]
        cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.stack(out, -1)


def best_match(a: np.ndarray, others: dict[str, np.ndarray]) -> tuple[float, str, int]:
    """(mean angle difference, clip, lag) of the best alignment of ``a`` with any of ``others``."""
    best = (np.inf, "", 0)
    for name, b in others.items():
        for lag in range(-len(a) + 10, len(b) - 10):
            i0, j0 = max(0, -lag), max(0, lag)
            m = min(len(a) - i0, len(b) - j0)
            if m >= min(30, len(a)):
                e = float(np.mean(np.abs(a[i0:i0 + m] - b[j0:j0 + m])))
                if e < best[0]:
                    best = (e, name, lag)
    return best


def aligned(a, b, lag: int):
    """The two clips' overlapping frames (H36M and COCO of each) at 30 fps for a ``best_match`` lag."""
    i0, j0 = max(0, -lag), max(0, lag)
    ha, ca, hb, cb = a.h36m[i0:], a.coco[i0:], b.h36m[::2][j0:], b.coco[::2][j0:]
    n = min(len(ha), len(hb))
    return ha[:n], ca[:n], hb[:n], cb[:n], i0


def torso_frame(h: np.ndarray):
    """Mid-shoulder origin (F, 3), axes (F, 3, 3) with columns left, up, forward, torso length (F,)."""
    mid = 0.5 * (h[:, 11] + h[:, 14])
    up = mid - h[:, 0]
    length = np.linalg.norm(up, axis=-1)
    up = up / length[:, None]
    left = h[:, 11] - h[:, 14]
    left = left - np.sum(left * up, -1, keepdims=True) * up
    left /= np.linalg.norm(left, axis=-1, keepdims=True)
    return mid, np.stack([left, up, np.cross(left, up)], -1), length


def rotation_residual(a: np.ndarray, b: np.ndarray) -> float:
    u, _, vt = np.linalg.svd(b.T @ a)
    r = vt.T @ np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T
    return float(np.median(np.linalg.norm(a - b @ r.T, axis=-1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mocap", default=str(ROOT.parent / "shared" / "data" / "mocap"))
    args = ap.parse_args()
    mocap = Path(args.mocap)
    acro = mocap / "cmu_acrobatics"
    subset = {str(p.relative_to(mocap / "cmu_motion_prediction_subset")): load_clip(p)
              for p in sorted((mocap / "cmu_motion_prediction_subset").rglob("*.bvh"))}
    subset_angles = {k: angles(c.h36m[::2]) for k, c in subset.items()}
    pairs = []
    for p in sorted(acro.rglob("*.bvh")):
        if int(p.parent.name) in (8, 9, 10, 11, 13, 16, 49):  # the subjects the shared README names
            err, name, lag = best_match(angles(load_clip(p).h36m), subset_angles)
            print(f"{p.relative_to(acro)}: best subset match {name} (lag {lag}), mean angle difference {err:.1f} deg")
            if err < 0.5:
                pairs.append((p, name, lag))
    print(f"{len(pairs)} shared takes")

    mapping = load_mapping("deepmimic15")
    rows = {"thorax": ([], []), "face": ([], [])}
    for p, name, lag in pairs:
        ha, _, hb, cb, i0 = aligned(load_clip(p), subset[name], lag)
        n = len(ha)
        mid_a, axes_a, len_a = torso_frame(ha)
        mid_b, axes_b, len_b = torso_frame(hb)

        def wanted(x_b: np.ndarray) -> np.ndarray:  # the asf38 point carried into the DeepMimic torso frame
            local = np.einsum("fij,fi->fj", axes_b, x_b - mid_b) / len_b[:, None]
            return mid_a + np.einsum("fij,fj->fi", axes_a, local * len_a[:, None])

        bvh = read_bvh(p)
        pos, rot = forward_kinematics(bvh, return_rotations=True)
        pos, rot = pos[i0:i0 + n] * mapping.units_to_m, rot[i0:i0 + n]
        chest, head = bvh.index("chest"), bvh.index("head")
        rows["thorax"][0].append(rot[:, chest])
        rows["thorax"][1].append(wanted(hb[:, 8]) - pos[:, chest])
        axes = np.asarray(mapping.head_axes)
        targets = [hb[:, 9], hb[:, 10]] + [cb[:, k] for k in range(5)]
        for key, x_b in zip(FACE_KEYS, targets):
            rows["face"][0].append(rot[:, head])
            rows["face"][1].append(wanted(x_b) - pos[:, head]
                                   - np.einsum("fij,j->fi", rot[:, head], axes @ np.array(FACE_OFFSETS[key])))
    for what, (rots, rhs) in rows.items():
        r, y = np.concatenate(rots), np.concatenate(rhs)
        offset = np.mean(np.einsum("fji,fj->fi", r, y), 0)  # least squares of r @ offset = y (r orthonormal)
        res = np.linalg.norm(y - np.einsum("fij,j->fi", r, offset), axis=-1)
        parent = "chest" if what == "thorax" else "head"
        print(f"{what}: offset in the {parent} frame {np.round(offset / mapping.units_to_m, 2)} (file units), "
              f"median residual {100 * np.median(res):.1f} cm")
    print("shipped:", {k: v for k, v in mapping.virtual_joints.items()})

    for p, name, lag in pairs:
        ha, ca, hb, cb, _ = aligned(load_clip(p), subset[name], lag)
        n = len(ha)
        same = [rotation_residual(ha[f, BODY] - ha[f, 0], hb[f, BODY] - hb[f, 0]) for f in range(n)]
        flip = np.array([-1.0, 1.0, 1.0])
        mirrored = [rotation_residual(ha[f, BODY] - ha[f, 0], (hb[f, BODY] - hb[f, 0]) * flip) for f in range(n)]
        mid_a, axes_a, len_a = torso_frame(ha)
        mid_b, axes_b, len_b = torso_frame(hb)

        def local(x, mid, axes, length):
            return np.einsum("fij,fki->fkj", axes, x - mid[:, None]) / length[:, None, None]

        face_a = np.concatenate([ha[:, 9:11], ca[:, :5]], 1)
        face_b = np.concatenate([hb[:, 9:11], cb[:, :5]], 1)
        scale = np.median(len_a)
        d_thorax = np.linalg.norm(local(ha[:, [8]], mid_a, axes_a, len_a) - local(hb[:, [8]], mid_b, axes_b, len_b),
                                  axis=-1) * scale
        d_face = np.linalg.norm(local(face_a, mid_a, axes_a, len_a) - local(face_b, mid_b, axes_b, len_b),
                                axis=-1) * scale
        print(f"{p.relative_to(acro)} ~ {name}: body after rotation {100 * np.median(same):.1f} cm "
              f"(after a mirror {100 * np.median(mirrored):.1f}), thorax {100 * np.median(d_thorax):.1f} cm, "
              f"face {100 * np.median(d_face):.1f} cm")


if __name__ == "__main__":
    main()
