"""Live sources: a camera, a network stream or a file, decoded on a reader thread into a bounded queue.

The reader thread opens the source with PyAV (FFmpeg), decodes frames, turns them the way a player shows them
and puts them, with their capture time (``time.monotonic()`` when the decoder gave the frame), into a queue of
at most ``queue_size`` frames. What happens when the queue is full depends on the source:

- a live source (a camera, a network stream, or a file with ``realtime``): the oldest queued frame is dropped
  and counted, so that processing never falls further behind than ``queue_size`` frames (latency stays
  bounded; it never grows);
- a file played as fast as possible (no ``realtime``), or any source with ``drop=False``: the reader waits
  (nothing is lost; a network sender is then slowed down by TCP's own flow control).

Frames are numbered in decoding order from 0, over reconnects too, so a dropped frame leaves a hole in the
numbers that the consumer sees. A network stream that fails or ends is reopened ``reconnects`` times with a
growing pause (0.5 s, 1 s, 2 s, ...), each logged as one warning; a file simply ends.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from wildpose.errors import VideoError

log = logging.getLogger(__name__)

# frames: at 25 fps 160 ms, the most a frame of a live source waits before the oldest is dropped; it also absorbs
# the burst of the few frames a network stream delivers at once after its start-up probe (with 2, 2-3 of them
# were dropped at the start of every stream)
DEFAULT_QUEUE_SIZE = 4
_NETWORK = re.compile(r"^(rtsp|rtsps|rtmp|http|https|tcp|udp|rtp|srt|hls)://", re.IGNORECASE)
_DEVICE = re.compile(r"^/dev/video\d+$")
_READ_TIMEOUT_US = 5_000_000  # a network read that hangs this long counts as a dropped stream
# FFmpeg probes a network stream's first ~0.8 s before the first frame comes out, and those frames then arrive
# at once, stale (dropped); a 0.1 s probe starts the output sooner: the codec's parameters are in the first
# keyframe's headers. (fflags=nobuffer lost the first 2.4 s of walk_single over TCP: not used.)
_NETWORK_OPTIONS = {"rw_timeout": str(_READ_TIMEOUT_US), "analyzeduration": "100000"}


def source_kind(source: str) -> str:
    """"device" (v4l2 ``/dev/videoN``), "network" (a URL FFmpeg reads) or "file"."""
    if _DEVICE.match(source):
        return "device"
    if _NETWORK.match(source):
        return "network"
    return "file"


@dataclass
class LiveFrame:
    """One decoded frame on its way to processing."""

    number: int  # decoding order from 0 (holes where frames were dropped)
    timestamp: float  # seconds: the stream's presentation time, from its first frame, increasing
    captured: float  # time.monotonic() when the decoder gave the frame
    image: np.ndarray  # (H, W, 3) uint8 RGB, rotated for display


@dataclass
class SourceStats:
    """What the reader did; updated by the reader thread, read at any time."""

    decoded: int = 0  # frames out of the decoder
    dropped_queue: int = 0  # dropped because processing was behind (the queue was full)
    dropped_late: int = 0  # dropped by the consumer: older than max_latency when taken
    reconnects: int = 0
    fps: float | None = None  # the stream's declared frame rate
    image_size: tuple[int, int] | None = None
    error: str | None = None  # why the source ended, when it did not simply end

    @property
    def dropped(self) -> int:
        return self.dropped_queue + self.dropped_late


_END = object()


@dataclass
class LiveSource:
    """A source decoded on its own thread; iterate over it to take frames (see the module docstring).

    Parameters
    ----------
    source : str
        A file path, ``/dev/videoN`` or a URL (rtsp://, http://, tcp://, udp://, ...).
    realtime : bool
        A file: play it at its own frame rate (frames are released at their presentation times), as a camera
        would deliver them. Cameras and network streams are real time by nature.
    queue_size : int
        Frames held between the reader and processing (``DEFAULT_QUEUE_SIZE``).
    drop : bool or None
        Drop the oldest frame when the queue is full; default: for live sources (camera, network,
        ``realtime``), not for a file read as fast as possible.
    max_latency : float or None
        Seconds: frames older than this (capture to being taken) are dropped when taken.
    reconnects : int
        Network streams: how many times to reopen after the stream fails or ends.
    options : dict
        Extra FFmpeg options for opening (``video_size``, ``framerate``, ``input_format`` for a camera, ...).
    """

    source: str
    realtime: bool = False
    queue_size: int = DEFAULT_QUEUE_SIZE
    drop: bool | None = None
    max_latency: float | None = None
    reconnects: int = 3
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.queue_size < 1:
            raise ValueError(f"queue_size: expected at least 1 frame, got {self.queue_size}")
        if self.max_latency is not None and not self.max_latency > 0:
            raise ValueError(f"max_latency: expected a positive number of seconds, got {self.max_latency}")
        self.kind = source_kind(self.source)
        if self.kind == "file":
            path = Path(self.source)
            if not path.is_file():
                raise VideoError("file not found" if not path.exists() else "is not a regular file", self.source)
        if self.drop is None:
            self.drop = self.kind != "file" or self.realtime
        self.stats = SourceStats()
        self._queue: queue.Queue = queue.Queue(maxsize=self.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the reader thread ------------------------------------------------------------------------------------
    def _open(self):
        options = {**(_NETWORK_OPTIONS if self.kind == "network" else {}), **self.options}
        fmt = "v4l2" if self.kind == "device" else None
        try:
            container = av.open(self.source, mode="r", format=fmt, options=options, timeout=_READ_TIMEOUT_US / 1e6)
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot open ({_reason(exc)})", self.source) from exc
        if not container.streams.video:
            container.close()
            raise VideoError("has no video stream", self.source)
        return container

    def _put(self, frame: LiveFrame) -> bool:
        """Queue a frame, dropping the oldest when full (live) or waiting (file). False once stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(frame, timeout=0.1 if not self.drop else 0)
                return True
            except queue.Full:
                if self.drop:
                    try:
                        self._queue.get_nowait()
                        self.stats.dropped_queue += 1
                    except queue.Empty:
                        pass
        return False

    def _read_once(self, container, number: int, last: float | None) -> tuple[int, float | None]:
        """Decode one opened container to its end. Returns (next frame number, last timestamp)."""
        from wildpose.video import _rotation_cw, _to_display

        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if self.kind == "file" else "SLICE"  # frame threads add frames of delay
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if rate and self.stats.fps is None:
            self.stats.fps = float(rate)
        step = 1.0 / (self.stats.fps or 25.0)
        origin = base = wall0 = rotation = None
        for frame in container.decode(stream):
            if self._stop.is_set():
                break
            if frame.pts is None or stream.time_base is None:
                t = last + step if last is not None else 0.0
            else:
                pts = float(frame.pts * stream.time_base)
                if origin is None:
                    # a reconnected stream starts its clock again: continue one frame after the last timestamp
                    origin, base = pts, (last + step if last is not None else 0.0)
                t = pts - origin + base
            if last is not None and t <= last:  # the clock must not run back (the tracker needs it to increase)
                t = last + 1e-3
            if self.realtime:
                if wall0 is None:
                    wall0 = time.monotonic() - t
                delay = wall0 + t - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
            if rotation is None:
                rotation = _rotation_cw(frame, stream, Path(self.source))
            image = _to_display(frame, rotation)
            if self.stats.image_size is None:
                self.stats.image_size = (image.shape[1], image.shape[0])
            live = LiveFrame(number, t, time.monotonic(), image)
            self.stats.decoded += 1
            number += 1
            last = t
            if not self._put(live):
                break
        return number, last

    def _run(self) -> None:
        number, last, failures = 0, None, 0
        try:
            while not self._stop.is_set():
                error = None
                try:
                    container = self._open()
                except VideoError as exc:
                    if self.kind != "network":
                        self.stats.error = exc.message
                        break
                    container, error = None, exc
                if container is not None:
                    try:
                        before = number
                        number, last = self._read_once(container, number, last)
                        if number > before:
                            failures = 0
                    except (av.FFmpegError, OSError) as exc:
                        error = exc
                    finally:
                        container.close()
                if self.kind != "network" or self._stop.is_set():
                    if error is not None:
                        self.stats.error = f"read error after frame {number - 1} ({_reason(error)})"
                    break
                if failures >= self.reconnects and self.reconnects == 0 and error is None and number > 0:
                    break  # no reconnects asked for: a stream that ends has simply ended
                if failures >= self.reconnects:
                    self.stats.error = (f"the stream ended or failed and did not come back after {self.reconnects} "
                                        "reconnects" + (f" ({_reason(error)})" if error is not None else ""))
                    break
                pause = 0.5 * 2 ** failures
                failures += 1
                self.stats.reconnects += 1
                why = f" ({_reason(error)})" if error is not None else " (the stream ended)"
                what = "cannot connect" if number == 0 else f"stream lost after frame {number - 1}"
                log.warning("%s: %s%s; reconnecting in %.1f s (try %d of %d)", self.source, what, why, pause,
                            failures, self.reconnects)
                if self._stop.wait(pause):
                    break
        except Exception as exc:  # the reader must always end the queue, or the consumer waits forever
            self.stats.error = f"{type(exc).__name__}: {exc}"
            log.exception("reader thread failed")
        finally:
            while True:
                try:
                    self._queue.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        try:
                            self._queue.get_nowait()
                        except queue.Empty:
                            pass

    # -- the consumer -----------------------------------------------------------------------------------------
    def start(self) -> "LiveSource":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wildpose-live-reader", daemon=True)
            self._thread.start()
        return self

    def frames(self, stop: threading.Event | None = None) -> Iterator[LiveFrame]:
        """Frames in order until the source ends (or ``close``, or ``stop`` is set). Raises VideoError if it
        could not be opened."""
        self.start()
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if stop is not None and stop.is_set():
                    return
                continue
            if item is _END:
                if self.stats.error and self.stats.decoded == 0:
                    raise VideoError(self.stats.error, self.source)
                if self.stats.error:
                    log.warning("%s: %s", self.source, self.stats.error)
                return
            if self.max_latency is not None and time.monotonic() - item.captured > self.max_latency:
                self.stats.dropped_late += 1
                continue
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> "LiveSource":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, VideoError):
        return exc.message
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip().rstrip(".")


__all__ = ["LiveSource", "LiveFrame", "SourceStats", "source_kind", "DEFAULT_QUEUE_SIZE"]
