"""Held-out evaluation: test subjects' clips at the model's fps, each cut into segments seen by its own random
static camera (a seed different from training's), lifted whole (edge padding), scored with MPJPE/P-MPJPE
in mm against a mean-pose baseline.

``python -m wildpose.lift.train.evaluate [--model PATH] [--torch]`` prints the table used in docs/MODEL.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wildpose.lift.metrics import mpjpe, mpjve, n_mpjpe, p_mpjpe
from wildpose.lift.normalize import crop_normalize, crop_restore
from wildpose.lift.train.cameras import project, random_cameras, world_to_camera
from wildpose.lift.train.data import BASE_FPS, DEFAULT_SPLIT, ClipSet, load_split
from wildpose.skeleton import H36M_NAMES

log = logging.getLogger(__name__)

EVAL_SEED = 20240607
NOISE = {"sd": 0.015, "outlier_prob": 0.01, "outlier_sd": 0.15}  # fractions of the person's pixel height


def held_out_segments(clips: ClipSet, fps: float = 30.0, seed: int = EVAL_SEED, segment_s: float = 10.0):
    """Each clip at ``fps`` cut into ``segment_s`` segments, each seen by its own random static camera.

    Yields ``(rng, clip_name, joints_world (T, 17, 3), camera (a batch-of-one dict of cameras.random_cameras),
    joints_cam (1, T, 17, 3) absolute camera axes, pixels (1, T, 17, 2) projected COCO points)``.
    Deterministic for a seed; ``rng`` is the generator the cameras are drawn from, so noise a consumer draws
    from it between segments is reproducible too.
    """
    rng = np.random.default_rng(seed)
    step = int(round(BASE_FPS / fps))
    seg = int(segment_s * fps)
    for i in range(len(clips.lengths)):
        h, c = clips.clip(i)
        h, c = h[::step], c[::step]
        for s0 in range(0, len(h), seg):
            hh, cc = h[s0:s0 + seg], c[s0:s0 + seg]
            if len(hh) < 10:
                continue
            cam = random_cameras(rng, hh[None, :, 0])
            hc = world_to_camera(hh[None], cam["rot"], cam["centre"])
            px = project(world_to_camera(cc[None], cam["rot"], cam["centre"]), cam["focal"], cam["image_size"])
            yield rng, clips.names[i], hh, cam, hc, px


def make_sequences(clips: ClipSet, fps: float = 30.0, seed: int = EVAL_SEED, segment_s: float = 10.0,
                   noise: bool | dict = False, max_segments: int | None = None) -> list[dict]:
    """Test sequences: per segment, inputs (T, 17, 2) focal-normalised COCO, targets (T, 17, 3) camera axes,
    root-relative metres. Deterministic for a seed. ``noise``: True for NOISE, or a dict of augmentation
    keys for wildpose.lift.train.loop.add_noise_2d (e.g. noise.MOVENET_NOISE, the calibrated detector noise)."""
    out = []
    for rng, name, _, cam, hc, px in held_out_segments(clips, fps, seed, segment_s):
        hc, px = hc[0], px[0]
        if isinstance(noise, dict):
            from wildpose.lift.train.loop import add_noise_2d

            size = np.ptp(px[..., 1], axis=1).mean() + 1.0
            px = add_noise_2d(rng, px[None], np.array([size]), np.array([True]), noise)[0]
        elif noise:
            size = np.ptp(px[..., 1], axis=1).mean() + 1.0
            px = px + rng.normal(size=px.shape) * NOISE["sd"] * size
            outl = rng.random(px.shape[:2]) < NOISE["outlier_prob"]
            px = px + outl[..., None] * rng.normal(size=px.shape) * NOISE["outlier_sd"] * size
        uv = (px - cam["image_size"][0] / 2.0) / cam["focal"][0]
        out.append({"inputs": uv.astype(np.float32), "targets": (hc - hc[:, :1]).astype(np.float32),
                    "clip": name, "focal": float(cam["focal"][0]), "image_size": cam["image_size"][0].tolist()})
        if max_segments is not None and len(out) >= max_segments:
            break
    return out


def with_default_focal(seqs: list[dict]) -> list[dict]:
    """The sequences as a user who does not know the focal length lifts them: rays computed with the default
    field of view (wildpose.lift.normalize.DEFAULT_FOV_DEG across the longer side) instead of each camera's
    true focal length (random cameras span 25-90 degrees)."""
    from wildpose.lift.normalize import focal_from_fov

    out = []
    for s in seqs:
        guess = focal_from_fov(tuple(s["image_size"]))
        out.append({**s, "inputs": (s["inputs"] * (s["focal"] / guess)).astype(np.float32), "focal": guess})
    return out


def score(predict: Callable[[np.ndarray], np.ndarray], seqs: list[dict]) -> dict:
    """MPJPE, P-MPJPE, N-MPJPE (mm) and MPJVE (mm/frame) over all frames, plus the mean-pose baseline
    (the mean root-relative pose of the evaluated frames themselves, an oracle constant), the mean error
    across the image plane and along the depth axis (root-relative, camera axes) and each joint's MPJPE."""
    preds, gts = [], []
    ve = []
    for s in seqs:
        p = np.asarray(predict(s["inputs"]), np.float64)
        p = p - p[:, :1]
        preds.append(p)
        gts.append(s["targets"].astype(np.float64))
        ve.append((mpjve(p, gts[-1]), len(p)))
    pred, gt = np.concatenate(preds), np.concatenate(gts)
    mean_pose = np.broadcast_to(gt.mean(axis=0), gt.shape)
    diff = pred - gt  # camera axes: x, y across the image, z along the optical axis (depth)
    return {
        "frames": int(len(gt)), "segments": len(seqs),
        "mpjpe_mm": 1000 * mpjpe(pred, gt), "p_mpjpe_mm": 1000 * p_mpjpe(pred, gt),
        "n_mpjpe_mm": 1000 * n_mpjpe(pred, gt),
        "mpjve_mm": 1000 * float(np.average([v for v, _ in ve], weights=[n for _, n in ve])),
        "baseline_mpjpe_mm": 1000 * mpjpe(mean_pose, gt), "baseline_p_mpjpe_mm": 1000 * p_mpjpe(mean_pose, gt),
        # where the error lies: across the image (what the 2D pins down) or in depth (what it does not)
        "in_plane_mm": 1000 * float(np.linalg.norm(diff[..., :2], axis=-1).mean()),
        "depth_mm": 1000 * float(np.abs(diff[..., 2]).mean()),
        "per_joint_mm": {name: 1000 * float(e) for name, e in
                         zip(H36M_NAMES, np.linalg.norm(diff, axis=-1).mean(axis=0))},
    }


def from_rays(predict: Callable[[np.ndarray], np.ndarray], normalisation: str) -> Callable[[np.ndarray], np.ndarray]:
    """A predictor on focal-normalised rays (what make_sequences gives) for a model trained on
    ``normalisation`` ("focal": as is; "crop": normalised per frame, outputs turned back to camera axes)."""
    if normalisation == "focal":
        return predict
    if normalisation == "crop":
        def run(rays: np.ndarray) -> np.ndarray:
            uv, rot = crop_normalize(rays)
            return crop_restore(predict(uv), rot)
        return run
    raise ValueError(f"held-out sequences are camera rays: cannot evaluate a {normalisation!r} model")


def numpy_predictor(model, refine: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Predict with wildpose.lift.model.TemporalModel (flip averaging on), from rays; ``refine``: then
    refine against the rays as ``wildpose.lift.lift`` does (wildpose.lift.refine, at the model's fps)."""
    predict = from_rays(lambda x: model.predict(x, flip=True), model.input_normalisation)
    if not refine or model.input_normalisation not in ("focal", "crop"):
        return predict
    from wildpose.lift.refine import refine_poses

    return lambda rays: refine_poses(predict(rays), rays, model.fps, causal=model.causal)


def torch_predictor(model, normalisation: str = "focal") -> Callable[[np.ndarray], np.ndarray]:
    """Predict with the torch TemporalLifter: edge padding, dilated forward, no flip."""
    import torch

    model.eval()
    pad = (model.receptive_field - 1) // 2

    def run(x: np.ndarray) -> np.ndarray:
        xp = np.concatenate([np.repeat(x[:1], pad, 0), x, np.repeat(x[-1:], pad, 0)])
        with torch.no_grad():
            return model(torch.from_numpy(xp[None]))[0].numpy()

    return from_rays(run, normalisation)


def evaluate(predict: Callable[[np.ndarray], np.ndarray], mocap_dir: str | os.PathLike,
             groups: list[str] | None = None, fps: float = 30.0, max_clips: int | None = None,
             max_segments: int | None = None, cache_dir=None) -> dict:
    """Scores with ground-truth 2D ("gt2d"), with noisy 2D ("noisy2d": NOISE) and with the calibrated MoveNet
    noise ("movenet2d": noise.MOVENET_NOISE) on the test groups (or ``groups``)."""
    from wildpose.lift.train.noise import MOVENET_NOISE

    clips = load_split(mocap_dir, groups or DEFAULT_SPLIT["test"], max_clips, cache_dir)
    return {name: score(predict, make_sequences(clips, fps, noise=noisy, max_segments=max_segments))
            for name, noisy in (("gt2d", False), ("noisy2d", True), ("movenet2d", MOVENET_NOISE))}


def main(argv=None) -> int:
    root = Path(__file__).resolve().parents[4]
    ap = argparse.ArgumentParser(prog="python -m wildpose.lift.train.evaluate")
    ap.add_argument("--model", help="NAME.safetensors (default: the shipped lifter)")
    ap.add_argument("--mocap", default=str(root.parent / "shared" / "data" / "mocap"))
    ap.add_argument("--split", default="test", choices=["test", "val"])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from wildpose.lift.weights import load_lifter

    model = load_lifter(args.model)
    res = evaluate(numpy_predictor(model), args.mocap, DEFAULT_SPLIT[args.split], model.fps,
                   cache_dir=root / "runs" / "cache")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
