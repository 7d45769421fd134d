"""Per-track streaming runners whose output for the newest frame is exactly the offline result on the frames
so far.

The offline lifter (``wildpose.lift.run_temporal_model``) normalises a whole track, resamples it onto its own
time grid (``t0 + k / model.fps``), runs the network with the track's ends padded by their edge values, and
resamples the outputs back. Live, a track grows by one frame at a time and only its newest pose is wanted, so
:class:`PrefixTemporalModel` keeps a ring buffer of the track's last frames (about one receptive field of
time) and runs the network on the few grid frames the newest output depends on, with the grid anchored at
the track's first frame as offline. The newest output then equals ``run_temporal_model(model, prefix)[-1]``,
``prefix`` being the track's frames up to now, to float rounding:

- the start: grid frames before the track's first one are the first grid frame repeated, as the offline
  padding does (the buffer reaches back to the track's start until the track is longer than the field);
- the end: with a causal model nothing after the newest frame is read, except that the newest frame's output
  is interpolated between the grid frames either side of it, and the one after it holds the newest frame's
  input (the end of the prefix, as offline at the end of a video). Where the frame times lie on the model's
  grid (a 30 fps source for the 30 fps models, every fifth frame of a 25 fps one) this is the offline result
  on the whole video too; between grid frames the offline run interpolates towards the next frame's input,
  which live has not seen yet (docs/LIVE.md, "What is causal").

:class:`CausalRefiner` runs ``wildpose.lift.refine.refine_poses(..., causal=True)`` a frame at a time: its
running mean of bone lengths is kept as a sum, and its one-sided smoothing filters only read the last frames,
which a short window holds. It refines the poses as they were emitted; offline refines the whole track's
lifted poses, which between grid frames looked up to 1/30 s ahead (above), so the two agree exactly where the
frames lie on the grid and the track has no missed frames (its frame rate so far is then its final one).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import scipy.signal  # noqa: F401  (refine_poses imports it on first use: a third of a second, not on a frame)

from wildpose.lift import resample
from wildpose.lift.model import TemporalModel
from wildpose.lift.normalize import crop_normalize, crop_restore, normalize_keypoints
from wildpose.lift.refine import CAUSAL_MOVE_SIGMA_S, refine_poses
from wildpose.skeleton import H36M_PARENTS

_MIRROR_BONE = np.array([0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13])[1:] - 1
_DEPTH_SIGMA_S = 0.1  # refine_poses's default depth_sigma_s


class PrefixTemporalModel:
    """One track's temporal model (the lifter or the trajectory model), fed a frame at a time.

    Parameters
    ----------
    model : TemporalModel
        Causal or symmetric; for a symmetric model the frames after the newest are the newest repeated (the
        offline result on the frames so far, which later frames would change).
    image_size, focal_length, principal_point : as for ``wildpose.lift.lift``.
    flip : bool
        Test-time flip averaging, as offline.
    """

    def __init__(self, model: TemporalModel, image_size: tuple[int, int], focal_length=None,
                 principal_point=None, flip: bool = True):
        self.model = model
        self.image_size = (float(image_size[0]), float(image_size[1]))
        self.focal_length, self.principal_point, self.flip = focal_length, principal_point, flip
        field = model.receptive_field
        self.before = field - 1 if model.causal else (field - 1) // 2
        self.period = 1.0 / model.fps
        self.crop = model.input_normalisation == "crop"
        # how far back the buffer must reach: the grid frames of two outputs' fields, and the frame before
        self._history_s = (self.before + 3) * self.period
        self.reset()

    def reset(self) -> None:
        """Start a new track (or a new segment of one, after a gap the tracker splits at)."""
        self.t0: float | None = None
        self.count = 0
        self.on_grid = True  # every frame so far within the offline same-grid tolerance of the model's grid
        self._times: deque[float] = deque()
        self._inputs: deque[np.ndarray] = deque()

    def _normalise(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        method = "focal" if self.crop else self.model.input_normalisation
        inputs = normalize_keypoints(np.asarray(xy, np.float32)[None, :, :2], self.image_size, method,
                                     self.focal_length, self.principal_point)
        if self.crop:
            inputs, rotation = crop_normalize(inputs)
            return inputs[0], rotation
        return inputs[0], None

    def _left(self, t: float, n_grid: int) -> int:
        """The grid frame at or before ``t``, as offline finds it (``searchsorted(grid, t, "right") - 1``,
        clipped to [0, n_grid - 2]), searched among the few grid frames near it, not the whole track's grid."""
        if n_grid < 2:
            return 0
        near = int((t - self.t0) / self.period)
        ks = np.arange(max(0, near - 2), min(n_grid, near + 3))
        left = int(np.searchsorted(self.t0 + ks * self.period, t, side="right")) - 1 + int(ks[0])
        return int(np.clip(left, 0, n_grid - 2))

    def push(self, keypoints: np.ndarray, timestamp: float) -> np.ndarray:
        """Add the newest frame's keypoints ((17, 2|3) pixels) at ``timestamp`` (seconds, increasing) and
        return its output: (J_out, 3) float32, as ``run_temporal_model`` gives for the last frame of the
        track so far."""
        return push_many([self], [keypoints], [timestamp])[0]

    def _prepare(self, keypoints: np.ndarray, timestamp: float) -> tuple[np.ndarray, tuple]:
        """Buffer the frame; return the network's input window (L, J, 2) and what ``_finish`` needs."""
        t = float(timestamp)
        inputs, rotation = self._normalise(keypoints)
        if self.t0 is None:
            self.t0 = t
        period = self.period
        self._times.append(t)
        self._inputs.append(inputs)
        self.count += 1
        # offline: ``np.allclose(grid, times, rtol=0, atol=1e-3 * period)`` over the whole track
        self.on_grid = self.on_grid and abs(t - (self.t0 + (self.count - 1) * period)) <= 1e-3 * period
        while len(self._times) > 2 and self._times[1] < t - self._history_s:
            self._times.popleft()
            self._inputs.popleft()
        times = np.fromiter(self._times, np.float64, len(self._times))
        values = np.stack(self._inputs)
        n_grid = int(math.ceil((t - self.t0) / period - 1e-6)) + 1
        if self.on_grid and n_grid == self.count:
            # offline runs the network on the frames themselves; the last one's field: the last frames
            return values[-(self.before + 1):], (None, None, None, t, rotation, 1)
        # the grid frames the newest output is interpolated between (offline: resample(outputs, grid, times))
        left = self._left(t, n_grid)
        lo = max(0, left - self.before)
        grid = self.t0 + np.arange(lo, n_grid) * period
        # outputs from the window's k-th on are used (k, k + 1): the network computes only those
        k = left - lo
        return resample(values, times, grid), (grid, k, n_grid, t, rotation, len(grid) - k)

    def _finish(self, outputs: np.ndarray, pending: tuple) -> np.ndarray:
        """The window's last ``need`` outputs (need, J_out, 3) -> the newest frame's output."""
        grid, k, n_grid, t, rotation, need = pending
        if grid is None:
            out = outputs[-1]
        elif n_grid >= 2:
            out = resample(outputs[:2], grid[k:k + 2], np.array([t]))[0]
        else:
            out = outputs[0]
        if self.crop:
            out = crop_restore(out[None], rotation)[0]
        return np.ascontiguousarray(out, np.float32)


def predict_windows(model: TemporalModel, windows: list[np.ndarray], need: int, flip: bool) -> np.ndarray:
    """The last ``need`` outputs of ``model.predict`` on each of G windows at once: G arrays (L_g, J_in, 2),
    any lengths L_g >= need -> (G, need, J_out, 3) float32.

    The same arithmetic as ``TemporalModel.predict`` (each window padded with its own edge values, flip
    averaging), but only the input frames those outputs read go through the network, in one pass for all
    windows: a crowd's people share its matrix products."""
    from wildpose import skeleton
    from wildpose.lift.model import _OUTPUT_FLIPS

    field = model.receptive_field
    before = field - 1 if model.causal else (field - 1) // 2
    span = need + field - 1
    x = np.stack([np.pad(np.asarray(w, np.float32), ((before, field - 1 - before), (0, 0), (0, 0)),
                         mode="edge")[-span:] for w in windows])
    g, n_frames = len(windows), need
    if flip:
        out_flip = _OUTPUT_FLIPS[(model.config["out_layout"], model.out_joints)]
        mirrored = x[:, :, skeleton.COCO_FLIP]
        mirrored[..., 0] *= -1.0
        x = np.concatenate([x, mirrored])
    out = model.forward(x.reshape(x.shape[0], span, -1)).reshape(x.shape[0], n_frames, model.out_joints, 3)
    if not flip:
        return out
    unmirrored = out[g:][:, :, out_flip]
    unmirrored[..., 0] *= -1.0
    return ((out[:g] + unmirrored) * np.float32(0.5)).astype(np.float32)


def push_many(runners: list[PrefixTemporalModel], keypoints: list[np.ndarray],
              timestamps: list[float]) -> list[np.ndarray]:
    """``push`` for several tracks of one model at once (one network pass per number of outputs needed)."""
    if not runners:
        return []
    prepared = [r._prepare(kp, t) for r, kp, t in zip(runners, keypoints, timestamps)]
    outputs: list[np.ndarray | None] = [None] * len(runners)
    by_need: dict[int, list[int]] = {}
    for i, (_, pending) in enumerate(prepared):
        by_need.setdefault(pending[-1], []).append(i)
    model, flip = runners[0].model, runners[0].flip
    for need, members in by_need.items():
        result = predict_windows(model, [prepared[i][0] for i in members], need, flip)
        for j, i in enumerate(members):
            outputs[i] = runners[i]._finish(result[j], prepared[i][1])
    return outputs


class CausalRefiner:
    """``refine_poses(..., causal=True)`` for one track, a frame at a time (module docstring).

    ``fps`` is the source's nominal rate, used (as ``wildpose.lift.lift`` uses it) while the track has one
    frame; afterwards the rate is the track's own, frames over time.
    """

    def __init__(self, image_size: tuple[int, int], fps: float, focal_length=None, principal_point=None):
        self.image_size = (float(image_size[0]), float(image_size[1]))
        self.fps = float(fps)
        self.focal_length, self.principal_point = focal_length, principal_point
        self.reset()

    def reset(self) -> None:
        self.t0: float | None = None
        self.count = 0
        self._length_sum = np.zeros(16)
        self._frames: deque[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = deque()

    def push(self, pose: np.ndarray, keypoints: np.ndarray, timestamp: float) -> np.ndarray:
        """The lifted pose (17, 3) of the newest frame, its keypoints (17, 3) pixels and scores -> the refined
        pose (17, 3) float32, root-relative (joint 0 exactly 0)."""
        t = float(timestamp)
        if self.t0 is None:
            self.t0 = t
        self.count += 1
        p = np.asarray(pose, np.float64)
        p = p - p[:1]
        bones = np.linalg.norm(p[1:] - p[H36M_PARENTS[1:]], axis=-1)
        # offline: np.cumsum over the track, divided by the count (the same sums in the same order)
        self._length_sum = self._length_sum + bones
        mean = self._length_sum / float(self.count)
        lengths = 0.5 * (mean + mean[_MIRROR_BONE])
        kp = np.asarray(keypoints, np.float32)
        rays = normalize_keypoints(kp[None, :, :2], self.image_size, "focal", self.focal_length,
                                   self.principal_point)[0]
        self._frames.append((p, rays, kp[:, 2].copy(), lengths))
        rate = (self.count - 1) / (t - self.t0) if self.count > 1 else self.fps
        # the one-sided filters read int(3 sigma) + 1 frames each, the move filter after the depth filter
        keep = int(3 * CAUSAL_MOVE_SIGMA_S * rate) + int(3 * _DEPTH_SIGMA_S * rate) + 4
        while len(self._frames) > keep:
            self._frames.popleft()
        poses, rays_w, scores, lengths_w = (np.stack(a) for a in zip(*self._frames))
        refined = refine_poses(poses, rays_w, rate, scores, causal=True, lengths=lengths_w)[-1]
        refined[0] = 0.0
        return refined
