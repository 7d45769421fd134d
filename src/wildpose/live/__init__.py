"""Live: 3D people from a camera, a network stream or a file, frame by frame as they arrive (docs/LIVE.md).

    source (reader thread, bounded queue)  ->  LiveProcessor (detector, online tracker, causal lifter,
    causal refinement, trajectory, settling world)  ->  JSON lines (+ optional render, browser view)

``run_live`` wires these together; the CLI's ``wildpose live`` is a thin layer over it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from wildpose.live.output import JsonLinesWriter, frame_record, load_schema, read_lines
from wildpose.live.process import FAST, LiveOptions, detector_options, LivePerson, LiveProcessor, LiveResult
from wildpose.live.source import DEFAULT_QUEUE_SIZE, LiveSource, SourceStats, source_kind

log = logging.getLogger(__name__)

__all__ = ["FAST", "detector_options", "run_live", "LiveSummary", "LiveOptions", "LiveProcessor", "LiveResult",
           "LivePerson", "LiveSource",
           "SourceStats", "JsonLinesWriter", "frame_record", "load_schema", "read_lines", "source_kind",
           "DEFAULT_QUEUE_SIZE"]


@dataclass
class LiveSummary:
    """What a live run did."""

    source: str
    frames: int  # frames processed (one output line each)
    decoded: int  # frames the reader decoded
    dropped_queue: int
    dropped_late: int
    reconnects: int
    seconds: float  # wall time
    interrupted: bool  # ended by Ctrl-C (SIGINT) or ``stop``
    latencies: list[float] = field(default_factory=list)  # seconds, capture -> line written, per frame
    processing: list[float] = field(default_factory=list)  # seconds, taken from the queue -> line written
    people: int = 0  # person ids given
    error: str | None = None  # why the source ended, when it did not simply end

    @property
    def dropped(self) -> int:
        return self.dropped_queue + self.dropped_late

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def latency_percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        import numpy as np

        return float(np.percentile(self.latencies, q))

    def line(self) -> str:
        p50, p95 = self.latency_percentile(50), self.latency_percentile(95)
        lat = f", latency p50 {p50 * 1e3:.0f} ms p95 {p95 * 1e3:.0f} ms" if p50 is not None else ""
        return (f"{self.source}: {self.frames} frames processed of {self.decoded} decoded, {self.dropped} dropped "
                f"({self.dropped_queue} behind, {self.dropped_late} too late), {self.reconnects} reconnects, "
                f"{self.people} people, {self.fps:.1f} frames/s{lat}" + (" (interrupted)" if self.interrupted else ""))


@contextlib.contextmanager
def single_thread_blas():
    """BLAS on one thread while live runs: the live networks multiply matrices of a few dozen rows, for which
    OpenBLAS's thread pool costs far more than it gains (1.7 ms vs 70 ms per causal-lifter window, with flip,
    on this 2-core machine under load, 2026-12-04); the detector keeps its own threads. Uses threadpoolctl
    (the ``live`` extra); without it BLAS keeps its threads, with a warning."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log.warning("threadpoolctl is not installed: BLAS keeps its threads, which slows live processing down "
                    "(pip install 'wildpose[live]')")
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def run_live(source: str, options: LiveOptions = LiveOptions(), *, output: str | os.PathLike | None = None,
             stream=None, realtime: bool = False, queue_size: int = DEFAULT_QUEUE_SIZE, drop: bool | None = None,
             max_latency: float | None = None, reconnects: int = 3, source_options: dict | None = None,
             render: str | os.PathLike | None = None, serve_port: int | None = None,
             max_frames: int | None = None, stop: threading.Event | None = None,
             on_frame: Callable[[dict], None] | None = None, processor: LiveProcessor | None = None,
             handle_sigint: bool = True) -> LiveSummary:
    """Process ``source`` live until it ends, ``max_frames`` are done, ``stop`` is set or SIGINT arrives.

    Output: JSON lines to ``output`` (a file, complete when this returns, also after Ctrl-C) or ``stream``
    (default stdout); ``render`` writes a side-by-side video of the processed frames; ``serve_port`` serves
    a live 3D view on http://127.0.0.1:PORT/. Raises VideoError if the source cannot be opened.
    """
    stop = stop or threading.Event()
    reader = LiveSource(source, realtime=realtime, queue_size=queue_size, drop=drop, max_latency=max_latency,
                        reconnects=reconnects, options=dict(source_options or {}))
    previous = None
    if handle_sigint and threading.current_thread() is threading.main_thread():
        # Ctrl-C sets a flag that the loop checks between frames: a line is never cut, the files are finished
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    writer = JsonLinesWriter(output, stream) if output is not None or stream is not None else JsonLinesWriter()
    renderer = server = blas = None
    summary = LiveSummary(source, 0, 0, 0, 0, 0, 0.0, False)
    t0 = time.perf_counter()
    ok = False
    try:
        if processor is None:  # the models load before the source opens: no frame waits for them
            from wildpose.lift import load_lifter
            from wildpose.pipeline import RunOptions, make_detector
            from wildpose.world import load_trajectory_model

            models = {"detector": make_detector(RunOptions(detector_options=detector_options(options), preset="accurate")),
                      "lifter": load_lifter(options.lifter),
                      "trajectory_model": load_trajectory_model(None) if options.trajectory else None}
            if not models["lifter"].causal:
                from wildpose.errors import ModelError

                raise ModelError("live needs a causal lifter (no output may wait for later frames); this one is "
                                 "symmetric: use the shipped causal one (--lifter causal)", options.lifter)
            import numpy as np

            models["detector"](np.zeros((360, 480, 3), np.uint8))  # MoveNet allocates on its first call
        reader.start()
        blas = single_thread_blas()
        blas.__enter__()
        if serve_port is not None:
            from wildpose.live.serve import LiveServer

            server = LiveServer(serve_port).start()
            log.warning("live view on http://127.0.0.1:%d/", server.port)
        for frame in reader.frames(stop):
            taken = time.monotonic()
            if processor is None:
                fps = reader.stats.fps or 25.0
                processor = LiveProcessor((frame.image.shape[1], frame.image.shape[0]), fps, options, **models)
            result = processor.process(frame.image, frame.timestamp, frame.number, frame.captured)
            if render is not None:
                if renderer is None:
                    from wildpose.live.render import LiveRenderer

                    renderer = LiveRenderer(render, frame.image.shape[1], frame.image.shape[0],
                                            reader.stats.fps or 25.0).open()
                renderer.write(frame.image, result)
            stats = reader.stats
            latency = time.monotonic() - frame.captured
            record = frame_record(result, latency, stats.dropped_queue, stats.dropped_late)
            line = writer.write(record)
            written = time.monotonic()
            summary.latencies.append(written - frame.captured)
            summary.processing.append(written - taken)
            summary.frames += 1
            if server is not None:
                server.publish(line)
            if on_frame is not None:
                on_frame(record)
            if stop.is_set() or (max_frames is not None and summary.frames >= max_frames):
                break
        ok = True
    finally:
        summary.interrupted = stop.is_set()
        if blas is not None:
            blas.__exit__(None, None, None)
        reader.close()
        st = reader.stats
        summary.decoded, summary.dropped_queue, summary.dropped_late = st.decoded, st.dropped_queue, st.dropped_late
        summary.reconnects, summary.error = st.reconnects, st.error
        summary.people = (processor._next_id - 1) if processor is not None else 0
        summary.seconds = time.perf_counter() - t0
        keep = ok or summary.interrupted
        if renderer is not None:
            renderer.close(keep)
        writer.close(keep)
        if server is not None:
            server.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return summary


del Path
