"""What a worker of a distributed run does, as plain functions (no Ray here: ``ray_runner`` wraps them in tasks).

Three kinds of work: a whole video (``run_whole``: ``pipeline.run_video`` as a local run calls it), one segment
of a long video (``detect_segment``: decode, 2D people, colours and camera rotation of its frames, written to a
segment file), and the join of a long video's segments (``finish_segments``: everything after the 2D stage,
once, on the joined detections, written through ``run_video`` so that its folder is the one a local run writes).

Workers read videos by path and write their results themselves: only small records (summaries, error lines,
file names) travel back to the driver. The models are loaded once per worker process (``worker_models``) and
kept for the tasks that follow; the process's threads (the detector's interpreter, OpenCV, BLAS) are set to its
share of the machine before they are.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import VideoError, WildposeError
from .segments import Segment, SegmentOutput, segment_dir, stitch

log = logging.getLogger(__name__)

_MODELS: dict = {}  # (options key, threads) -> (detector, lifter): one entry per worker process in a batch


@dataclass
class Outcome:
    """What one task did, sent back to the driver (small: no arrays).

    ``summary`` (pipeline.VideoSummary) for a finished video; ``error`` the one line a local run prints for a
    failed input (``<path>: <problem>``); ``segment_file`` for a segment; ``pid`` and ``models_loaded`` (whether
    this task had to load the models: once per worker process) say where it ran.
    """

    path: str
    summary: object | None = None
    error: str | None = None
    segment_file: str | None = None
    frames: int = 0
    skipped: bool = False
    pid: int = field(default_factory=os.getpid)
    models_loaded: bool = False
    seconds: float = 0.0
    segments: int = 0  # a split video's join: how many segments it joined (its ``seconds`` are the join's alone)
    threads: dict | None = None  # what the worker's libraries were told: detector, opencv, omp (the environment)

    def __post_init__(self):
        if self.threads is None and _MODELS:
            import cv2

            detector = next(iter(_MODELS.values()))[0]
            detector = getattr(detector, "detector", detector)  # the model inside a KeyframeDetector
            self.threads = {"detector": getattr(detector, "_num_threads", None), "opencv": cv2.getNumThreads(),
                            "omp": os.environ.get("OMP_NUM_THREADS")}


def limit_threads(threads: int) -> None:
    """Hold this process's compute libraries to ``threads`` threads (OpenCV, and BLAS/OpenMP where threadpoolctl
    is there; the environment variables are set by the runner before the process starts)."""
    import cv2

    cv2.setNumThreads(int(threads))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(int(threads))


def worker_models(options, threads: int):
    """(detector, lifter, loaded now?) for ``options``: loaded on a worker's first task, reused by the next."""
    from ..lift import load_lifter
    from ..pipeline import make_detector

    key = (options.detector, json.dumps(options.detector_options, sort_keys=True, default=str), options.lifter,
           int(threads))
    if key in _MODELS:
        return (*_MODELS[key], False)
    limit_threads(threads)
    _MODELS.clear()  # a worker serves one batch's options at a time
    _MODELS[key] = (make_detector(options, num_threads=threads), load_lifter(options.lifter))
    return (*_MODELS[key], True)


def _failed(path, exc: WildposeError, started: float, loaded: bool) -> Outcome:
    return Outcome(str(path), error=str(exc), models_loaded=loaded, seconds=time.perf_counter() - started)


def run_whole(path: str, out_root: str, out_dir: str, options, *, threads: int = 1, resume: bool = False,
              progress: Callable | None = None) -> Outcome:
    """One video, start to finish, as a local run does it (``pipeline.run_video``)."""
    from ..pipeline import run_video

    t0 = time.perf_counter()
    detector, model, loaded = worker_models(options, threads)
    try:
        summary = run_video(path, out_root, options, detector=detector, model=model, progress=progress,
                            out_dir=out_dir, resume=resume)
    except WildposeError as exc:
        return _failed(path, exc, t0, loaded)
    return Outcome(str(path), summary=summary, frames=summary.frames, skipped=summary.skipped, models_loaded=loaded,
                   seconds=time.perf_counter() - t0)


def _segment_meta(path, options, segment: Segment) -> dict:
    from .. import __version__
    from ..manifest import input_identity, options_record

    return {"wildpose": __version__, "input": input_identity(path), "options": options_record(options),
            "segment": segment.to_dict()}


def detect_segment(path: str, out_dir: str, options, segment: Segment, *, threads: int = 1, resume: bool = False,
                   progress: Callable | None = None) -> Outcome:
    """Decode one segment, find everyone in it (2D, colours, camera rotation) and write its segment file
    (``segments.segment_dir(out_dir)/<index>-of-<count>.npz``). With ``resume``, a file already there made from
    the same input, options and segment is kept."""
    from ..camera_motion import CameraMotionEstimator
    from ..pipeline import camera_for, detect_video
    from ..types import DecodeReport

    t0 = time.perf_counter()
    target = segment_dir(out_dir) / f"{segment.name}.npz"
    try:
        meta = _segment_meta(path, options, segment)
    except OSError as exc:
        return _failed(path, VideoError(f"cannot read ({exc.strerror or exc})", path), t0, False)
    saved = SegmentOutput.read_meta(target) if resume else None
    if saved is not None and all(saved.get(k) == v for k, v in meta.items()):
        return Outcome(str(path), segment_file=str(target), skipped=True, seconds=time.perf_counter() - t0)
    detector, _, loaded = worker_models(options, threads)
    estimator = None if options.static_camera else CameraMotionEstimator(lambda size: camera_for(options, size))
    report = DecodeReport()
    seen = [0]

    def counted(done: int, total: int | None) -> None:
        seen[0] = done
        if progress is not None:
            progress(done, total)

    try:
        try:
            detections, timestamps, _ = detect_video(path, detector, start=segment.start, end=segment.end,
                                                     progress=counted, camera_motion=estimator, fps=options.fps,
                                                     report=report)
        except VideoError:
            if segment.index == 0 or seen[0] or report.damaged:
                raise
            # the container's duration promised frames this far that the stream does not hold: an empty tail
            import numpy as np

            from ..types import Detections

            detections, timestamps = Detections(), np.zeros(0)
        motion = estimator.result() if estimator is not None and len(timestamps) else None
        output = SegmentOutput.from_detections(detections, timestamps, motion, damaged=report.damaged,
                                               retimed=report.retimed)
        output.save(target, meta)
    except WildposeError as exc:
        return _failed(path, exc, t0, loaded)
    except OSError as exc:
        return _failed(path, WildposeError(f"cannot write {target}: {exc.strerror or exc}", path), t0, loaded)
    return Outcome(str(path), segment_file=str(target), frames=len(timestamps), models_loaded=loaded,
                   seconds=time.perf_counter() - t0)


def finish_segments(path: str, out_root: str, out_dir: str, options, segments: list[Segment],
                    parts: list[Outcome], *, threads: int = 1, keep_segments: bool = False) -> Outcome:
    """Join a long video's segments and write its output folder (``run_video`` with the joined detections in
    place of decoding). A segment that failed fails the video with its own line. Where decoding had to time
    frames by the frame rate (a container whose timestamps are missing), segments cannot be joined by time, and
    the video is processed here from start to finish instead."""
    from ..pipeline import result_from_detections, run_video
    from ..video import probe

    t0 = time.perf_counter()
    for part in parts:
        if part.error is not None:
            return Outcome(str(path), error=part.error, seconds=time.perf_counter() - t0)
    detector, model, loaded = worker_models(options, threads)

    def joined(path, options, *, detector, model, progress, report):
        outputs = [SegmentOutput.load(p.segment_file)[0] for p in parts]
        if any(out.retimed for out in outputs):
            log.info("%s: frames timed by the frame rate; processing it whole", path)
            from ..pipeline import process_video

            return process_video(path, options, detector=detector, model=model, report=report)
        info = probe(path, fps=options.fps)
        try:
            detections, timestamps, motion = stitch(outputs, segments)
        except ValueError as exc:
            raise WildposeError(f"segments do not join: {exc}", path) from None
        if not len(timestamps):
            raise VideoError("no frames decoded" + (" in the selected segment" if options.start or options.end
                                                    else ""), path)
        report.damaged = sum(out.damaged for out in outputs)
        del outputs
        result = result_from_detections(detections, timestamps, info, options, model=model, motion=motion, path=path)
        return result, info

    try:
        summary = run_video(path, out_root, options, detector=detector, model=model, out_dir=out_dir,
                            process=joined)
    except WildposeError as exc:
        return _failed(path, exc, t0, loaded)
    # the video's processing time is its segments' and the join's (the frames/s a local run reports is per
    # worker too); the wall time of a split video depends on how many workers took its segments
    summary.seconds = sum(p.seconds for p in parts) + (time.perf_counter() - t0)
    if not keep_segments:
        folder = segment_dir(out_dir)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            folder.parent.rmdir()  # the hidden parent, once no other video's segments are in it
        except OSError:
            pass
    return Outcome(str(path), summary=summary, frames=summary.frames, models_loaded=loaded,
                   seconds=time.perf_counter() - t0, segments=len(segments))


__all__ = ["Outcome", "run_whole", "detect_segment", "finish_segments", "worker_models", "limit_threads"]
