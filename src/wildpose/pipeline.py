"""Compose the stages for one video: decode -> 2D people -> tracks -> 3D -> world -> files.

Each stage is its own module and hands its output type to the next:

    video.read_frames -> detect2d (Detections) -> track.track_people (Tracks) -> lift_tracks (poses rows)
    -> world.locate_people (PeopleInWorld) -> types.Result -> formats.result.save_result / render

People are rows (one per person-frame, ``types.TrackRows``) from tracking on: nothing here allocates
tracks x frames. The camera is one ``CameraIntrinsics`` made once per video from the options. This module only
wires the stages together, owns the output folder layout and makes the folder appear atomically (it is
assembled under a temporary name and renamed when complete).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .detect2d.presets import DEFAULT_PRESET
from .errors import NoPersonError, VideoError, WildposeError
from .types import Camera, DecodeReport, Detections, People2D, Result, Tracks, VideoInfo

log = logging.getLogger(__name__)

Progress = Callable[[int, "int | None"], None]
"""progress(frames_done, frames_total_or_None): called as frames are processed."""


@dataclass(frozen=True)
class RunOptions:
    """What ``wildpose run`` does for each video. Defaults are the CLI's defaults."""

    start: float | None = None  # seconds; process only [start, end)
    end: float | None = None
    detector: str = "movenet"
    detector_options: dict = field(default_factory=dict)  # passed to detect2d.create_detector
    # speed against quality of the 2D stage (detect2d.presets): "fast", "balanced" (the default: key frames,
    # windows around the people followed between them) or "accurate" (the full detection on every frame)
    preset: str = DEFAULT_PRESET
    max_people: int | None = None  # keep the N tracks covering the most frames
    single: bool = False  # the reference's behaviour: one person, the top-scoring box per frame
    focal_length: float | None = None  # pixels; None: ``fov``, else the lifter's default field of view
    fov: float | None = None  # degrees across the longer side; exclusive with focal_length
    distortion: str | tuple[float, ...] | None = None  # the lens: OpenCV k1,k2,p1,p2[,k3[,k4,k5,k6]]
    fisheye: str | tuple[float, ...] | None = None  # or the lens: OpenCV fisheye k1,k2,k3,k4
    lifter: str | None = None  # path to a lifter .safetensors; None: the shipped model
    flip: bool = True  # test-time flip averaging in the lifter
    refine: bool = True  # pull the lifted poses onto the keypoints' rays and steady bone lengths (lift.refine)
    render: bool = False  # write render.mp4
    export_vp3d: bool = False  # write <stem>.npy, the reference's --viz-export array for the main track
    export: tuple[str, ...] = ()  # further formats written beside poses.npz (wildpose.export.FORMATS: bvh, trc, ...)
    static_camera: bool = False  # skip the camera-rotation estimate (wildpose.camera_motion): the camera is fixed
    fps: float | None = None  # frame rate of a still image or a folder of images (default 30); videos keep theirs
    # offline tracklet linking (wildpose.link): the longest gap in seconds it bridges; 0 turns it off; None: the
    # TrackerConfig default, except with the causal (streaming) lifter, whose runs keep the online tracker's ids
    link_max_gap: float | None = None

    def __post_init__(self):
        # conflicting or malformed camera options fail here, before any video is read (the size is a stand-in:
        # only the principal point depends on it)
        camera_for(self, (1, 1))
        from .detect2d.presets import get_preset

        get_preset(self.preset)  # an unknown name fails here, before any video is read
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps: expected a positive frame rate for images, got {self.fps}")
        if self.export:  # an unknown format fails here too, not after the first video's minutes of work
            from .export import parse_formats

            object.__setattr__(self, "export", tuple(parse_formats(self.export)))


def camera_for(options: RunOptions, image_size: tuple[int, int]):
    """The CameraIntrinsics ``options`` describe for a video of ``image_size`` (width, height) pixels."""
    from .camera import CameraIntrinsics

    return CameraIntrinsics.parse_cli(image_size, focal=options.focal_length, fov=options.fov,
                                      distortion=options.distortion, fisheye=options.fisheye)


@dataclass
class VideoSummary:
    """What happened to one video, for the CLI's one-line summary."""

    path: str
    out_dir: Path
    frames: int
    people: int
    seconds: float
    files: list[str]
    damaged_frames: int = 0  # frames the decoder rejected, left out (video.DecodeReport)
    retimed_frames: int = 0  # frames timed by the frame rate: the container's timestamps were missing or repeated
    skipped: bool = False  # --resume found the output complete and up to date: nothing was done

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def _tracker_config(options: RunOptions):
    from .track import TrackerConfig

    link = options.link_max_gap
    if link is None:
        link = 0.0 if options.lifter == "causal" else TrackerConfig().link_max_gap
    return dataclasses.replace(TrackerConfig(), max_people=options.max_people, single=options.single,
                               link_max_gap=link)


def make_detector(options: RunOptions = RunOptions(), *, num_threads: int | None = None):
    """The 2D detector for ``options``. It keeps people down to the tracker's second-chance score, so that
    low-scoring detections (small or occluded people) can still continue a track they belong to.

    With a preset that follows people between key frames (``detect2d.presets``), the detector is wrapped in a
    ``detect2d.keyframes.KeyframeDetector``: it keeps state from frame to frame, and ``detect_video`` resets it
    at the start of each video. ``num_threads``: the interpreter's threads (default: the backend's; a worker of a
    distributed run is told how many are its share of the machine)."""
    from .detect2d import create_detector
    from .detect2d.keyframes import KeyframeDetector
    from .detect2d.presets import get_preset
    from .track import TrackerConfig

    preset = get_preset(options.preset)
    kwargs = {"score_threshold": TrackerConfig().low_score, **preset.detector_options, **options.detector_options}
    if num_threads is not None:
        kwargs["num_threads"] = int(num_threads)
    detector = create_detector(options.detector, **kwargs)
    if preset.keyframes is not None and hasattr(detector, "discover") and hasattr(detector, "run_model"):
        detector = KeyframeDetector(detector, preset.keyframes)
    return detector


def detect_video(path: str | os.PathLike, detector=None, *, start: float | None = None, end: float | None = None,
                 progress: Progress | None = None, camera_motion=None, fps: float | None = None,
                 report: DecodeReport | None = None, colours: bool = True) -> tuple[Detections, np.ndarray, VideoInfo]:
    """Decode a video and find everyone in every frame.

    Returns (Detections: the people of every frame, timestamps (T,) float64 seconds, VideoInfo). Frames are
    streamed: memory holds about a dozen frames at a time (decoded ahead, or waiting to be measured) plus the
    keypoints, in two growing arrays. ``camera_motion`` (a
    ``wildpose.camera_motion.CameraMotionEstimator``) is fed every frame with the people found in it, in the
    same pass. ``fps``: the frame rate of a still image or a folder of images (``video.read_frames``);
    ``report`` is filled with what decoding repaired (damaged frames left out, frames retimed).
    ``colours``: also measure each person's clothing colours in the same pass
    (``link.colour_descriptors``, 9 numbers a detection, kept in ``Detections.colours``) for tracklet linking.

    Three threads share the work: one decodes a few frames ahead, this one runs the detector, and one measures
    colours and camera motion of each frame in order while the detector looks at the next. A detector with a
    ``reset()`` (one that follows people between frames, ``detect2d.keyframes``) is reset first.
    """
    from .link import colour_descriptors
    from .video import probe, read_frames

    info = probe(path, fps=fps)
    detector = detector if detector is not None else make_detector()
    if hasattr(detector, "reset"):  # a detector that follows people from frame to frame starts afresh
        detector.reset()
    people = Detections()
    timestamps: list[float] = []
    total = _expected_frames(info, start, end)

    def measure(image: np.ndarray, found: People2D) -> None:
        # in frame order on one worker thread, while the model looks at the next frame
        people.append(found, colour_descriptors(image, found.keypoints) if colours else None)
        if camera_motion is not None:
            camera_motion.update(image, found)

    frames = read_frames(path, start=start, end=end, fps=fps, report=report)
    with _Prefetch(frames, depth=4) as decoded, ThreadPoolExecutor(1, thread_name_prefix="wildpose-measure") as pool:
        pending: deque = deque()
        # a detector that follows people (detect2d.keyframes) takes the frames itself: it restarts on the video's
        # clock and, in crowds, interpolates frames between detected ones; any other looks at one frame at a time
        found_in = (detector.follow(decoded) if hasattr(detector, "follow")
                    else ((frame, detector(frame.image)) for frame in decoded))
        for frame, found in found_in:
            pending.append(pool.submit(measure, frame.image, found))
            timestamps.append(frame.timestamp)
            while pending and (pending[0].done() or len(pending) > 8):
                pending.popleft().result()  # re-raises the worker's error here
            if progress is not None:
                progress(len(timestamps), total)
        while pending:
            pending.popleft().result()
    if not len(people):
        raise VideoError("no frames decoded" + (" in the selected segment" if start or end else ""), path)
    return people, np.asarray(timestamps, np.float64), info


class _Prefetch:
    """Iterate ``iterable`` on a thread, ``depth`` items ahead of the consumer (decoding overlaps the model).

    Items and the iterable's exception, if any, arrive in order. Leaving the ``with`` block early (an error,
    an interrupt) stops the thread and closes the iterable on it."""

    _END = object()

    def __init__(self, iterable, depth: int = 4):
        self._iterable = iterable
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wildpose-decode", daemon=True)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._iterable:
                if not self._put((item, None)):
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((self._END, exc))
            return
        finally:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        self._put((self._END, None))

    def __enter__(self):
        self._thread.start()
        return self

    def __iter__(self):
        while True:
            item, exc = self._queue.get()
            if item is self._END:
                if exc is not None:
                    raise exc
                return
            yield item

    def __exit__(self, *exc_info):
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
        return False


def _expected_frames(info: VideoInfo, start: float | None, end: float | None) -> int | None:
    if info.num_frames is None and info.duration is None:
        return None
    if start is None and end is None:
        return info.num_frames or (round(info.duration * info.fps) if info.duration else None)
    if info.duration is None:
        return None
    span = min(end if end is not None else info.duration, info.duration) - max(start or 0.0, 0.0)
    return max(0, round(span * info.fps))


def track_video(people: Sequence[People2D], timestamps: np.ndarray, options: RunOptions = RunOptions(),
                path: str | os.PathLike | None = None, image_size: tuple[int, int] | None = None) -> Tracks:
    """Follow people over time; NoPersonError when nobody is found. ``image_size`` (the video's, width and
    height) lets linking bring back a person who stepped out of the frame."""
    from .track import track_people

    config = _tracker_config(options)
    tracks = track_people(people, timestamps, config, image_size=image_size)
    if len(tracks) == 0:
        seen = _frames_with_people(people, config.min_score)
        if seen:
            needed = min(config.min_track_length, len(timestamps))
            raise NoPersonError(f"people were detected in {seen} of {len(timestamps)} frames, but no one was "
                                f"followed through the {needed} frames a track needs (too brief, or "
                                "moving too fast to follow)", path)
        raise NoPersonError(f"no person found in {len(timestamps)} frame{'' if len(timestamps) == 1 else 's'}", path)
    return tracks


def _frames_with_people(people: Sequence[People2D], min_score: float) -> int:
    """How many frames hold a detection confident enough to start a track."""
    detections = Detections.from_frames(people)
    if detections.num_detections == 0:
        return 0
    confident = detections.boxes[:, 4] >= min_score
    frame_of = np.repeat(np.arange(len(detections)), np.diff(detections.frame_offsets))
    return int(len(np.unique(frame_of[confident])))


def keypoints_for_lifting(tracks: Tracks, intrinsics, path: str | os.PathLike | None = None) -> np.ndarray:
    """The tracks' keypoint rows undistorted for ``intrinsics`` (pixels of an ideal pinhole camera), (N, 17, 3).

    The few points the lens model cannot place keep their detected position (the lifter needs every joint);
    WildposeError naming ``path`` when that is more than 1% of them: the calibration does not fit the video.
    """
    from .camera import undistort_keypoints

    keypoints = undistort_keypoints(tracks.keypoints_2d, intrinsics)
    if keypoints is tracks.keypoints_2d:  # a pinhole camera: nothing moved
        return keypoints
    lost = np.isnan(keypoints) & ~np.isnan(tracks.keypoints_2d)
    if lost.any():
        share = lost[..., 0].sum() / max(1, np.isfinite(tracks.keypoints_2d[..., 0]).sum())
        if share > 0.01:
            raise WildposeError(f"the {intrinsics.model} lens model cannot place {share:.1%} of the keypoints: "
                                "the focal length or coefficients do not fit this video (its resolution, its mode)",
                                path)
        keypoints = np.where(lost, tracks.keypoints_2d, keypoints)
    return keypoints


def lift_tracks(tracks: Tracks, image_size: tuple[int, int], fps: float, intrinsics=None, *, model=None,
                flip: bool = True, refine: bool = True, keypoints: np.ndarray | None = None,
                path: str | os.PathLike | None = None) -> np.ndarray:
    """3D poses for every track: rows (N, 17, 3) float32 metres, camera axes, root-relative, one per row of
    ``tracks``.

    Each run of a track's consecutive frames is lifted on its own, with its own timestamps, so the lifter's
    temporal resampling sees the true time between frames (variable frame rate included). ``intrinsics``
    (a wildpose.camera.CameraIntrinsics; default: ``CameraIntrinsics.default(image_size)``) gives the lens,
    focal length and principal point: the keypoints are undistorted (``keypoints_for_lifting``, unless
    ``keypoints`` gives them already undistorted) and normalised with them.
    """
    from .camera import CameraIntrinsics
    from .lift import lift, load_lifter

    model = model if model is not None else load_lifter()
    if intrinsics is None:
        intrinsics = CameraIntrinsics.default(image_size)
    if keypoints is None:
        keypoints = keypoints_for_lifting(tracks, intrinsics, path)
    poses = np.full((tracks.num_rows, 17, 3), np.nan, np.float32)
    for _, rows in tracks.spans():
        poses[rows] = lift(keypoints[rows], image_size, fps, focal_length=intrinsics.focal_length,
                           principal_point=intrinsics.principal_point, model=model,
                           timestamps=tracks.timestamps[tracks.frame_index[rows]], flip=flip, refine=refine)
    return poses


def process_video(path: str | os.PathLike, options: RunOptions = RunOptions(), *, detector=None, model=None,
                  progress: Progress | None = None,
                  report: DecodeReport | None = None) -> tuple[Result, VideoInfo]:
    """Video file (or still image, or folder of images) -> Result (nothing written). ``report`` receives what
    decoding repaired (``video.DecodeReport``)."""
    from .lift import load_lifter

    model = model if model is not None else load_lifter(options.lifter)
    detector = detector if detector is not None else make_detector(options)  # the preset and detector options
    estimator = None
    if not options.static_camera:
        from .camera_motion import CameraMotionEstimator

        estimator = CameraMotionEstimator(lambda size: camera_for(options, size))
    detections, timestamps, info = detect_video(path, detector, start=options.start, end=options.end,
                                                progress=progress, camera_motion=estimator, fps=options.fps,
                                                report=report)
    motion = estimator.result() if estimator is not None else None
    return result_from_detections(detections, timestamps, info, options, model=model, motion=motion, path=path), info


def result_from_detections(detections: Detections, timestamps: np.ndarray, info: VideoInfo,
                           options: RunOptions = RunOptions(), *, model=None, motion=None,
                           path: str | os.PathLike | None = None) -> Result:
    """Everything after the 2D stage: the people of every frame (``detect_video``'s Detections and (T,)
    timestamps) -> tracks -> 3D -> world -> Result. ``motion``: the camera's rotation over those frames (a
    ``camera_motion.CameraMotion``, one entry per frame), or None for a static camera (``options.static_camera``).

    ``process_video`` is ``detect_video`` followed by this; the distributed runner (``wildpose.distributed``)
    detects segments of a long video on several machines and calls this once on the joined detections.
    """
    from .lift import load_lifter
    from .world import locate_people

    model = model if model is not None else load_lifter(options.lifter)
    tracks = track_video(detections, timestamps, options, path, info.image_size)
    del detections  # the tracks hold what is kept of them
    intrinsics = camera_for(options, info.image_size)
    rotations, static, held = _camera_motion(motion, tracks.num_frames, path)
    keypoints = keypoints_for_lifting(tracks, intrinsics, path)  # undistorted once, for both networks
    poses = lift_tracks(tracks, info.image_size, info.fps, intrinsics, model=model, flip=options.flip,
                        refine=options.refine, keypoints=keypoints)
    world = locate_people(tracks, keypoints, poses, info.image_size, info.fps, intrinsics, flip=options.flip,
                          camera_rotations=rotations)
    del keypoints
    camera = Camera(intrinsics, focal_length_known=options.focal_length is not None or options.fov is not None,
                    rotation=world.rotation, position=world.position, rotations=world.rotations, static=static,
                    rotation_held=held)
    return Result.from_tracks(tracks, poses, info.fps, info.image_size, trajectory=world.trajectory,
                              poses_world=world.poses_world, camera=camera)


def _camera_motion(motion, frames: int, path) -> tuple[np.ndarray | None, bool, np.ndarray]:
    """The rotations to hand to ``locate_people`` (None for a static camera, which keeps the static alignment
    exactly), whether the camera is static, and the (T,) bool frames whose rotation was held."""
    if motion is None:
        return None, True, np.zeros(frames, bool)
    if len(motion) != frames:  # the estimator saw every decoded frame: anything else is a wiring error
        raise WildposeError(f"camera motion has {len(motion)} frames, the tracks {frames}", path)
    static = motion.is_static()
    pan, tilt = motion.pan_tilt_deg[:, 0], motion.pan_tilt_deg[:, 1]
    log.info("camera %s: turns up to %.1f degrees from the first frame (pan %.1f..%.1f, tilt %.1f..%.1f), "
             "%d of %d frames held", "static" if static else "turning", motion.max_angle_deg, pan.min(), pan.max(),
             tilt.min(), tilt.max(), int(motion.held.sum()), len(motion))
    return (None if static else motion.rotations), bool(static), motion.held.copy()


def main_track_poses(result: Result) -> np.ndarray:
    """The reference's export for the main track: (T, 17, 3) float32, every frame of the video.

    Frames before/after the track are held at its first/last pose, as the reference's dataset preparation
    holds the edges; frames inside are the track's own (interpolated where it had short gaps).
    """
    rows = result.nearest_rows(result.main_track, np.arange(result.num_frames))
    return np.ascontiguousarray(result.poses_3d[rows], np.float32)


def output_dir_for(path: str | os.PathLike, out_root: str | os.PathLike) -> Path:
    """The output folder of one input run on its own: ``out_root/<stem>`` (a folder of images: its name)."""
    return Path(out_root) / Path(path).stem


def output_dirs(paths: Sequence[str | os.PathLike], out_root: str | os.PathLike) -> list[Path]:
    """The output folder of each input of a batch: ``out_root/<stem>``, unless two inputs share a stem.

    Inputs whose stems collide (compared case-insensitively: ``Clip.MP4`` and ``clip.mkv`` would share a folder
    on macOS and Windows) each get ``<stem>-<8 hex digits>`` instead, the digits hashing the input's absolute
    path, so that no output replaces another and a re-run (``--resume``) finds the same folders again.
    """
    stems = [Path(p).stem for p in paths]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem.casefold()] = counts.get(stem.casefold(), 0) + 1
    out = []
    for path, stem in zip(paths, stems):
        if counts[stem.casefold()] > 1:
            tag = hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:8]
            out.append(Path(out_root) / f"{stem}-{tag}")
        else:
            out.append(Path(out_root) / stem)
    return out


def _lifter_sha256(model) -> str | None:
    config = getattr(model, "config", None)
    return config.get("sha256") if isinstance(config, dict) else None


def run_video(path: str | os.PathLike, out_root: str | os.PathLike, options: RunOptions = RunOptions(), *,
              detector=None, model=None, progress: Progress | None = None,
              render_progress: Progress | None = None, out_dir: str | os.PathLike | None = None,
              resume: bool = False, process: Callable | None = None) -> VideoSummary:
    """Process one video and write ``out_root/<stem>/`` (poses.npz, manifest.json, and render.mp4 / <stem>.npy
    / exports if asked), or ``out_dir`` when given (a batch's folders come from ``output_dirs``).

    The folder appears complete or not at all; its ``manifest.json`` (written last) records the input, the
    options and the files. With ``resume``, a folder whose manifest matches this input and these options is
    left as it is (``VideoSummary.skipped``). Raises WildposeError subclasses for bad input, and for outputs
    that cannot be written (a read-only folder, a full disk), naming the folder.

    ``process``: how the Result is made, called as ``process(path, options, detector=, model=, progress=,
    report=) -> (Result, VideoInfo)``; default ``process_video``. The distributed runner passes one that joins
    the segments its workers detected (``wildpose.distributed``), so that its folders are written as these are.
    """
    from .atomic import atomic_dir, remove_stale_partials
    from .formats.result import save_result, save_vp3d_export
    from .lift import load_lifter
    from .manifest import MANIFEST_NAME, is_up_to_date, read_manifest, write_manifest

    t0 = time.perf_counter()
    path = Path(path)
    if not path.exists():
        raise VideoError("no such file", path)
    out_dir = Path(out_dir) if out_dir is not None else output_dir_for(path, out_root)
    model = model if model is not None else load_lifter(options.lifter)
    lifter_sha = _lifter_sha256(model)
    from .video import IMAGE_SUFFIXES

    # --fps only times images: a video's output does not depend on it, so it must not force a redo
    made_with = options if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES \
        else dataclasses.replace(options, fps=None)
    remove_stale_partials(out_dir.parent, out_dir.name)  # what a killed run of this output left behind
    if resume:
        done, why = is_up_to_date(out_dir, path, made_with, lifter_sha)
        if done:
            manifest = read_manifest(out_dir)
            return VideoSummary(str(path), out_dir, int(manifest.get("frames", 0)), int(manifest.get("people", 0)),
                                time.perf_counter() - t0, sorted(manifest["files"]), skipped=True)
        if out_dir.exists():
            log.info("%s: redoing %s (%s)", path, out_dir, why)
    report = DecodeReport()
    result, info = (process or process_video)(path, options, detector=detector, model=model, progress=progress,
                                              report=report)
    files = ["poses.npz"]
    try:
        with atomic_dir(out_dir) as tmp:
            save_result(result, tmp / "poses.npz")
            if options.export_vp3d:
                save_vp3d_export(main_track_poses(result), tmp / f"{path.stem}.npy")
                files.append(f"{path.stem}.npy")
            if options.export:
                from .export import export_result

                files.extend(p.name for p in export_result(result, tmp, options.export, stem=path.stem))
            if options.render:
                from .render import render_video

                render_video(path, result, tmp / "render.mp4", start=options.start, end=options.end,
                             progress=render_progress)
                files.append("render.mp4")
            write_manifest(tmp, input_path=path, options=made_with, lifter_sha256=lifter_sha, files=files,
                           frames=result.num_frames, people=len(result.track_ids), damaged_frames=report.damaged,
                           retimed_frames=report.retimed)
    except OSError as exc:  # a read-only folder, a full disk, a lost network share: the output's problem
        reason = exc.strerror or str(exc)
        # named by the input (which one of the batch failed) and the output folder (where the problem is)
        raise WildposeError(f"cannot write {out_dir}/: {reason}" +
                            (f" ({exc.filename})" if exc.filename and not str(exc.filename).startswith(
                                os.fspath(out_dir.parent)) else ""), path) from exc
    seconds = time.perf_counter() - t0
    return VideoSummary(str(path), out_dir, result.num_frames, len(result.track_ids), seconds,
                        files + [MANIFEST_NAME], damaged_frames=report.damaged, retimed_frames=report.retimed)


def find_videos(inputs: Sequence[str | os.PathLike], glob: str | None = None) -> list[Path]:
    """Expand files and folders into a list of inputs (folders: ``glob``, default every file).

    A folder holding only images (``video.is_image_sequence``) is one input, a sequence of frames; any other
    folder is a batch of its files (an image among them is a one-frame input). An input named twice (the same
    file by two paths, or in a folder and by name) is kept once.
    """
    from .video import is_image_sequence

    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and not (glob is None and is_image_sequence(p)):
            found.extend(sorted(q for q in p.glob(glob or "*") if q.is_file() and not q.name.startswith(".")))
        else:
            found.append(p)  # missing files are reported per file by run_video, not here
    unique: list[Path] = []
    seen: set[str] = set()
    for p in found:
        key = os.path.realpath(p)
        if key in seen:
            log.warning("%s: named twice; processed once", p)
            continue
        seen.add(key)
        unique.append(p)
    return unique


__all__ = ["RunOptions", "VideoSummary", "detect_video", "track_video", "lift_tracks", "process_video",
           "result_from_detections",
           "run_video", "find_videos", "main_track_poses", "camera_for", "WildposeError", "output_dirs",
           "output_dir_for"]
