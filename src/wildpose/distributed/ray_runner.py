"""``wildpose run --ray``: a batch of videos over a Ray cluster (or a local Ray instance on this machine).

One task per video; a video longer than ``RayConfig.segment_seconds`` becomes one task per segment plus a task
that joins them (``segments``, ``work``). Tasks read videos by path and write results into the output folder
themselves (local disk on one machine, a shared file system on many); the object store carries only small
records. Each task asks Ray for ``threads`` CPUs and runs its libraries on that many threads, so a node runs
cores / threads tasks at once and none oversubscribes it. The models are loaded once per worker process and
kept for its next tasks. A task that raises something other than a bad input's WildposeError is retried once,
and so is one whose worker died (a crash, a lost node: Ray resubmits it); bad inputs come back as their one
error line, as in a local run. Progress (videos and frames) is reported through a small actor the driver polls.
See docs/SCALING.md.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UsageError, WildposeError
from ..detect2d.presets import restart_seconds
from .segments import DEFAULT_OVERLAP_SECONDS, DEFAULT_SEGMENT_SECONDS, Segment, plan_segments
from .work import Outcome

log = logging.getLogger(__name__)

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Set to 0 before Ray is imported, a Ray instance started here stays single-node on 127.0.0.1 (Ray's own
switch; otherwise it advertises this machine's network address)."""

_PROGRESS_EVERY = 0.5  # seconds between a worker's progress reports


@dataclass(frozen=True)
class RayConfig:
    """How ``run_batch`` uses Ray.

    address : None starts a Ray instance on this machine for the batch (stopped after it), on 127.0.0.1;
        anything else is passed to ``ray.init`` (``auto``, ``HOST:6379``, ``ray://HOST:10001``).
    workers : tasks at once on the local instance (default: this machine's cores // threads); on a cluster the
        cluster's CPUs decide.
    threads : CPUs (and library threads) per task (default 1).
    segment_seconds, overlap_seconds : videos longer than this are split (``segments.plan_segments``).
    max_retries : how often a failed task is tried again (a raised exception, or its worker lost).
    max_in_flight : tasks submitted at a time (default twice the cluster's task slots): the driver and the head
        hold a window of the batch, not all of it.
    keep_segments : keep the segment files after the join (for inspection).
    """

    address: str | None = None
    workers: int | None = None
    threads: int = 1
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS
    max_retries: int = 1
    max_in_flight: int | None = None
    keep_segments: bool = False
    log_to_driver: bool = False

    def __post_init__(self):
        if int(self.threads) < 1:
            raise UsageError(f"threads: expected >= 1, got {self.threads}")
        if self.workers is not None and int(self.workers) < 1:
            raise UsageError(f"workers: expected >= 1, got {self.workers}")
        if not self.segment_seconds > 0:
            raise UsageError(f"segment length: expected a positive number of seconds, got {self.segment_seconds}")


@dataclass
class BatchProgress:
    """What the driver knows of a batch: inputs finished (done or failed) of all, frames decoded so far of those
    expected (the inputs whose length is not known count 0), and the tasks running now (task key -> worker pid)."""

    videos_done: int
    videos_total: int
    frames_done: int
    frames_total: int
    busy: dict[str, int] = field(default_factory=dict)


def _import_ray(local: bool):
    if local and "ray" not in __import__("sys").modules:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'wildpose[ray]'") from None
    return ray


def _thread_env(threads: int) -> dict[str, str]:
    n = str(int(threads))
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n, "NUMEXPR_NUM_THREADS": n,
            "VECLIB_MAXIMUM_THREADS": n}


def connect(config: RayConfig):
    """Join (or start) the Ray instance ``config`` names; returns (ray module, whether this call started it)."""
    ray = _import_ray(config.address is None)
    if ray.is_initialized():
        return ray, False
    runtime_env = {"env_vars": _thread_env(config.threads)}
    import builtins

    _PRINT_BEFORE_RAY["print"] = builtins.print  # put back by shutdown()
    if not config.log_to_driver:  # Ray's start-up notices are not the batch's business
        logging.getLogger("ray").setLevel(logging.ERROR)
    if config.address is None:
        workers = config.workers or max(1, (os.cpu_count() or 1) // config.threads)
        ray.init(address="local", num_cpus=workers * config.threads, include_dashboard=False,
                 log_to_driver=config.log_to_driver, runtime_env=runtime_env, configure_logging=False,
                 object_store_memory=128 * 2 ** 20)
    else:
        try:
            ray.init(address=config.address, log_to_driver=config.log_to_driver, runtime_env=runtime_env,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:  # nothing there, or not a Ray cluster
            raise WildposeError(f"cannot join the Ray cluster at {config.address}: {exc}") from None
    return ray, True


def shutdown(ray, print_before=None) -> None:
    """``ray.shutdown()``, leaving ``builtins.print`` as it was before Ray started (``print_before``, default: as
    it was when ``connect`` started Ray): Ray puts its own wrapper there (it redirects worker output), which would
    outlive Ray, print through it and break pickling ``print``."""
    import builtins

    kept = print_before or _PRINT_BEFORE_RAY.get("print") or builtins.print
    try:
        ray.shutdown()
    finally:
        builtins.print = kept


_PRINT_BEFORE_RAY: dict = {}


_REMOTES: dict = {}


def _remotes(ray):
    """The Ray task and actor definitions (made once, when Ray is first used)."""
    if _REMOTES:
        return _REMOTES

    @ray.remote(num_cpus=0)
    class Progress:
        def __init__(self):
            self.frames: dict[str, int] = {}
            self.busy: dict[str, int] = {}

        def update(self, key: str, frames: int, pid: int) -> None:
            self.frames[key] = frames
            self.busy[key] = pid

        def done(self, key: str) -> None:
            self.busy.pop(key, None)

        def snapshot(self):
            return sum(self.frames.values()), dict(self.busy)

    class Reporter:
        """A task's progress callback: a report at most every half second, and a last one at the end. Never waited
        for: a task blocked in ``ray.get`` lends its CPU back to Ray, which may start another worker process."""

        def __init__(self, progress, key: str):
            self.progress, self.key, self.last, self.done = progress, key, 0.0, 0
            progress.update.remote(key, 0, os.getpid())

        def __call__(self, done: int, total: int | None) -> None:
            self.done = done
            now = time.monotonic()
            if now - self.last >= _PROGRESS_EVERY:
                self.last = now
                self.progress.update.remote(self.key, done, os.getpid())

        def close(self) -> None:
            self.progress.update.remote(self.key, self.done, os.getpid())
            self.progress.done.remote(self.key)  # after the update: one caller's actor calls run in order

    def reported(progress, key, work, *args, **kwargs):
        """``work(*args, progress=reporter, **kwargs)`` with a reporter of ``key``'s frames, closed however it ends."""
        report = Reporter(progress, key)
        try:
            return work(*args, progress=report, **kwargs)
        finally:
            report.close()

    def whole(progress, key, path, out_root, out_dir, options, threads, resume):
        from .work import run_whole

        return reported(progress, key, run_whole, path, out_root, out_dir, options, threads=threads, resume=resume)

    def segment(progress, key, path, out_dir, options, seg, threads, resume):
        from .work import detect_segment

        return reported(progress, key, detect_segment, path, out_dir, options, seg, threads=threads, resume=resume)

    def finish(progress, key, path, out_root, out_dir, options, segments, threads, keep, *parts):
        from .work import finish_segments

        Reporter(progress, key + " join")  # registers the join as running on this worker; no frames to report
        try:
            return finish_segments(path, out_root, out_dir, options, segments, list(parts), threads=threads,
                                   keep_segments=keep)
        finally:
            progress.done.remote(key + " join")

    _REMOTES.update(Progress=Progress, whole=ray.remote(whole), segment=ray.remote(segment),
                    finish=ray.remote(finish))
    return _REMOTES


def _expected_frames(info, start, end, segment: Segment | None = None) -> int:
    from ..pipeline import _expected_frames

    if segment is not None:
        start, end = segment.start, segment.end if segment.end is not None else end
    return _expected_frames(info, start, end) or 0


def _splittable(path: Path) -> bool:
    from ..video import IMAGE_SUFFIXES

    return path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES


def _task_error(path: Path, exc: Exception, retries: int) -> str:
    """The one line a local run would print for a task that Ray could not complete."""
    import ray.exceptions as rx

    if isinstance(exc, rx.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        if isinstance(cause, WildposeError):
            return str(cause)
        return f"{path}: internal error: {type(cause).__name__}: {cause}"
    if isinstance(exc, (rx.WorkerCrashedError, rx.NodeDiedError, rx.ActorDiedError, rx.ObjectLostError)):
        return f"{path}: its worker was lost {retries + 1} time{'s' if retries else ''} ({type(exc).__name__})"
    return f"{path}: internal error: {type(exc).__name__}: {exc}"


def run_batch(videos: Sequence[str | os.PathLike], out_root: str | os.PathLike, options, config: RayConfig = RayConfig(),
              *, out_dirs: Sequence[str | os.PathLike] | None = None, resume: bool = False,
              on_outcome: Callable[[Outcome], None] | None = None,
              progress: Callable[[BatchProgress], None] | None = None) -> list[Outcome]:
    """Process ``videos`` into ``out_root`` on Ray; one Outcome per video, in their order.

    ``out_dirs``: each video's folder (default ``pipeline.output_dirs``). ``on_outcome`` is called as each video
    finishes (its summary, or its one error line); ``progress`` about twice a second. With ``resume``, videos
    whose folder is up to date are skipped (by their task, or before any work for a split video), and the
    segments of a split video already written by an interrupted run are kept.
    """
    from ..pipeline import output_dirs
    from ..video import probe

    videos = [Path(v) for v in videos]
    out_dirs = [Path(d) for d in (out_dirs if out_dirs is not None else output_dirs(videos, out_root))]
    ray, started = connect(config)
    remotes = _remotes(ray)
    opts = dict(num_cpus=config.threads, max_retries=config.max_retries, retry_exceptions=True)
    tracker = remotes["Progress"].remote()
    outcomes: list[Outcome | None] = [None] * len(videos)
    pending: dict = {}  # ObjectRef of a video's final task -> the video's index
    tasks: dict = {}  # ... -> how many tasks it stands for
    others: set = set()  # the segments' ObjectRefs (cancelled with the rest on Ctrl-C)
    lifter_sha = _lifter_sha(options) if resume else None
    plans: list[tuple[int, list[Segment] | None, object]] = []
    try:
        for i, path in enumerate(videos):
            info = None
            try:
                info = probe(path, fps=options.fps) if path.exists() else None
            except WildposeError:
                pass  # the task reports it, with the line a local run prints
            segments = None
            if info is not None and _splittable(path):
                segments = plan_segments(info.duration, info.fps, segment_seconds=config.segment_seconds,
                                         overlap_seconds=config.overlap_seconds, start=options.start, end=options.end,
                                         restart_seconds=restart_seconds(options.preset))
                segments = segments if len(segments) > 1 else None
            plans.append((i, segments, info))
        expected = {i: sum(_expected_frames(info, options.start, options.end, seg) for seg in (segments or [None]))
                    if info is not None else 0 for i, segments, info in plans}
        frames_total = sum(expected.values())  # what the tasks will decode (each segment's overlap included)
        window = config.max_in_flight or max(4, 2 * int(ray.cluster_resources().get("CPU", 1) // config.threads))
        # split videos first: their join waits for all their segments
        queue = iter(sorted(plans, key=lambda p: p[1] is None))
        done = 0
        in_flight = 0  # tasks submitted and not yet returned (a split video's segments and join included)
        while True:
            for i, segments, info in queue:
                path, out_dir = videos[i], out_dirs[i]
                key = str(path)
                if segments is None:
                    ref = remotes["whole"].options(**opts).remote(tracker, key, str(path), str(out_root),
                                                                 str(out_dir), options, config.threads, resume)
                    pending[ref], tasks[ref] = i, 1
                elif resume and _up_to_date(path, out_dir, options, lifter_sha):
                    outcomes[i] = _skipped(path, out_dir, read_manifest(out_dir))
                    frames_total -= expected[i]
                    done += 1
                    if on_outcome is not None:
                        on_outcome(outcomes[i])
                    continue
                else:
                    parts = [remotes["segment"].options(**opts).remote(
                        tracker, f"{key} [{s.index + 1}/{s.count}]", str(path), str(out_dir), options, s,
                        config.threads, resume) for s in segments]
                    ref = remotes["finish"].options(**opts).remote(tracker, key, str(path), str(out_root),
                                                                  str(out_dir), options, segments, config.threads,
                                                                  config.keep_segments, *parts)
                    pending[ref], tasks[ref] = i, len(parts) + 1
                    others.update(parts)
                in_flight += tasks[ref]
                if in_flight >= window:
                    break
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=_PROGRESS_EVERY)
            for ref in ready:
                i = pending.pop(ref)
                in_flight -= tasks.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - Ray's errors: the task raised, or its worker was lost
                    log.debug("%s: task failed", videos[i], exc_info=True)
                    outcome = Outcome(str(videos[i]), error=_task_error(videos[i], exc, config.max_retries))
                outcomes[i] = outcome
                if outcome.skipped or outcome.error is not None:  # no frames to come for it
                    frames_total -= expected[i]
                done += 1
                if on_outcome is not None:
                    on_outcome(outcome)
            if progress is not None:
                frames, busy = ray.get(tracker.snapshot.remote())
                deadline = time.monotonic() + 2.0
                while not pending and busy and time.monotonic() < deadline:
                    # the last report: once every task has said it is done, all their counts are in
                    time.sleep(0.05)
                    frames, busy = ray.get(tracker.snapshot.remote())
                progress(BatchProgress(done, len(videos), frames, frames_total, busy))
    except BaseException:
        for ref in [*pending, *others]:  # Ctrl-C, SIGTERM: stop the workers (partial folders are never renamed in)
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - a task that finished meanwhile
                pass
        raise
    finally:
        ray.kill(tracker)
        if started:
            shutdown(ray)
    return [o for o in outcomes if o is not None]


def _lifter_sha(options) -> str | None:
    from ..lift import load_lifter
    from ..pipeline import _lifter_sha256

    return _lifter_sha256(load_lifter(options.lifter))


def _up_to_date(path: Path, out_dir: Path, options, lifter_sha: str | None) -> bool:
    """Whether a split video's folder is complete and current (checked before any of its segments is started)."""
    from ..manifest import is_up_to_date

    made_with = dataclasses.replace(options, fps=None)  # as run_video records a video's options
    return is_up_to_date(out_dir, path, made_with, lifter_sha)[0]


def read_manifest(out_dir: Path) -> dict:
    from ..manifest import read_manifest as read

    return read(out_dir) or {}


def _skipped(path: Path, out_dir: Path, manifest: dict) -> Outcome:
    from ..pipeline import VideoSummary

    summary = VideoSummary(str(path), out_dir, int(manifest.get("frames", 0)), int(manifest.get("people", 0)), 0.0,
                           sorted(manifest.get("files", {})), skipped=True)
    return Outcome(str(path), summary=summary, skipped=True, frames=summary.frames)


__all__ = ["RayConfig", "BatchProgress", "run_batch", "connect", "LOOPBACK_ENV"]
