"""Training: vectorised window generation (mocap -> augment -> virtual camera -> 2D/3D), the training loop,
logging to runs/<name>/log.csv and export in the shipped model format."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import time
from pathlib import Path

import numpy as np

from wildpose.lift.normalize import crop_normalize, focal_from_fov
from wildpose.lift.train.cameras import mirror, project, random_cameras, world_to_camera
from wildpose.lift.train.data import BASE_FPS, DEFAULT_SPLIT, ClipSet, load_split
from wildpose.skeleton import H36M_PARENTS

log = logging.getLogger(__name__)

ACKNOWLEDGEMENT = ("The data used in this project was obtained from mocap.cs.cmu.edu. "
                   "The database was created with funding from NSF EIA-0196217.")

# each COCO point rides on one H36M joint when bones are rescaled (face points on the neck/nose joint)
COCO_ANCHOR = np.array([9, 9, 9, 9, 9, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3])
# bone groups for length scaling (child joint -> group): legs, arms, torso, neck/head, hips, shoulders
_BONE_GROUP = np.array([0, 4, 0, 1, 4, 0, 1, 2, 2, 3, 3, 5, 6, 7, 5, 6, 7])  # index by child joint
_N_GROUPS = 8

DEFAULT_AUG = {
    "mirror": 0.5, "time_warp": [0.8, 1.25], "global_scale": [0.9, 1.1], "bone_scale_sd": 0.05,
    "noise_fraction": 0.7, "noise_sd": [0.0, 0.025], "outlier_prob": 0.01, "outlier_sd": 0.15,
    "wrong_focal_fraction": 0.2,
    "limb_rotation_sd": 0.0,  # degrees (rotate_limbs); 0: off
    "mix_halves": 0.0,  # fraction of windows whose upper body comes from another window (mix_body_halves)
    "mix_limbs": 0.0,  # per limb, the fraction of windows where it comes from another window (mix_limbs)
    # calibrated detector noise (wildpose.lift.train.noise; off unless joint_sd is given): per-joint sd as a
    # fraction of the person's pixel height, scaled per window by a log-uniform factor in noise_scale (videos
    # differ in blur and resolution); low-score joints (per-joint rates) get lowscore_sd instead
    "joint_sd": None, "noise_scale": [1.0, 1.0], "lowscore_prob": 0.0, "lowscore_sd": 0.0,
}


def add_noise_2d(rng: np.random.Generator, px: np.ndarray, size_px: np.ndarray, noisy: np.ndarray,
                 aug: dict) -> np.ndarray:
    """2D detector noise on pixels px (n, T, J, 2) for the windows where ``noisy`` (n,) is True.

    size_px (n,): the person's pixel height. Either isotropic Gaussian noise with an sd drawn from
    ``noise_sd`` (fractions of the height), or, when ``joint_sd`` (J fractions) is given, the calibrated
    model: per-joint sd x a per-window factor, low-score joint-frames (rate ``lowscore_prob``, a number or
    J numbers) with sd ``lowscore_sd``; both add outliers (rate ``outlier_prob``, sd ``outlier_sd``).
    """
    n, t, j = px.shape[:3]
    if aug.get("joint_sd") is None:
        sd = rng.uniform(*aug["noise_sd"], n) * size_px * noisy
        px = px + rng.normal(size=px.shape) * sd[:, None, None, None]
    else:
        lo, hi = aug.get("noise_scale", [1.0, 1.0])
        scale = np.exp(rng.uniform(np.log(lo), np.log(hi), n)) * size_px * noisy
        sd = np.asarray(aug["joint_sd"], np.float64)[None, None, :] * scale[:, None, None]  # (n, 1, J)
        low = rng.random((n, t, j)) < np.broadcast_to(np.asarray(aug.get("lowscore_prob", 0.0)), (j,))
        sd = np.where(low, np.maximum(sd, aug.get("lowscore_sd", 0.0) * scale[:, None, None]), sd)
        px = px + rng.normal(size=px.shape) * sd[..., None]
    out = rng.random(px.shape[:3]) < aug["outlier_prob"] * noisy[:, None, None]
    return px + out[..., None] * rng.normal(size=px.shape) * (aug["outlier_sd"] * size_px)[:, None, None, None]


def sample_windows(rng: np.random.Generator, clips: ClipSet, n: int, frames: int, fps: float,
                   time_warp=(1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """n windows of ``frames`` frames at ``fps`` (time-warped by a random factor): (n, frames, 17, 3) H36M and
    COCO, world metres. Frames beyond a clip's ends repeat its edge frames (as inference pads)."""
    p = clips.lengths / clips.lengths.sum()
    ci = rng.choice(len(clips.lengths), n, p=p)
    length = clips.lengths[ci]
    centre = rng.uniform(0, length - 1)
    warp = rng.uniform(time_warp[0], time_warp[1], n)
    k = np.arange(frames) - (frames - 1) / 2.0
    t = np.clip(centre[:, None] + k[None] * (warp * BASE_FPS / fps)[:, None], 0, (length - 1)[:, None])
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, (length - 1)[:, None])
    a = (t - i0)[..., None, None].astype(np.float32)
    s = clips.starts[ci][:, None]
    h = (1 - a) * clips.h36m[s + i0] + a * clips.h36m[s + i1]
    c = (1 - a) * clips.coco[s + i0] + a * clips.coco[s + i1]
    return h, c


def scale_bones(rng: np.random.Generator, h36m: np.ndarray, coco: np.ndarray, global_scale, sd: float):
    """Random per-window bone-length scaling (left/right alike, by bone group) and overall size, keeping the
    pelvis in place; COCO points move rigidly with their anchor joint."""
    n = h36m.shape[0]
    g = rng.uniform(global_scale[0], global_scale[1], n)
    s = np.clip(rng.normal(1.0, sd, (n, _N_GROUPS)), 1 - 3 * sd, 1 + 3 * sd) * g[:, None]
    per_bone = s[:, _BONE_GROUP][:, None, :, None]  # (n, 1, 17, 1)
    out = h36m.copy()
    for j in range(1, 17):  # parents come first: accumulate scaled bones down the tree
        p = H36M_PARENTS[j]
        out[:, :, j] = out[:, :, p] + per_bone[:, :, j] * (h36m[:, :, j] - h36m[:, :, p])
    c = out[:, :, COCO_ANCHOR] + g[:, None, None, None] * (coco - h36m[:, :, COCO_ANCHOR])
    return out, c


# bones whose direction the limb-rotation augmentation perturbs (child joint -> sd multiplier): limbs fully,
# spine, neck and head by half (their range of motion is smaller)
_ROTATED_BONES = {2: 1.0, 3: 1.0, 5: 1.0, 6: 1.0, 12: 1.0, 13: 1.0, 15: 1.0, 16: 1.0, 7: 0.5, 9: 0.5, 10: 0.5}


def _random_rotations(rng: np.random.Generator, n: int, sd_rad: float) -> np.ndarray:
    """(n, 3, 3) rotations about uniformly random axes by angles ~ N(0, sd_rad)."""
    from scipy.spatial.transform import Rotation

    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = rng.normal(0.0, sd_rad, n)
    return Rotation.from_rotvec(axis * angle[:, None]).as_matrix()


def rotate_limbs(rng: np.random.Generator, h36m: np.ndarray, coco: np.ndarray, sd_deg: float):
    """New poses from the mocap's: each window's limb bones (and, by half, spine, neck and head) turned by a
    random rotation about their parent joint, the same for the whole window so the motion stays smooth;
    everything below a bone turns with it and COCO points move rigidly with their anchor joint. The shared
    mocap has few activities, and held-out motion (dance, ballet, martial arts) reaches poses it lacks."""
    n = h36m.shape[0]
    acc = np.broadcast_to(np.eye(3), (17, n, 3, 3)).copy()  # accumulated rotation of each joint's bone
    out = h36m.copy()
    for j in range(1, 17):  # parents come first
        p = H36M_PARENTS[j]
        acc[j] = acc[p]
        if j in _ROTATED_BONES:
            acc[j] = _random_rotations(rng, n, np.radians(sd_deg) * _ROTATED_BONES[j]) @ acc[j]
        out[:, :, j] = out[:, :, p] + np.einsum("nij,ntj->nti", acc[j], h36m[:, :, j] - h36m[:, :, p])
    anchor_rot = acc[COCO_ANCHOR]  # (17 coco, n, 3, 3)
    c = out[:, :, COCO_ANCHOR] + np.einsum("knij,ntkj->ntki", anchor_rot, coco - h36m[:, :, COCO_ANCHOR])
    return out.astype(h36m.dtype), c.astype(coco.dtype)


_UPPER = np.arange(7, 17)  # spine, thorax, neck, head, arms: the half mix_body_halves transplants
_COCO_UPPER = COCO_ANCHOR >= 7


def _heading(h36m: np.ndarray) -> np.ndarray:
    """(n, T) heading of the hips about world +Y (radians): the angle atan2(x, z) of the left-to-right hip
    line in the XZ plane, which a rotation by a about +Y increases by a."""
    d = h36m[:, :, 1] - h36m[:, :, 4]
    return np.arctan2(d[..., 0], d[..., 2])


def mix_body_halves(rng: np.random.Generator, h36m: np.ndarray, coco: np.ndarray, fraction: float):
    """New combinations of motion: on ``fraction`` of the windows the upper body (spine up, arms, head) is
    taken from another window of the batch, turned about the vertical each frame so that its hips face the
    same way as the receiving legs, and attached at the receiving pelvis. The legs, trajectory and timing stay
    the receiver's. Held-out motion combines arms and legs in ways the few shared activities do not (a dancer's
    raised arms over a walking step); both halves stay real, smooth mocap."""
    n = h36m.shape[0]
    take = rng.random(n) < fraction
    if not take.any():
        return h36m, coco
    donor = rng.permutation(n)[take]
    dst_h, dst_c = h36m[take], coco[take]
    src_h, src_c = h36m[donor], coco[donor]
    turn = _heading(dst_h) - _heading(src_h)  # (m, T)
    cos, sin = np.cos(turn), np.sin(turn)
    zero, one = np.zeros_like(turn), np.ones_like(turn)
    rot_y = np.stack([np.stack([cos, zero, sin], -1), np.stack([zero, one, zero], -1),
                      np.stack([-sin, zero, cos], -1)], -2)  # (m, T, 3, 3)

    def transplant(points: np.ndarray) -> np.ndarray:
        return dst_h[:, :, :1] + np.einsum("mtij,mtkj->mtki", rot_y, points - src_h[:, :, :1])

    h_out, c_out = h36m.copy(), coco.copy()
    mixed_h, mixed_c = dst_h.copy(), dst_c.copy()
    mixed_h[:, :, _UPPER] = transplant(src_h[:, :, _UPPER])
    mixed_c[:, :, _COCO_UPPER] = transplant(src_c[:, :, _COCO_UPPER])
    h_out[take], c_out[take] = mixed_h, mixed_c
    return h_out.astype(h36m.dtype), c_out.astype(coco.dtype)


# (limb root joint, joints below it, parent segment) for mix_limbs; segments are "thorax" (shoulder line,
# spine to thorax) and "pelvis" (hip line, pelvis to spine)
_LIMBS = ((11, (12, 13), "thorax"), (14, (15, 16), "thorax"), (4, (5, 6), "pelvis"), (1, (2, 3), "pelvis"))


def _segment_frames(h36m: np.ndarray, segment: str) -> np.ndarray:
    """(n, T, 3, 3) orthonormal frames (columns: left-to-right, up, forward) of the thorax or the pelvis."""
    if segment == "thorax":
        lateral, up = h36m[:, :, 14] - h36m[:, :, 11], h36m[:, :, 8] - h36m[:, :, 7]
    else:
        lateral, up = h36m[:, :, 1] - h36m[:, :, 4], h36m[:, :, 7] - h36m[:, :, 0]
    x = lateral / (np.linalg.norm(lateral, axis=-1, keepdims=True) + 1e-9)
    z = np.cross(x, up)
    z /= np.linalg.norm(z, axis=-1, keepdims=True) + 1e-9
    return np.stack([x, np.cross(z, x), z], axis=-1)


def mix_limbs(rng: np.random.Generator, h36m: np.ndarray, coco: np.ndarray, fraction: float):
    """New combinations of limb motion: each limb (either arm, either leg) independently, on ``fraction`` of
    the windows, comes from another window of the batch: its elbow and wrist (knee and ankle) keep their pose
    relative to the donor's thorax (pelvis) and are attached at the receiver's shoulder (hip) in the
    receiver's thorax (pelvis) frame, each frame. Joint angles stay a real person's; what is new is which arm
    moves with which leg. Measured worse on the held-out test than body-half mixing alone (it breaks the
    coordination between limbs: docs/MODEL.md "After v4"), so it is off by default."""
    n = h36m.shape[0]
    h_out, c_out = h36m.astype(np.float64), coco.astype(np.float64)
    frames = {seg: _segment_frames(h36m, seg) for seg in ("thorax", "pelvis")}
    for root, below, seg in _LIMBS:
        take = np.flatnonzero(rng.random(n) < fraction)
        if not len(take):
            continue
        donor = rng.integers(0, n, len(take))
        # receiver frame x donor frame transposed: the donor limb's pose in the receiver's body
        turn = np.einsum("mtij,mtkj->mtik", frames[seg][take], frames[seg][donor])
        below = list(below)
        coco_idx = np.flatnonzero(np.isin(COCO_ANCHOR, below))
        src_root, dst_root = h36m[donor][:, :, root:root + 1], h36m[take][:, :, root:root + 1]
        frames_all = np.arange(h36m.shape[1])
        h_out[np.ix_(take, frames_all, below)] = dst_root + np.einsum(
            "mtij,mtkj->mtki", turn, h36m[donor][:, :, below] - src_root)
        c_out[np.ix_(take, frames_all, coco_idx)] = dst_root + np.einsum(
            "mtij,mtkj->mtki", turn, coco[donor][:, :, coco_idx] - src_root)
    return h_out.astype(h36m.dtype), c_out.astype(coco.dtype)


def focal_used(rng: np.random.Generator, cams: dict, wrong_fraction: float) -> np.ndarray:
    """(B,) the focal length (pixels) each window is normalised with: the pipeline's, i.e. mostly the true one,
    on ``wrong_fraction`` of windows the default field of view or the true one x exp(N(0, 0.3)), so that
    unknown lenses degrade gently."""
    f = cams["focal"].copy()
    n = len(f)
    wrong = rng.random(n) < wrong_fraction
    default = np.array([focal_from_fov((w, h)) for w, h in cams["image_size"]])
    guess = np.where(rng.random(n) < 0.5, default, f * np.exp(rng.normal(0.0, 0.3, n)))
    return np.where(wrong, guess, f)


def make_batch(rng: np.random.Generator, clips: ClipSet, n: int, frames: int, fps: float = 30.0,
               aug: dict | None = None, cam_cfg: dict | None = None, centre_only: bool = True,
               causal: bool = False, normalisation: str = "focal"):
    """A batch of training windows.

    Returns inputs (n, frames, 17, 2) float32 (COCO 2D in the model's input space: "focal" rays or "crop",
    see lift/normalize.py) and targets (n, T, 17, 3) float32 (H36M, root-relative metres; T = 1 if
    centre_only: the centre frame, or the last frame for a causal model, else T = frames), in camera axes for
    "focal" and in each frame's virtual-camera axes for "crop".
    """
    aug = {**DEFAULT_AUG, **(aug or {})}
    h, c = sample_windows(rng, clips, n, frames, fps, aug["time_warp"])
    if aug.get("mix_halves", 0.0) > 0:
        h, c = mix_body_halves(rng, h, c, aug["mix_halves"])
    if aug.get("mix_limbs", 0.0) > 0:
        h, c = mix_limbs(rng, h, c, aug["mix_limbs"])
    h, c = scale_bones(rng, h, c, aug["global_scale"], aug["bone_scale_sd"])
    if aug.get("limb_rotation_sd", 0.0) > 0:
        h, c = rotate_limbs(rng, h, c, aug["limb_rotation_sd"])
    cams = random_cameras(rng, h[:, :, 0], cam_cfg)
    hc = world_to_camera(h, cams["rot"], cams["centre"])
    cc = world_to_camera(c, cams["rot"], cams["centre"])
    px = project(cc, cams["focal"], cams["image_size"])
    # 2D noise relative to the person's size in pixels: sigma = frac * (pixel height of the skeleton)
    size_px = np.ptp(px[..., 1], axis=2).mean(axis=1) + 1.0
    noisy = rng.random(n) < aug["noise_fraction"]
    px = add_noise_2d(rng, px, size_px, noisy, aug)
    f = focal_used(rng, cams, aug["wrong_focal_fraction"])
    uv = (px - (cams["image_size"] / 2.0)[:, None, None, :]) / f[:, None, None, None]
    target = hc - hc[:, :, :1]
    if normalisation == "crop":
        uv, rot = crop_normalize(uv)
        target = np.einsum("btij,btnj->btni", rot, target)
    elif normalisation != "focal":
        raise ValueError(f"normalisation: expected 'focal' or 'crop', got {normalisation!r}")
    if centre_only:
        k = frames - 1 if causal else frames // 2
        target = target[:, k:k + 1]
    flip = rng.random(n) < aug["mirror"]
    if flip.any():
        uv[flip], target[flip] = mirror(uv[flip], target[flip])
    return uv.astype(np.float32), target.astype(np.float32)


def seed_everything(seed: int) -> np.random.Generator:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def lifter_config(cfg: dict, extra_provenance: dict | None = None) -> dict:
    """The shipped JSON config (docs/ARCHITECTURE.md) for a training config."""
    return {
        "filter_widths": list(cfg["filter_widths"]), "channels": int(cfg["channels"]),
        "causal": bool(cfg.get("causal", False)),
        "in_joints": 17, "in_layout": "coco", "out_joints": 17, "out_layout": "h36m",
        "input_normalisation": cfg.get("input_normalisation", "focal"), "fps": float(cfg.get("fps", 30.0)),
        "bn_eps": 1e-5,
        "provenance": {
            "data": "CMU Graphics Lab Motion Capture Database (BVH conversions in shared/data/mocap), "
                    "split by subject (see split)",
            "split": cfg.get("split", DEFAULT_SPLIT),  # `wildpose eval` flags scores on groups trained on
            "licence": "CMU mocap: free for all uses. " + ACKNOWLEDGEMENT,
            "command": cfg.get("command", "python -m wildpose.lift.train --config configs/lifter.json --ship"),
            "model_card": "docs/MODEL.md",
            "trained_by": "wildpose (own weights, architecture after Pavllo et al. 2019)",
            "date": time.strftime("%Y-%m-%d"),
            **(extra_provenance or {}),
        },
    }


def export(model, cfg: dict, path: str | os.PathLike, extra_provenance: dict | None = None) -> Path:
    """Write model weights + JSON config in the shipped format."""
    from wildpose.lift.weights import save_lifter

    return save_lifter(path, model.export_tensors(), lifter_config(cfg, extra_provenance))


def start_run(cfg: dict, mocap_dir, run_dir, default_threads: int):
    """What every training run does first: torch threads, seeds, the run folder, the train and val clips.

    Returns (numpy Generator, run_dir as a Path, train ClipSet, val ClipSet).
    """
    import torch

    torch.set_num_threads(int(cfg.get("threads", default_threads)))
    rng = seed_everything(int(cfg.get("seed", 0)))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    split = cfg.get("split", DEFAULT_SPLIT)
    cache = cfg.get("cache_dir")
    train_set = load_split(mocap_dir, split["train"], cfg.get("max_clips"), cache)
    val_set = load_split(mocap_dir, split["val"], cfg.get("max_clips"), cache)
    return rng, run_dir, train_set, val_set


CHECKPOINT = "checkpoint.pt"
# config keys that do not change what is trained: a run resumed with other values of these is the same run
_NOT_TRAINING_KEYS = ("command", "threads", "cache_dir")


def _comparable(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in _NOT_TRAINING_KEYS}


def _rng_states(rng: np.random.Generator) -> str:
    """Every random state a training step draws from, as JSON (the checkpoint holds no pickled objects)."""
    import torch  # noqa: F401

    legacy = np.random.get_state(legacy=False)
    legacy["state"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in legacy["state"].items()}
    return json.dumps({"generator": rng.bit_generator.state, "python": random.getstate(), "numpy": legacy})


def _restore_rng_states(rng: np.random.Generator, text: str) -> None:
    states = json.loads(text)
    rng.bit_generator.state = states["generator"]
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    legacy = states["numpy"]
    legacy["state"]["key"] = np.asarray(legacy["state"]["key"], np.uint32)
    np.random.set_state(legacy)


def save_checkpoint(path: Path, cfg: dict, model, opt, rng: np.random.Generator, step: int, best: float,
                    running: list[float], elapsed: float) -> None:
    """Everything needed to continue a run exactly where it was (written atomically: a kill leaves the
    previous checkpoint). Tensors, numbers and strings only, so it loads with ``weights_only=True``."""
    import torch

    from wildpose.atomic import atomic_path

    state = {"version": 1, "config": json.dumps(_comparable(cfg), sort_keys=True), "step": step,
             "best": best, "running": list(running), "elapsed": elapsed, "model": model.state_dict(),
             "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "rng": _rng_states(rng)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, cfg: dict) -> dict:
    """Read a run's checkpoint; a FormatError naming it when it is damaged or from another config."""
    import torch

    from wildpose.errors import FormatError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FormatError("no checkpoint to resume from (the run finished, or never started)", path) from None
    except Exception as exc:  # a damaged file: torch raises many kinds
        raise FormatError(f"not a training checkpoint ({type(exc).__name__})", path) from None
    if not isinstance(state, dict) or state.get("version") != 1:
        raise FormatError("not a training checkpoint of this version", path)
    saved = json.loads(state["config"])
    now = json.loads(json.dumps(_comparable(cfg), sort_keys=True))
    if saved != now:
        changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        raise FormatError(f"the checkpoint is from another config (differs in {', '.join(changed[:5])}); "
                          "train without --resume to start over", path)
    return state


class _DeferredStop:
    """Turns SIGINT/SIGTERM into a flag read between steps, so a checkpoint is never of a half-done step;
    the loop then saves and raises the usual KeyboardInterrupt (or the handler's own exception)."""

    def __init__(self):
        self.caught = None
        self._previous = {}

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame):
        self.caught = signum

    def __exit__(self, *exc):
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def raise_caught(self):
        import signal

        previous = self._previous.get(self.caught)
        if callable(previous):  # e.g. the CLI's SIGTERM handler, which raises its own KeyboardInterrupt
            previous(self.caught, None)
        raise KeyboardInterrupt


def train(cfg: dict, mocap_dir: str | os.PathLike, run_dir: str | os.PathLike,
          progress=None, resume: bool = False) -> dict:
    """Train a lifter from a config dict (see configs/lifter.json). Returns a summary dict.

    Logs ``step, seconds, lr, bn_momentum, train_loss_mm, val_mpjpe_mm`` to run_dir/log.csv, keeps the
    best-on-validation weights in run_dir/best.* and the final ones in run_dir/last.*. Every
    ``checkpoint_every`` steps (default 1000), and when interrupted, the whole state goes to
    run_dir/checkpoint.pt; ``resume=True`` continues from it, to the same weights an uninterrupted run gives.
    The checkpoint is removed when the run completes.
    """
    import torch

    from wildpose.lift.train.model import TemporalLifter

    rng, run_dir, train_set, val_set = start_run(cfg, mocap_dir, run_dir, default_threads=2)
    checkpoint_path = run_dir / CHECKPOINT
    checkpoint = load_checkpoint(checkpoint_path, cfg) if resume else None
    if checkpoint is None:
        checkpoint_path.unlink(missing_ok=True)  # a fresh start: an older run's state must not be resumed later
    causal = bool(cfg.get("causal", False))
    model = TemporalLifter(17, 17, cfg["filter_widths"], cfg["channels"], cfg.get("dropout", 0.25), causal=causal)
    if cfg.get("init_from") and checkpoint is None:
        # warm start from a saved lifter of the same shape (e.g. a causal model from a symmetric one: same
        # tensors, only the frame each block's residual keeps differs)
        from safetensors.numpy import load_file

        state = {k: torch.from_numpy(v) for k, v in load_file(str(cfg["init_from"])).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # not saved in our files
        if missing or unexpected:
            raise ValueError(f"init_from {cfg['init_from']}: does not match the architecture "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        log.info("initialised from %s", cfg["init_from"])
    field = model.receptive_field
    fps = float(cfg.get("fps", 30.0))
    aug, cam_cfg = cfg.get("augment", {}), cfg.get("camera", {})
    val_rng = np.random.default_rng(int(cfg.get("val_seed", 12345)))
    norm = cfg.get("input_normalisation", "focal")
    val_x, val_y = make_batch(val_rng, val_set, int(cfg.get("val_windows", 2048)), field, fps, aug, cam_cfg,
                              causal=causal, normalisation=norm)
    val_x, val_y = torch.from_numpy(val_x), torch.from_numpy(val_y)
    steps, bs = int(cfg["steps"]), int(cfg["batch_size"])
    lr0, lr_end = float(cfg.get("lr", 1e-3)), float(cfg.get("lr_end", 1e-4))
    bn0, bn_end = float(cfg.get("bn_momentum", 0.1)), float(cfg.get("bn_momentum_end", 0.001))
    opt = torch.optim.Adam(model.parameters(), lr=lr0, amsgrad=True)
    eval_every = int(cfg.get("eval_every", 200))
    checkpoint_every = int(cfg.get("checkpoint_every", 1000))
    # a time budget (seconds) instead of a step count: the schedules then follow elapsed time, so runs of
    # different architectures get equal compute; the step count reached is in the log and summary
    budget = float(cfg["max_seconds"]) if cfg.get("max_seconds") else None
    log_path = run_dir / "log.csv"
    header = ["step", "seconds", "lr", "bn_momentum", "train_loss_mm", "val_mpjpe_mm"]
    best = math.inf
    running: list[float] = []
    step = 0
    kept_rows: list[list[str]] = []
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        opt.load_state_dict(checkpoint["optimizer"])
        torch.set_rng_state(checkpoint["torch_rng"])
        _restore_rng_states(rng, checkpoint["rng"])
        step, best, running = int(checkpoint["step"]), float(checkpoint["best"]), list(checkpoint["running"])
        if log_path.is_file():  # the rows up to the checkpoint; later ones are done again
            with open(log_path, newline="") as fh:
                kept_rows = [r for r in list(csv.reader(fh))[1:] if r and int(r[0]) <= step]
        log.info("resuming %s at step %d", run_dir, step)
    t0 = time.time() - (float(checkpoint["elapsed"]) if checkpoint is not None else 0.0)
    with open(log_path, "w", newline="") as fh, _DeferredStop() as stop:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(kept_rows)
        fh.flush()
        while True:
            step += 1
            elapsed = time.time() - t0
            if budget is not None:
                frac = min(elapsed / budget, 1.0)
                last = elapsed >= budget
            else:
                frac = (step - 1) / max(steps - 1, 1)
                last = step >= steps
            lr = lr0 * (lr_end / lr0) ** frac
            bn_m = bn0 * (bn_end / bn0) ** frac
            for group in opt.param_groups:
                group["lr"] = lr
            model.set_bn_momentum(bn_m)
            x, y = make_batch(rng, train_set, bs, field, fps, aug, cam_cfg, causal=causal, normalisation=norm)
            model.train()
            pred = model(torch.from_numpy(x), single=True)
            loss = (pred - torch.from_numpy(y)).norm(dim=-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            running.append(loss.item())
            if step % eval_every == 0 or last:
                model.eval()
                with torch.no_grad():
                    val = float((model(val_x, single=True) - val_y).norm(dim=-1).mean()) * 1000
                tl = float(np.mean(running)) * 1000
                running = []
                writer.writerow([step, round(time.time() - t0, 1), f"{lr:.3g}", f"{bn_m:.3g}", f"{tl:.1f}",
                                 f"{val:.1f}"])
                fh.flush()
                log.info("step %d/%d  %.0fs  train %.1f mm  val %.1f mm", step, steps, time.time() - t0, tl, val)
                if progress is not None:
                    progress(step, steps)
                if val < best:
                    best = val
                    export(model, cfg, run_dir / "best", {"steps": step, "val_mpjpe_mm_windows": round(val, 1)})
            if last:
                export(model, cfg, run_dir / "last", {"steps": step, "val_mpjpe_mm_windows": round(val, 1)})
                break
            if stop.caught is not None or step % checkpoint_every == 0:
                save_checkpoint(checkpoint_path, cfg, model, opt, rng, step, best, running, time.time() - t0)
                if stop.caught is not None:
                    log.warning("interrupted at step %d: resume with --resume", step)
                    stop.raise_caught()
    checkpoint_path.unlink(missing_ok=True)
    summary = {"best_val_mpjpe_mm": best, "seconds": time.time() - t0, "steps": step,
               "windows_per_s": step * bs / (time.time() - t0),
               "train_frames": train_set.n_frames, "val_frames": val_set.n_frames}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
