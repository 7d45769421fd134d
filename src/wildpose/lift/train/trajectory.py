"""The trajectory model: a TemporalLifter with one output joint, the root (pelvis) position in camera space.

The pose lifter predicts root-relative joints; where a person *is* comes from this second network (Pavllo et
al. 2019, section 3.3: same architecture, the root's absolute camera-space position as output, the position
error weighted by the inverse ground-truth depth, so that far people, whose depth is poorly determined by the
image, do not dominate). Depth is only observable through the person's size in the image and the focal length,
so inputs are focal-normalised with the true focal length for most windows (the network can then learn
depth ~ body size / normalised image size); on the rest a wrong focal (the default field of view, or the true
one off by a random factor) is used, with the target depth scaled by ``f_used / f_true``: the depth that the
same image would have under the focal length the pipeline assumed, which is what inference with an unknown
lens can at best answer.

``python -m wildpose.lift.train.trajectory --config configs/trajectory.json [--ship]`` trains (logs to
runs/<name>/log.csv) and ``--evaluate [--model PATH]`` prints the held-out table of docs/MODEL.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from wildpose.lift.train.cameras import project, random_cameras, world_to_camera
from wildpose.lift.train.data import DEFAULT_SPLIT, ClipSet, load_split
from wildpose.lift.train.evaluate import NOISE, held_out_segments  # the pose evaluation's 2D noise
from wildpose.lift.train.loop import (ACKNOWLEDGEMENT, DEFAULT_AUG, focal_used, sample_windows, scale_bones,
                                     start_run)
from wildpose.skeleton import COCO_FLIP

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[4]
EVAL_SEED = 20240611  # held-out cameras, distinct from training's seeds and from the pose evaluation's


def _noise_2d(rng: np.random.Generator, px: np.ndarray, sd_frac: np.ndarray, outlier_prob: np.ndarray,
              outlier_sd: float) -> np.ndarray:
    """px (n, T, 17, 2) + Gaussian noise of sd ``sd_frac`` (n,) x the person's pixel height, and outliers."""
    n = px.shape[0]
    size_px = np.ptp(px[..., 1], axis=2).mean(axis=1) + 1.0
    px = px + rng.normal(size=px.shape) * (sd_frac * size_px)[:, None, None, None]
    out = rng.random(px.shape[:3]) < outlier_prob.reshape(n, 1, 1)
    return px + out[..., None] * rng.normal(size=px.shape) * (outlier_sd * size_px)[:, None, None, None]


def make_trajectory_batch(rng: np.random.Generator, clips: ClipSet, n: int, frames: int, fps: float = 30.0,
                          aug: dict | None = None, cam_cfg: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A batch of training windows for the trajectory model.

    The same generation as ``loop.make_batch`` (time warp, bone scaling, a random static camera per window,
    2D noise, mirroring), with the centre frame's root position as the target.

    Returns
    -------
    inputs : (n, frames, 17, 2) float32
        Focal-normalised COCO 2D keypoints.
    targets : (n, 1, 1, 3) float32
        Root position of the centre frame, camera axes (x right, y down, z forward), metres; on wrong-focal
        windows the depth the image would have under the focal length used (see the module docstring).
    """
    aug = {**DEFAULT_AUG, **(aug or {})}
    h, c = sample_windows(rng, clips, n, frames, fps, aug["time_warp"])
    h, c = scale_bones(rng, h, c, aug["global_scale"], aug["bone_scale_sd"])
    cams = random_cameras(rng, h[:, :, 0], cam_cfg)
    root = world_to_camera(h[:, frames // 2:frames // 2 + 1, :1], cams["rot"], cams["centre"])  # (n, 1, 1, 3)
    px = project(world_to_camera(c, cams["rot"], cams["centre"]), cams["focal"], cams["image_size"])
    noisy = rng.random(n) < aug["noise_fraction"]
    sd = rng.uniform(*aug["noise_sd"], n) * noisy
    px = _noise_2d(rng, px, sd, aug["outlier_prob"] * noisy, aug["outlier_sd"])
    f = cams["focal"]
    f_used = focal_used(rng, cams, aug["wrong_focal_fraction"])
    uv = (px - (cams["image_size"] / 2.0)[:, None, None, :]) / f_used[:, None, None, None]
    target = root.copy()
    # under a focal f' the image of a person at depth z looks like one at depth z f' / f: x and y follow
    target[..., 2] *= (f_used / f)[:, None, None]
    flip = rng.random(n) < aug["mirror"]
    if flip.any():
        m = uv[flip][:, :, COCO_FLIP]
        m[..., 0] *= -1.0
        uv[flip] = m
        target[flip, ..., 0] *= -1.0
    return uv.astype(np.float32), target.astype(np.float32)


def weighted_loss(pred, target):
    """The paper's trajectory loss: Euclidean root error divided by the true depth (torch tensors)."""
    return ((pred - target).norm(dim=-1) / target[..., 2].clamp_min(0.1)).mean()


def trajectory_config(cfg: dict, extra_provenance: dict | None = None) -> dict:
    """The shipped JSON config (docs/ARCHITECTURE.md, "The lifter's files") of a trajectory model."""
    return {
        "filter_widths": list(cfg["filter_widths"]), "channels": int(cfg["channels"]), "causal": False,
        "in_joints": 17, "in_layout": "coco", "out_joints": 1, "out_layout": "root",
        "input_normalisation": "focal", "fps": float(cfg.get("fps", 30.0)), "bn_eps": 1e-5,
        "provenance": {
            "output": "root (pelvis) position, camera axes (x right, y down, z forward), metres",
            "data": "CMU Graphics Lab Motion Capture Database (BVH conversions in shared/data/mocap), "
                    "split by subject: " + json.dumps(cfg.get("split", DEFAULT_SPLIT)),
            "licence": "CMU mocap: free for all uses. " + ACKNOWLEDGEMENT,
            "command": "python -m wildpose.lift.train.trajectory --config configs/trajectory.json --ship",
            "model_card": "docs/MODEL.md (Trajectory and world alignment)",
            "trained_by": "wildpose (own weights, trajectory model after Pavllo et al. 2019)",
            "date": time.strftime("%Y-%m-%d"),
            **(extra_provenance or {}),
        },
    }


def train(cfg: dict, mocap_dir: str | os.PathLike, run_dir: str | os.PathLike,
          ship_to: str | os.PathLike | None = None) -> dict:
    """Train the trajectory model (see configs/trajectory.json). Returns a summary dict.

    The learning rate and batch-norm momentum decay exponentially over ``steps`` or ``max_seconds``,
    whichever ends first, so a time budget gets a complete schedule. Logs ``step, seconds, lr,
    train_loss, val_loss, val_root_mm, val_depth_pct`` to run_dir/log.csv; the best-on-validation
    weights go to run_dir/best.* and, with ``ship_to``, there at the end.
    """
    import torch

    from wildpose.lift.train.model import TemporalLifter
    from wildpose.lift.weights import save_lifter

    rng, run_dir, train_set, val_set = start_run(cfg, mocap_dir, run_dir, default_threads=1)
    model = TemporalLifter(17, 1, cfg["filter_widths"], cfg["channels"], cfg.get("dropout", 0.1))
    with torch.no_grad():  # start at a typical distance, not at the camera
        model.shrink.bias.copy_(torch.tensor([0.0, 0.0, float(cfg.get("init_depth", 5.0))]))
    field = model.receptive_field
    fps = float(cfg.get("fps", 30.0))
    aug, cam_cfg = cfg.get("augment", {}), cfg.get("camera", {})
    val_rng = np.random.default_rng(int(cfg.get("val_seed", 12345)))
    vx, vy = make_trajectory_batch(val_rng, val_set, int(cfg.get("val_windows", 2048)), field, fps,
                                   {**aug, "wrong_focal_fraction": 0.0}, cam_cfg)
    val_x, val_y = torch.from_numpy(vx), torch.from_numpy(vy)
    steps, bs = int(cfg["steps"]), int(cfg["batch_size"])
    max_seconds = float(cfg.get("max_seconds", math.inf))
    lr0, lr_end = float(cfg.get("lr", 1e-3)), float(cfg.get("lr_end", 1e-4))
    bn0, bn_end = float(cfg.get("bn_momentum", 0.1)), float(cfg.get("bn_momentum_end", 0.001))
    opt = torch.optim.Adam(model.parameters(), lr=lr0, amsgrad=True)
    eval_every = int(cfg.get("eval_every", 200))
    best = math.inf
    t0 = time.time()
    running = []
    step = 0
    with open(run_dir / "log.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "seconds", "lr", "train_loss", "val_loss", "val_root_mm", "val_depth_pct"])
        while True:
            step += 1
            frac = min(1.0, max((step - 1) / max(steps - 1, 1), (time.time() - t0) / max_seconds))
            lr = lr0 * (lr_end / lr0) ** frac
            for group in opt.param_groups:
                group["lr"] = lr
            model.set_bn_momentum(bn0 * (bn_end / bn0) ** frac)
            x, y = make_trajectory_batch(rng, train_set, bs, field, fps, aug, cam_cfg)
            model.train()
            loss = weighted_loss(model(torch.from_numpy(x), single=True), torch.from_numpy(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            running.append(loss.item())
            last = step >= steps or frac >= 1.0
            if step % eval_every == 0 or last:
                model.eval()
                with torch.no_grad():
                    pred = model(val_x, single=True)
                    val = float(weighted_loss(pred, val_y))
                    root_mm = float((pred - val_y).norm(dim=-1).mean()) * 1000
                    depth_pct = float(((pred[..., 2] - val_y[..., 2]).abs() / val_y[..., 2]).mean()) * 100
                tl = float(np.mean(running))
                running = []
                writer.writerow([step, round(time.time() - t0, 1), f"{lr:.3g}", f"{tl:.4f}", f"{val:.4f}",
                                 f"{root_mm:.0f}", f"{depth_pct:.2f}"])
                fh.flush()
                log.info("step %d  %.0fs  train %.4f  val %.4f  root %.0f mm  depth %.2f %%", step,
                         time.time() - t0, tl, val, root_mm, depth_pct)
                if val < best:
                    best = val
                    save_lifter(run_dir / "best", model.export_tensors(),
                                trajectory_config(cfg, {"steps": step, "val_depth_error_pct_windows":
                                                        round(depth_pct, 2)}))
            if last:
                break
    summary = {"best_val_loss": best, "seconds": time.time() - t0, "steps": step,
               "windows": step * bs, "train_frames": train_set.n_frames, "val_frames": val_set.n_frames}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if ship_to is not None:
        import shutil

        from wildpose.atomic import atomic_path
        for suffix in (".safetensors", ".json"):
            with atomic_path(Path(ship_to).with_suffix(suffix)) as tmp:
                shutil.copyfile(run_dir / f"best{suffix}", tmp)
                os.chmod(tmp, 0o644)
    return summary


# ------------------------------------------------------------------------------------------------ evaluation

def make_scenes(clips: ClipSet, fps: float = 30.0, seed: int = EVAL_SEED, segment_s: float = 10.0,
                noise: bool = False, max_segments: int | None = None) -> list[dict]:
    """Held-out scenes: each clip at ``fps`` cut into segments, each seen by its own random static camera.

    Returns a list of dicts: ``keypoints`` (T, 17, 2) pixels, ``image_size`` (w, h), ``focal`` pixels,
    ``joints_cam`` (T, 17, 3) H36M camera axes metres (absolute), ``joints_world`` (T, 17, 3) mocap world
    (Y up) metres, ``rot`` (3, 3) world -> camera, ``centre`` (3,) camera position in the world, ``clip``.
    Deterministic for a seed.
    """
    out = []
    for rng, name, hh, cam, hc, px in held_out_segments(clips, fps, seed, segment_s):
        if noise:
            px = _noise_2d(rng, px, np.array([NOISE["sd"]]), np.array([NOISE["outlier_prob"]]), NOISE["outlier_sd"])
        out.append({"keypoints": px[0].astype(np.float32), "image_size": tuple(cam["image_size"][0].tolist()),
                    "focal": float(cam["focal"][0]), "joints_cam": hc[0].astype(np.float32),
                    "joints_world": hh.astype(np.float32), "rot": cam["rot"][0], "centre": cam["centre"][0],
                    "clip": name})
        if max_segments is not None and len(out) >= max_segments:
            break
    return out


def score_trajectory(predict, scenes: list[dict]) -> dict:
    """Root errors over all frames: ``predict(scene) -> (T, 3)`` camera-space root, metres.

    Returns root position error (mm, mean and median), depth error as % of the true distance (mean, median,
    90th percentile), the mean signed depth error (%, a scale bias) and the error after removing each
    segment's own scale (%, what remains once the person's size is known).
    """
    err, dpct, signed, scaled = [], [], [], []
    for s in scenes:
        pred = np.asarray(predict(s), np.float64)
        gt = s["joints_cam"][:, 0].astype(np.float64)
        err.append(np.linalg.norm(pred - gt, axis=-1))
        dpct.append(np.abs(pred[:, 2] - gt[:, 2]) / gt[:, 2])
        signed.append((pred[:, 2] - gt[:, 2]) / gt[:, 2])
        k = np.median(gt[:, 2] / pred[:, 2])
        scaled.append(np.abs(k * pred[:, 2] - gt[:, 2]) / gt[:, 2])
    err, dpct, signed, scaled = (np.concatenate(v) for v in (err, dpct, signed, scaled))
    return {"frames": int(len(err)), "segments": len(scenes), "root_mm": 1000 * float(err.mean()),
            "root_median_mm": 1000 * float(np.median(err)), "depth_pct": 100 * float(dpct.mean()),
            "depth_median_pct": 100 * float(np.median(dpct)), "depth_p90_pct": 100 * float(np.percentile(dpct, 90)),
            "depth_bias_pct": 100 * float(signed.mean()), "depth_pct_scale_removed": 100 * float(scaled.mean())}


def evaluate(model_path=None, mocap_dir: str | os.PathLike = ROOT.parent / "shared" / "data" / "mocap",
             groups: list[str] | None = None, cache_dir=ROOT / "runs" / "cache", max_segments: int | None = None,
             unknown_focal: bool = False) -> dict:
    """Trajectory scores on held-out subjects (default: the test split) with ground-truth and noisy 2D, for
    the network (``wildpose.world.estimate_trajectory``) and for the geometric baseline that fits the root
    to the pose lifter's output (``wildpose.world.fit_root``)."""
    from wildpose.lift import lift, load_lifter
    from wildpose.world import estimate_trajectory, fit_root

    model = load_lifter(model_path) if model_path else None
    lifter = load_lifter(None)
    clips = load_split(mocap_dir, groups or DEFAULT_SPLIT["test"], None, cache_dir)
    res = {}
    for name, noisy in (("gt2d", False), ("noisy2d", True)):
        scenes = make_scenes(clips, noise=noisy, max_segments=max_segments)
        f = (lambda s: None) if unknown_focal else (lambda s: s["focal"])
        res[name] = score_trajectory(
            lambda s: estimate_trajectory(s["keypoints"], s["image_size"], 30.0, focal_length=f(s), model=model),
            scenes)
        res[name + "_fit_root"] = score_trajectory(
            lambda s: fit_root(lift(s["keypoints"], s["image_size"], 30.0, focal_length=f(s), model=lifter),
                               s["keypoints"], s["image_size"], f(s)), scenes)
    return res


def evaluate_world(mocap_dir: str | os.PathLike = ROOT.parent / "shared" / "data" / "mocap",
                   groups: list[str] | None = None, cache_dir=ROOT / "runs" / "cache", model_path=None,
                   noise: bool = True, max_segments: int | None = None, people: int = 1,
                   seed: int = EVAL_SEED + 1, gt_poses: bool = False, align_options: dict | None = None) -> dict:
    """World alignment on synthetic scenes: held-out mocap through a random static camera, the whole pipeline
    after 2D (lifter + trajectory + align_world). ``people`` > 1 puts that many segments, each at its own
    offset on the floor, in front of one camera. Returns the up-direction error (degrees), the camera-height
    error (m and %) and the floor error where the people are (mean |estimated - true| height of the true
    lower ankle in the world frame, metres), per scene mean / median (/ 90th percentile). ``gt_poses``:
    align the true camera-space joints instead (the alignment's own error); ``align_options``: keyword
    arguments for ``align_world`` (e.g. ``{"prior_weight": 1e6}``: the body axes alone)."""
    from wildpose.lift import lift, load_lifter
    from wildpose.world import align_world, estimate_trajectory

    rng = np.random.default_rng(seed)
    traj = load_lifter(model_path) if model_path else None
    lifter = load_lifter(None)
    clips = load_split(mocap_dir, groups or DEFAULT_SPLIT["test"], None, cache_dir)
    T = 150
    segs = []
    for i in range(len(clips.lengths)):
        h, c = clips.clip(i)
        h, c = h[::2], c[::2]
        for s0 in range(0, len(h) - T + 1, T):
            segs.append((h[s0:s0 + T], c[s0:s0 + T]))
    order = rng.permutation(len(segs))
    n_scenes = len(segs) // people if max_segments is None else min(max_segments, len(segs) // people)
    up_err, h_err, h_pct, feet = [], [], [], []
    for k in range(n_scenes):
        picks = [segs[j] for j in order[k * people:(k + 1) * people]]
        hs, cs = [], []
        for j, (h, c) in enumerate(picks):
            # centre each take, then spread people over the floor (a crowd), keeping each one's own motion
            shift = np.array([h[:, 0, 0].mean(), 0.0, h[:, 0, 2].mean()])
            spot = rng.uniform(-3.0, 3.0, 2) if people > 1 else np.zeros(2)
            shift = shift - np.array([spot[0], 0.0, spot[1]])
            hs.append(h - shift)
            cs.append(c - shift)
        allroots = np.concatenate([h[:, 0] for h in hs])[None]
        cam = random_cameras(rng, allroots)
        rot, centre = cam["rot"][0], cam["centre"][0]
        size, focal = tuple(cam["image_size"][0].tolist()), float(cam["focal"][0])
        poses_cam = []
        for h, c in zip(hs, cs):
            px = project(world_to_camera(c[None], cam["rot"], cam["centre"]), cam["focal"], cam["image_size"])
            if noise:
                px = _noise_2d(rng, px, np.array([NOISE["sd"]]), np.array([NOISE["outlier_prob"]]),
                               NOISE["outlier_sd"])
            kp = px[0]
            if gt_poses:
                poses_cam.append(world_to_camera(h[None], cam["rot"], cam["centre"])[0])
                continue
            pose = lift(kp, size, 30.0, focal_length=focal, model=lifter)
            root = estimate_trajectory(kp, size, 30.0, focal_length=focal, model=traj)
            poses_cam.append(pose + root[:, None, :])
        poses_cam = np.stack(poses_cam)
        world, camera = align_world(poses_cam, np.ones(poses_cam.shape[:2], bool), **(align_options or {}))
        true_up = rot @ np.array([0.0, 1.0, 0.0])  # world +Y in camera axes
        est_up = camera["up_camera"]
        up_err.append(np.degrees(np.arccos(np.clip(true_up @ est_up, -1.0, 1.0))))
        # the mocap floor: where the lower ankle is on a typical frame, minus the ankle's own height
        gt_low = np.concatenate([h[:, [3, 6], 1].min(axis=1) for h in hs])
        true_height = centre[1] - (np.median(gt_low) - camera["ankle_height"])
        h_err.append(camera["height"] - true_height)
        h_pct.append(abs(camera["height"] - true_height) / true_height * 100)
        # the floor under the people: the true lower-ankle points (camera axes) put through the estimated
        # world transform, against their true height above the true floor
        gt_cam = np.concatenate([world_to_camera(h[None], cam["rot"], cam["centre"])[0] for h in hs])
        gt_w = np.concatenate(hs)
        lower = np.argmin(gt_w[:, [3, 6], 1], axis=1)
        idx = np.where(lower == 0, 3, 6)
        ank_cam = gt_cam[np.arange(len(gt_cam)), idx]
        y_est = ank_cam @ camera["rotation"][1].astype(np.float64) + camera["height"]
        y_true = gt_w[np.arange(len(gt_w)), idx, 1] - (np.median(gt_low) - camera["ankle_height"])
        feet.append(float(np.mean(np.abs(y_est - y_true))))
    up_err, h_err, h_pct = np.array(up_err), np.array(h_err), np.array(h_pct)
    return {"scenes": int(n_scenes), "people": people,
            "up_deg_mean": float(up_err.mean()), "up_deg_median": float(np.median(up_err)),
            "up_deg_p90": float(np.percentile(up_err, 90)),
            "height_abs_m_mean": float(np.abs(h_err).mean()), "height_bias_m": float(h_err.mean()),
            "height_pct_mean": float(h_pct.mean()), "height_pct_median": float(np.median(h_pct)),
            "floor_at_people_m_mean": float(np.mean(feet)), "floor_at_people_m_median": float(np.median(feet))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wildpose.lift.train.trajectory", description=__doc__)
    ap.add_argument("--config", default=str(ROOT / "configs" / "trajectory.json"))
    ap.add_argument("--mocap", default=str(ROOT.parent / "shared" / "data" / "mocap"))
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--name", help="run name (default: the config's name)")
    ap.add_argument("--steps", type=int, help="override the config's step count")
    ap.add_argument("--max-seconds", type=float, help="override the config's time budget")
    ap.add_argument("--ship", action="store_true", help="copy the best weights to src/wildpose/models/trajectory.*")
    ap.add_argument("--evaluate", action="store_true", help="evaluate a trained model instead of training")
    ap.add_argument("--world", action="store_true", help="with --evaluate: the world-alignment scenes")
    ap.add_argument("--people", type=int, default=1, help="with --world: people per scene")
    ap.add_argument("--gt-poses", action="store_true", help="with --world: align the true joints")
    ap.add_argument("--body-only", action="store_true", help="with --world: up from the body axes alone")
    ap.add_argument("--unknown-focal", action="store_true", help="with --evaluate: the default field of view")
    ap.add_argument("--split", default="test", choices=["test", "val"])
    ap.add_argument("--groups", nargs="+", metavar="GROUP",
                    help="with --evaluate: only these subject groups of the split, e.g. cmu:03 cmu:05 'martial:?' "
                         "(the test groups before the acrobatics and subject-131 folders)")
    ap.add_argument("--model", help="with --evaluate: NAME.safetensors (default: the shipped trajectory model)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.evaluate:
        groups = DEFAULT_SPLIT[args.split]
        if args.groups:
            outside = [g for g in args.groups if g not in groups]
            if outside:  # anything else may be a training clip
                ap.error(f"--groups: {', '.join(outside)} not in the {args.split} split ({', '.join(groups)})")
            groups = args.groups
        if args.world:
            res = evaluate_world(args.mocap, groups, Path(args.runs) / "cache", args.model, people=args.people,
                                 gt_poses=args.gt_poses,
                                 align_options={"prior_weight": 1e6} if args.body_only else None)
        else:
            res = evaluate(args.model, args.mocap, groups, Path(args.runs) / "cache",
                           unknown_focal=args.unknown_focal)
        print(json.dumps(res, indent=2))
        return 0
    cfg = json.loads(Path(args.config).read_text())
    if args.steps:
        cfg["steps"] = args.steps
    if args.max_seconds:
        cfg["max_seconds"] = args.max_seconds
    cfg.setdefault("cache_dir", str(Path(args.runs) / "cache"))
    name = args.name or cfg.get("name", "trajectory")
    ship = ROOT / "src" / "wildpose" / "models" / "trajectory" if args.ship else None
    summary = train(cfg, args.mocap, Path(args.runs) / name, ship_to=ship)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
