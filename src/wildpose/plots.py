"""Figures of a result for a first look and for reports (matplotlib, no screen needed): joint angles over time,
the trajectories seen from above, each track's presence over time and a quality panel.

``plot_result(result, out_dir, stem)`` writes four PNGs and returns their paths; ``wildpose plot RESULT_DIR``
runs it. Tracks are drawn in the render's and the viewer's colours (by track id); the angle and quality figures
show the longest ``max_tracks`` tracks, the others figures every track.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .skeleton import COCO_NAMES, H36M_NAMES
from .types import Result

_J = {name: i for i, name in enumerate(H36M_NAMES)}
# flexion angles: 0 degrees straight, growing as the joint bends; (proximal, joint, distal), "spine" for the hip's
# trunk direction
ANGLES = {
    "left knee": ("left_hip", "left_knee", "left_ankle"),
    "right knee": ("right_hip", "right_knee", "right_ankle"),
    "left hip": ("spine", "left_hip", "left_knee"),
    "right hip": ("spine", "right_hip", "right_knee"),
    "left elbow": ("left_shoulder", "left_elbow", "left_wrist"),
    "right elbow": ("right_shoulder", "right_elbow", "right_wrist"),
}


def joint_angles(poses: np.ndarray) -> dict[str, np.ndarray]:
    """Flexion angles in degrees, (N,) each, of (N, 17, 3) Human3.6M poses (any axes: angles do not depend on
    them). Knee and elbow: 180 minus the angle between the two segments at the joint; hip: the angle between the
    thigh and the trunk's downward direction (pelvis - spine), 0 when standing."""
    poses = np.asarray(poses, np.float64)
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero-length segment gives NaN, not a warning
        return _angles(poses, out)


def _angles(poses: np.ndarray, out: dict) -> dict[str, np.ndarray]:
    for name, (a, b, c) in ANGLES.items():
        joint = poses[:, _J[b]]
        distal = poses[:, _J[c]] - joint
        if a == "spine":  # the trunk points up from the pelvis: the hip's reference is straight down it
            proximal = poses[:, _J["pelvis"]] - poses[:, _J["spine"]]
            cos = np.sum(proximal * distal, -1) / (np.linalg.norm(proximal, axis=-1) * np.linalg.norm(distal, axis=-1))
            out[name] = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        else:
            proximal = poses[:, _J[a]] - joint
            cos = np.sum(proximal * distal, -1) / (np.linalg.norm(proximal, axis=-1) * np.linalg.norm(distal, axis=-1))
            out[name] = 180.0 - np.degrees(np.arccos(np.clip(cos, -1, 1)))
    return out


def track_colour(track_id: int) -> tuple[float, float, float]:
    """The colour the render and the viewer give a track id (``render.track_color``), as matplotlib's 0-1 RGB."""
    from .render import track_color

    return tuple(c / 255.0 for c in track_color(track_id))


def _longest(result: Result, max_tracks: int) -> list[int]:
    return sorted(np.argsort(-np.asarray(result.track_lengths), kind="stable")[:max_tracks].tolist())


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def plot_result(result: Result, out_dir: str | Path, stem: str = "poses", *, max_tracks: int = 6) -> list[Path]:
    """Write ``{stem}_angles.png``, ``{stem}_trajectories.png``, ``{stem}_presence.png`` and
    ``{stem}_quality.png`` into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    times = np.asarray(result.timestamps, np.float64)
    shown = _longest(result, max_tracks)
    written = []

    # joint angles: one row of panels per track (knees, hips, elbows)
    fig, axes = plt.subplots(max(len(shown), 1), 3, figsize=(13, 2.6 * max(len(shown), 1)), squeeze=False,
                             sharex=True)
    for row, p in enumerate(shown):
        rows = result.track(p)
        t = times[result.frame_index[rows]]
        angles = joint_angles(result.poses_3d[rows])
        for col, joint in enumerate(("knee", "hip", "elbow")):
            ax = axes[row, col]
            for side, style in (("left", "-"), ("right", "--")):
                ax.plot(t, angles[f"{side} {joint}"], style, color=track_colour(result.track_ids[p]), lw=1.2,
                        label=side)
            ax.set_title(f"track {int(result.track_ids[p])}: {joint} flexion", fontsize=9)
            ax.set_ylabel("degrees")
            ax.legend(fontsize=7, loc="upper right")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no tracks", ha="center", transform=axes[0, 0].transAxes)
    fig.tight_layout()
    written.append(_save(fig, out_dir / f"{stem}_angles.png"))
    plt.close(fig)

    # trajectories on the floor, seen from above: world x to the right, -z up the page
    fig, ax = plt.subplots(figsize=(7, 7))
    if result.poses_world is not None:
        for p, track_id in enumerate(result.track_ids):
            pelvis = result.poses_world[result.track(p), _J["pelvis"]]
            ax.plot(pelvis[:, 0], pelvis[:, 2], color=track_colour(track_id), lw=1.2)
            if len(pelvis):
                ax.annotate(str(int(track_id)), pelvis[-1, [0, 2]], fontsize=7, color=track_colour(track_id))
        if result.camera is not None:
            ax.plot(result.camera.position[0], result.camera.position[2], "k^", ms=9, label="camera")
            forward = result.camera.rotation @ np.array([0.0, 0.0, 1.0])  # the first frame's view direction
            ax.arrow(result.camera.position[0], result.camera.position[2], forward[0], forward[2], color="k",
                     width=0.02)
            ax.legend(fontsize=8)
        ax.set_aspect("equal", adjustable="datalim")
        ax.invert_yaxis()  # -z up the page: the view from above (y up, right-handed), not its mirror image
    else:
        ax.text(0.5, 0.5, "no world coordinates in this result", ha="center", transform=ax.transAxes)
    ax.set_xlabel("world x (m)")
    ax.set_ylabel("world z (m)")
    ax.set_title("trajectories on the floor, from above (pelvis)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    written.append(_save(fig, out_dir / f"{stem}_trajectories.png"))
    plt.close(fig)

    # presence: a bar per track over the frames it has, interpolated stretches lighter
    fig, ax = plt.subplots(figsize=(11, 0.8 + 0.25 * max(len(result.track_ids), 1)))
    for p, track_id in enumerate(result.track_ids):
        rows = result.track(p)
        frames, filled = result.frame_index[rows], result.interpolated[rows]
        for flag, alpha in ((False, 1.0), (True, 0.35)):
            sel = frames[filled == flag]
            if len(sel):
                ax.broken_barh(_bars(sel, times, result.fps), (p - 0.4, 0.8), color=track_colour(track_id),
                               alpha=alpha)
    ax.set_yticks(range(len(result.track_ids)), [str(int(t)) for t in result.track_ids], fontsize=7)
    ax.set_ylabel("track id")
    ax.set_xlabel("time (s)")
    ax.set_xlim(times[0] if len(times) else 0, (times[-1] if len(times) else 1) + 1.0 / max(result.fps, 1e-6))
    ax.set_title("presence (light: interpolated over a short gap)")
    fig.tight_layout()
    written.append(_save(fig, out_dir / f"{stem}_presence.png"))
    plt.close(fig)

    # quality: mean keypoint score per frame per track, and each keypoint's mean score
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [2, 1]})
    for p in shown:
        rows = result.track(p)
        ax1.plot(times[result.frame_index[rows]], result.keypoints_2d[rows, :, 2].mean(-1),
                 color=track_colour(result.track_ids[p]), lw=1, label=f"track {int(result.track_ids[p])}")
    ax1.set_ylim(0, 1)
    ax1.set_xlabel("time (s)")
    ax1.set_ylabel("mean keypoint score")
    ax1.set_title("2D keypoint confidence per frame")
    if shown:
        ax1.legend(fontsize=7)
    detected = ~result.interpolated
    means = result.keypoints_2d[detected, :, 2].mean(0) if detected.any() else np.zeros(17)
    ax2.barh(range(17), means, color="0.4")
    ax2.set_yticks(range(17), COCO_NAMES, fontsize=7)
    ax2.set_xlim(0, 1)
    ax2.invert_yaxis()
    share = result.interpolated.mean() if result.num_rows else 0.0
    ax2.set_title(f"mean score per keypoint ({share:.1%} of rows interpolated)", fontsize=9)
    fig.tight_layout()
    written.append(_save(fig, out_dir / f"{stem}_quality.png"))
    plt.close(fig)
    return written


def _runs_start(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of runs of consecutive frame indices."""
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(frames)]])
    return frames[starts], ends - starts


def _bars(frames: np.ndarray, times: np.ndarray, fps: float) -> list[tuple[float, float]]:
    starts, lengths = _runs_start(frames)
    period = 1.0 / max(fps, 1e-6)
    return [(times[s], times[s + n - 1] - times[s] + period) for s, n in zip(starts, lengths)]
