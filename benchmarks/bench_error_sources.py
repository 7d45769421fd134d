"""What the held-out error of a lifter is made of: how far it would fall if one part of it were fixed.

Each row replaces one part of the refined prediction by the ground truth and re-scores MPJPE (mm), on the
held-out clips of ``wildpose eval`` (same segments, cameras and 2D noise):

- "in-image position of every joint": x and y (camera axes) from the ground truth, depth kept;
- "depth of every joint": z from the ground truth, x and y kept;
- "depth of elbows, wrists, knees, ankles": the same for the eight limb joints only;
- "which way each limb points": per frame and limb (upper arm + forearm, thigh + shin), the best of the four
  combinations of mirroring each bone's depth about its parent joint (the two-fold ambiguity of a bone seen
  from one view). An upper bound for any fix of the lifter's depth signs;
- "every bone's length": the refinement run with each segment's true bone lengths (median over the segment)
  instead of the ones it estimates from the lifter's output.

Then, per limb bone, how often the prediction points it the wrong way (into the image instead of out, or
back), among the frames where it clearly points one way (its depth extent over 30% of its length).

A bound, not a method: it says which error a better lifter (or more varied training motion) would have to
remove. Score only models that did not train on the split (``wildpose eval`` warns when they did).

    python benchmarks/bench_error_sources.py --split val --model runs/NAME/best.safetensors
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from wildpose.lift.train import evaluate as ev
from wildpose.lift.train.data import DEFAULT_SPLIT, load_split
from wildpose.lift.train.noise import MOVENET_NOISE
from wildpose.lift.refine import LIMB_BONES, refine_poses
from wildpose.lift.weights import load_lifter
from wildpose.quality import bone_lengths
from wildpose.skeleton import H36M_NAMES

# (root of the limb, middle joint, end joint): the refinement's limb bones, two per limb
LIMBS = tuple((a, b, c) for (a, b), (_, c) in zip(LIMB_BONES[::2], LIMB_BONES[1::2]))
LIMB_JOINTS = [child for _, child in LIMB_BONES]
_BONE_ENDING_AT = {"knee": "thigh", "ankle": "shin", "elbow": "upper arm", "wrist": "forearm"}


def _bone_name(child: int) -> str:
    side, end = H36M_NAMES[child].split("_")
    return f"{side} {_BONE_ENDING_AT[end]}"


BONES = {_bone_name(child): (parent, child) for parent, child in LIMB_BONES}


def wrong_way(pred: np.ndarray, gt: np.ndarray, parent: int, child: int, clear: float = 0.3) -> float:
    """Of the frames where the bone clearly points into or out of the image (its depth extent over ``clear``
    of its length), the fraction where the prediction points it the other way."""
    gt_dz, pred_dz = gt[:, child, 2] - gt[:, parent, 2], pred[:, child, 2] - pred[:, parent, 2]
    clearly = np.abs(gt_dz) > clear * np.linalg.norm(gt[:, child] - gt[:, parent], axis=-1)
    return float((np.sign(gt_dz) != np.sign(pred_dz))[clearly].mean()) if clearly.any() else 0.0


def best_limb_signs(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` with each limb's two bones' depths (relative to their parent) mirrored where that brings the
    limb closer to ``gt``: per frame, the best of the four combinations. (T, 17, 3) each."""
    out = pred.copy()
    for root, middle, end in LIMBS:
        joints = [root, middle, end]
        best_err, best = None, None
        for flip_upper, flip_lower in itertools.product((False, True), repeat=2):
            q = pred[:, joints].copy()
            if flip_upper:  # the middle joint (and the end, which hangs from it) to the other side
                q[:, 1:, 2] -= 2.0 * (q[:, 1, 2] - q[:, 0, 2])[:, None]
            if flip_lower:
                q[:, 2, 2] -= 2.0 * (q[:, 2, 2] - q[:, 1, 2])
            err = np.linalg.norm(q - gt[:, joints], axis=-1).sum(axis=1)
            if best is None:
                best_err, best = err, q
            else:
                better = err < best_err
                best_err = np.where(better, err, best_err)
                best = np.where(better[:, None, None], q, best)
        out[:, joints] = best
    return out


def main(argv=None) -> int:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a lifter .safetensors (default: the shipped one)")
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("--mocap", default=str(root.parent / "shared" / "data" / "mocap"))
    ap.add_argument("--no-refine", action="store_true", help="the raw network's output")
    args = ap.parse_args(argv)

    model = load_lifter(args.model)
    clips = load_split(args.mocap, DEFAULT_SPLIT[args.split], None, root / "runs" / "cache")
    trained_on = set(model.config.get("provenance", {}).get("split", {}).get("train", []))
    if trained_on & set(DEFAULT_SPLIT[args.split]):
        print(f"NOT HELD OUT: the model trained on {sorted(trained_on & set(DEFAULT_SPLIT[args.split]))}")
    raw = ev.numpy_predictor(model)
    print(f"{args.model or 'shipped lifter'} ({'raw' if args.no_refine else 'refined'}), {args.split} split, "
          "MPJPE mm if this part were exact:")
    print(f"{'':42}{'ground truth 2D':>16}{'MoveNet-like':>14}")
    rows: dict[str, list[float]] = {}
    for noise in (False, MOVENET_NOISE):
        seqs = ev.make_sequences(clips, model.fps, noise=noise)
        raws = [raw(s["inputs"]) for s in seqs]
        if not args.no_refine:  # as `wildpose eval` and `run` do
            raws_refined = [refine_poses(p, s["inputs"], model.fps, causal=model.causal) for p, s in zip(raws, seqs)]
        pred = np.concatenate(raws if args.no_refine else raws_refined).astype(np.float64)
        pred -= pred[:, :1]
        gt = np.concatenate([s["targets"] for s in seqs]).astype(np.float64)
        variants = {"as predicted": pred}
        v = pred.copy()
        v[..., :2] = gt[..., :2]
        variants["in-image position of every joint"] = v
        v = pred.copy()
        v[..., 2] = gt[..., 2]
        variants["depth of every joint"] = v
        v = pred.copy()
        v[:, LIMB_JOINTS, 2] = gt[:, LIMB_JOINTS, 2]
        variants["depth of elbows, wrists, knees, ankles"] = v
        variants["which way each limb points (best case)"] = best_limb_signs(pred, gt)
        if not args.no_refine:  # the refinement given each segment's true bone lengths instead of its estimate
            variants["every bone's length (in the refinement)"] = np.concatenate([
                refine_poses(p, s["inputs"], model.fps, causal=model.causal,
                             lengths=np.median(bone_lengths(s["targets"]), axis=0))
                for p, s in zip(raws, seqs)]).astype(np.float64)
        for name, v in variants.items():
            rows.setdefault(name, []).append(1000 * float(np.linalg.norm(v - gt, axis=-1).mean()))
        for name, (parent, child) in BONES.items():
            rows.setdefault(f"% {name} pointing the wrong way", []).append(100 * wrong_way(pred, gt, parent, child))
    for name, (clean, noisy) in rows.items():
        print(f"{name:42}{clean:16.1f}{noisy:14.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
