"""Streaming video decode and encode with PyAV: rotation metadata, presentation timestamps, atomic output.

Decoding never holds more than a few frames: ``read_frames`` is a generator over the demuxed packets.
Frames come out as RGB uint8 arrays already turned the way a player shows them (the stream's display
matrix, or a legacy ``rotate`` tag), with timestamps taken from each frame's PTS, so variable frame rate
video keeps its real timing.

Damaged files: a packet the decoder rejects in the middle of the stream (bytes damaged in transit) is left
out and counted (``DecodeReport.damaged``); FFmpeg conceals the damage in the frames after it, and decoding
goes on. A stream in which most packets fail, or none decodes, raises :class:`VideoError`. A file cut short (an
interrupted copy or download) ends where its complete data ends, with a warning that says how many frames are
missing; a half-written last packet is dropped, never decoded.

Timestamps: each frame's PTS, unless the container gives none or repeats them (old AVI/MJPEG and camera files,
raw streams): from the first frame whose PTS is missing or not after its predecessor's, the frames are timed by
their index and the stream's frame rate, continuing from the last good timestamp, with one warning.

Still images (PNG, JPEG, ...) are one-frame videos, and a folder holding only images is a sequence in name
order at a given frame rate (``fps``, default 30).
"""

from __future__ import annotations

import logging
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from wildpose.atomic import atomic_path
from wildpose.errors import VideoError
from wildpose.types import DecodeReport, Frame, VideoInfo

__all__ = ["probe", "read_frames", "VideoWriter", "DecodeReport", "IMAGE_SUFFIXES", "is_image_sequence",
           "image_sequence_files"]

# Still images wildpose reads as one frame (and, in a folder, as a sequence). FFmpeg's image decoders read
# them; the list is what users bring, not everything FFmpeg knows.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"})

# Frame rate of an image sequence (and of a still image's one frame) when the caller gives none.
DEFAULT_IMAGE_FPS = 30.0

# A stream is rejected as corrupt, not decoded with holes, when more than this share of its packets fail.
MAX_DAMAGED_SHARE = 0.5

_LOG = logging.getLogger(__name__)

# A timestamp exactly on a segment boundary must not fall out through float rounding of pts * time_base.
_EPS = 1e-6


# --------------------------------------------------------------------------------------------- opening


def _natural_key(path: Path) -> tuple:
    # img2.png before img10.png, as a person numbering frames means them
    import re

    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name))


def image_sequence_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` in name order (numbers compared as numbers); hidden files left out."""
    folder = Path(folder)
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)


def is_image_sequence(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder whose files are all images (at least one): one video, frame by frame."""
    path = Path(path)
    if not path.is_dir():
        return False
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    return bool(files) and all(p.suffix.lower() in IMAGE_SUFFIXES for p in files)


def _check_file(path: Path) -> None:
    """Raise VideoError for the failures os.stat can tell apart, before FFmpeg's vaguer messages."""
    if not path.exists():
        raise VideoError("file not found", path)
    if path.is_dir():
        if is_image_sequence(path):
            return
        raise VideoError("is a directory, not a video file or a folder of images", path)
    if not path.is_file():
        raise VideoError("is not a regular file", path)
    if path.stat().st_size == 0:
        raise VideoError("file is empty (0 bytes)", path)


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words for an error, without the errno and file name PyAV adds around them."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.strip().rstrip(".")


def _is_image_format(container: av.container.InputContainer) -> bool:
    # FFmpeg opens a single PNG/JPEG/BMP... as a one-frame "video" through its image demuxers.
    names = container.format.name.split(",")
    return any(n.startswith("image2") or n.endswith("_pipe") for n in names)


def _open(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` and return the container and its first video stream, or raise VideoError."""
    _check_file(path)
    try:
        container = av.open(os.fspath(path), mode="r")
    except av.FFmpegError as exc:
        raise VideoError(f"not a video file or unreadable ({_reason(exc)})", path) from exc
    except OSError as exc:
        raise VideoError(f"cannot open ({_reason(exc)})", path) from exc
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise VideoError(f"has no video stream (found: {', '.join(kinds)})", path)
        stream = container.streams.video[0]
        if stream.codec_context is None or stream.codec_context.codec is None:
            raise VideoError("video stream has no decoder available", path)
    except BaseException:
        container.close()
        raise
    return container, stream


# -------------------------------------------------------------------------------------------- decoding


def _decoded(container, stream, path: Path, state: dict) -> Iterator[av.VideoFrame]:
    """Yield decoded frames of ``stream`` packet by packet.

    ``state`` receives ``decoded`` (frames out of the decoder), ``packets`` (packets into it: the frame
    number in decoding order, which the decoder's output lags by its delay).
    A packet FFmpeg flags as corrupt is held back until the next one arrives: a corrupt packet followed by
    the end of the file is the half-written tail of a truncated file and is dropped (decoding it fails
    with single-threaded decoding and is silently skipped with frame threading, so dropping it makes
    both behave the same); a corrupt packet in the middle is decoded and left to the decoder's concealment.
    """
    state.setdefault("decoded", 0)
    state.setdefault("packets", 0)
    packets = container.demux(stream)
    held = None
    while True:
        try:
            packet = next(packets, None)
        except av.FFmpegError as exc:
            raise VideoError(f"read error after frame {state['packets']} ({_reason(exc)})", path) from exc
        if packet is None:
            break
        if packet.size == 0:
            # PyAV ends each stream with an empty packet, and AVI stores dropped frames as empty chunks:
            # sent to the decoder either would mean "end of stream" to FFmpeg
            continue
        todo = []
        if held is not None:
            todo.append(held)
            held = None
        if packet.is_corrupt:
            held = packet
        else:
            todo.append(packet)
        for p in todo:
            yield from _decode_packet(stream, p, path, state)
    if held is not None:
        state["truncated"] = f"the file ends inside frame {state['packets']}'s data"
        _LOG.warning("%s: %s (truncated?); stopping there", path, state["truncated"])
    yield from _decode_packet(stream, None, path, state)  # drain the frames the decoder still holds


def _decode_packet(stream, packet, path: Path, state: dict) -> Iterator[av.VideoFrame]:
    try:
        frames = stream.decode(packet)
    except av.FFmpegError as exc:
        if packet is None:  # the decoder failed while handing back its last frames: they are lost
            _LOG.debug("%s: error draining the decoder: %s", path, _reason(exc))
            return
        where = f"frame {state['packets']}"
        if packet.pts is not None and stream.time_base is not None:
            where += f" (t={float((packet.pts - _origin_pts(stream)) * stream.time_base):.3f} s)"
        state["packets"] += 1
        damaged = state["damaged"] = state.get("damaged", 0) + 1
        if damaged == 1:
            state["first_damage"] = f"{where}: {_reason(exc)}"
        if damaged >= 8 and damaged > MAX_DAMAGED_SHARE * state["packets"]:
            raise VideoError(f"decode errors in {damaged} of the first {state['packets']} frames (first at "
                             f"{state['first_damage']}); the file is corrupt", path) from exc
        return
    if packet is not None:
        state["packets"] += 1
    for frame in frames:
        state["decoded"] += 1
        yield frame


def _rotation_cw(frame: av.VideoFrame, stream, path: Path) -> int:
    """Clockwise degrees (0, 90, 180, 270) that turn a decoded frame the way players show it."""
    ccw = frame.rotation  # from the display matrix side data: counter-clockwise degrees in [-180, 180]
    if ccw:
        cw = -float(ccw)
    else:
        # Files remuxed by FFmpeg before the display matrix existed carry a clockwise ``rotate`` tag instead.
        tag = next((v for k, v in stream.metadata.items() if k.lower() == "rotate"), None)
        try:
            cw = float(tag) if tag is not None else 0.0
        except ValueError:
            _LOG.warning("%s: ignoring unreadable rotate tag %r", path, tag)
            cw = 0.0
    quarter = round(cw / 90.0)
    if abs(cw - 90.0 * quarter) > 1.0:
        _LOG.warning("%s: rotation of %.1f degrees is not a multiple of 90; using %d", path, cw, 90 * quarter)
    return int(90 * quarter) % 360


def _to_display(frame: av.VideoFrame, rotation_cw: int) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    if rotation_cw:
        # np.rot90 turns counter-clockwise for positive k
        rgb = np.ascontiguousarray(np.rot90(rgb, k=-(rotation_cw // 90)))
    return rgb


def _frame_rate(stream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return None


def _origin_pts(stream) -> int:
    return stream.start_time if stream.start_time is not None else 0


def _declared(container, stream) -> tuple[int | None, float | None]:
    """(frames, seconds) the container says the video stream holds; None where it does not say."""
    num_frames = stream.frames if stream.frames and stream.frames > 0 else None
    duration = None
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None and container.duration > 0:
        # the container's span (microseconds, from its own start) minus where the video stream begins
        offset = 0.0
        if stream.start_time is not None and stream.time_base is not None:
            offset = float(stream.start_time * stream.time_base) - (container.start_time or 0) / av.time_base
        duration = max(container.duration / av.time_base - offset, 0.0)
    return num_frames, duration


# --------------------------------------------------------------------------------------------- public


def _image_fps(fps: float | None) -> float:
    if fps is None:
        return DEFAULT_IMAGE_FPS
    fps = float(fps)
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive frame rate for the images, got {fps}")
    return fps


def _probe_sequence(folder: Path, fps: float) -> VideoInfo:
    files = image_sequence_files(folder)
    first = probe(files[0], fps=fps)
    return VideoInfo(path=os.fspath(folder), width=first.width, height=first.height, fps=fps, rotation=first.rotation,
                     num_frames=len(files), duration=len(files) / fps, codec=f"image sequence ({first.codec})")


def _read_sequence(folder: Path, fps: float, start: float, end: float | None) -> Iterator[Frame]:
    """The images of ``folder`` as frames at ``fps``; every image must have the first one's size."""
    files = image_sequence_files(folder)
    size = None
    index = 0
    for i, file in enumerate(files):
        t = i / fps
        if t < start - _EPS:
            continue
        if end is not None and t >= end - _EPS:
            break
        pictures = _read(file, 0.0, None, threads=False, allow_truncated=False, fps=fps)
        try:
            image = next(pictures).image
        except StopIteration:
            raise VideoError("the image holds no picture", file) from None
        finally:
            pictures.close()
        if size is None:
            size = image.shape[:2]
        elif image.shape[:2] != size:
            raise VideoError(f"is {image.shape[1]}x{image.shape[0]} pixels, the sequence's first image "
                             f"{size[1]}x{size[0]}: the images of a sequence must share one size", file)
        yield Frame(index=index, timestamp=t, image=image)
        index += 1
    if index == 0:
        raise VideoError(f"start={start:.3f} s is past the end of the image sequence", folder)


def probe(path: str | os.PathLike, *, fps: float | None = None) -> VideoInfo:
    """Describe a video as a player shows it, decoding only its first frame.

    Parameters
    ----------
    path : str or PathLike
        Any container/codec FFmpeg reads (mp4, mov, mkv, webm, avi, ...), a still image (one frame), or a folder
        holding only images (a sequence in name order).
    fps : float, optional
        The frame rate of a still image or an image sequence (default 30); a video's own rate is kept.

    Returns
    -------
    VideoInfo
        ``width``/``height`` in displayed pixels (swapped for 90/270 degree rotation), ``fps`` the stream's
        average frame rate, ``rotation`` clockwise degrees, ``num_frames`` and ``duration`` (seconds) as the
        container declares them (None where it does not).

    Raises
    ------
    VideoError
        Missing file, a directory, not a video (text, image, random bytes), no video stream (audio only),
        or a video stream without a single decodable frame.
    """
    path = Path(path)
    _check_file(path)
    if path.is_dir():
        return _probe_sequence(path, _image_fps(fps))
    container, stream = _open(path)
    try:
        still = _is_image_format(container)
        frames = _decoded(container, stream, path, {})
        try:
            first = next(frames, None)
        finally:
            frames.close()
        if first is None:
            raise VideoError("the video stream holds no frames", path)
        rotation = _rotation_cw(first, stream, path)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        num_frames, duration = _declared(container, stream)
        if still:  # an image demuxer's rate (25) means nothing: the caller's rate, one frame
            rate = _image_fps(fps)
            return VideoInfo(path=os.fspath(path), width=int(width), height=int(height), fps=rate,
                             rotation=rotation, num_frames=1, duration=1.0 / rate, codec=stream.codec_context.name)
        fps = _frame_rate(stream)
        if fps is None:
            if num_frames and duration:
                fps = num_frames / duration
            else:
                fps = 30.0
                _LOG.warning("%s: the container gives no frame rate; assuming 30 fps (timestamps stay exact)", path)
        return VideoInfo(path=os.fspath(path), width=int(width), height=int(height), fps=float(fps),
                         rotation=rotation, num_frames=num_frames, duration=duration,
                         codec=stream.codec_context.name)
    finally:
        container.close()


def read_frames(path: str | os.PathLike, start: float | None = None, end: float | None = None, *,
                allow_truncated: bool = False, threads: bool = True, fps: float | None = None,
                report: DecodeReport | None = None) -> Iterator[Frame]:
    """Decode a video frame by frame, rotated for display, with presentation timestamps.

    Parameters
    ----------
    path : str or PathLike
        The video file.
    start, end : float, optional
        Segment in seconds (same clock as ``Frame.timestamp``): frames with ``start <= t < end`` are
        yielded. ``start`` seeks to the key frame before it and decodes forward from there.
    threads : bool
        Let FFmpeg decode with several threads (frame and slice threading); results are identical.
    fps : float, optional
        The frame rate of a still image or a folder of images (default 30); ignored for videos.
    report : DecodeReport, optional
        Filled in as decoding goes: frames left out as damaged, frames timed by the frame rate.

    Yields
    ------
    Frame
        ``image`` (H, W, 3) uint8 RGB of the displayed frame, ``timestamp`` seconds since the video
        stream's first presentation time (PTS x time base; variable frame rate keeps its real timing),
        ``index`` 0, 1, 2... counting the frames yielded.

    Raises
    ------
    VideoError
        Any problem ``probe`` reports, a read or decode error in the middle of the stream (the message
        names the frame), or a ``start`` past the end of the video.
    ValueError
        ``start`` negative or ``end <= start``.

    Notes
    -----
    The file stays open while the generator runs and is closed when it finishes, fails or is closed
    (``gen.close()``, or garbage collection of an abandoned generator).
    A file cut short (it ends inside a frame's data, or well before the frame count or duration its
    container declares) raises VideoError after its last complete frame, unless ``allow_truncated`` is True,
    in which case it ends early with a logged warning.
    """
    path = Path(path)
    start = None if start is None else float(start)
    end = None if end is None else float(end)
    if start is not None and (start < 0 or math.isnan(start)):
        raise ValueError(f"start: expected seconds >= 0, got {start}")
    if end is not None and (math.isnan(end) or (start is not None and end <= start) or end <= 0):
        raise ValueError(f"end: expected seconds > start ({start or 0.0}), got {end}")
    _check_file(path)  # fail at the call, not at the first next(), for the common mistakes
    if path.is_dir():
        return _read_sequence(path, _image_fps(fps), start or 0.0, end)
    return _read(path, start or 0.0, end, threads, allow_truncated, fps=fps, report=report)


def _read(path: Path, start: float, end: float | None, threads: bool, allow_truncated: bool, *,
          fps: float | None = None, report: DecodeReport | None = None) -> Iterator[Frame]:
    container, stream = _open(path)
    frames = None
    report = report if report is not None else DecodeReport()
    try:
        if threads:
            stream.thread_type = "AUTO"
        time_base = stream.time_base
        origin = _origin_pts(stream)
        fps = _image_fps(fps) if _is_image_format(container) else (_frame_rate(stream) or 30.0)
        state: dict = {}
        first = None
        seeked = False
        if start > 0:
            try:
                container.seek(origin + int(start / time_base), stream=stream, backward=True, any_frame=False)
                seeked = True
            except av.FFmpegError as exc:
                _LOG.info("%s: cannot seek (%s); decoding from the start", path, _reason(exc))
            if seeked:
                frames = _decoded(container, stream, path, state)
                first = next(frames, None)
                if first is None or _seconds(first, time_base, origin, None) > start + _EPS:
                    # the index sent us past the start (or nowhere): decode the file from its beginning
                    _LOG.info("%s: seek to %.3f s landed late; decoding from the start", path, start)
                    frames.close()
                    container.close()
                    container, stream = _open(path)
                    if threads:
                        stream.thread_type = "AUTO"
                    first, seeked, state = None, False, {}
        if first is None:
            frames = _decoded(container, stream, path, state)

        rotation: int | None = None
        index = 0
        last_t: float | None = None
        stopped_by_end = False
        by_rate = False  # the container's timestamps went missing or backwards: frames are timed by the rate
        while True:
            frame, first = (first, None) if first is not None else (next(frames, None), None)
            if frame is None:
                break
            if by_rate:
                t = last_t + 1.0 / fps
                report.retimed += 1
            else:
                t = _seconds(frame, time_base, origin, last_t, fps)
                if last_t is not None and (frame.pts is None or t <= last_t + _EPS):
                    # repeated or missing timestamps (old AVI/MJPEG muxers, raw streams): from here on, the
                    # frame index and the stream's rate are the only clock that keeps frames apart and in order
                    by_rate = True
                    t = last_t + 1.0 / fps
                    report.retimed += 1
                    _LOG.warning("%s: the frame at %.3f s has %s timestamp; timing the frames from here on by "
                                 "the frame rate (%.3f fps)", path, last_t,
                                 "no" if frame.pts is None else "a repeated or earlier", fps)
            report.damaged = state.get("damaged", 0)
            last_t = t
            if start > 0 and t < start - _EPS:
                continue
            if end is not None and t >= end - _EPS:
                stopped_by_end = True
                break
            if rotation is None:
                rotation = _rotation_cw(frame, stream, path)
            yield Frame(index=index, timestamp=t, image=_to_display(frame, rotation))
            index += 1

        if not stopped_by_end and state.get("damaged"):
            # the decoder may also swallow frames after damage without an error: every packet sent in that did
            # not come out as a frame is a damaged frame
            state["damaged"] = max(state["damaged"], state.get("packets", 0) - state.get("decoded", 0))
        report.damaged = state.get("damaged", 0)
        if report.damaged:
            report.first_damage = state["first_damage"]
            _LOG.warning("%s: %d damaged frame(s) could not be decoded and are left out (first at %s)", path,
                         report.damaged, state["first_damage"])
        if last_t is None and not seeked:
            if report.damaged:
                raise VideoError(f"no frame could be decoded ({state['first_damage']})", path)
            raise VideoError("the video stream holds no frames", path)
        if index == 0 and not stopped_by_end:
            raise VideoError(f"start={start:.3f} s is past the end of the video", path)
        if not stopped_by_end:
            problem = state.get("truncated") or _shortfall(container, stream, state, seeked, last_t, fps)
            if problem and not allow_truncated:
                raise VideoError(f"truncated or corrupt: {problem} (decoded {index} frames)", path)
            if problem:
                _LOG.warning("%s: %s (truncated or corrupt file?)", path, problem)
    finally:
        if frames is not None:
            frames.close()
        container.close()


def _seconds(frame: av.VideoFrame, time_base, origin: int, previous: float | None, fps: float = 30.0) -> float:
    """Presentation time in seconds from the stream start; a frame without PTS follows its predecessor."""
    if frame.pts is not None:
        return float((frame.pts - origin) * time_base)
    return 0.0 if previous is None else previous + 1.0 / fps


def _shortfall(container, stream, state: dict, seeked: bool, last_t: float | None, fps: float) -> str | None:
    """Why the stream looks cut short of what the container promised, or None when it does not."""
    num_frames, duration = _declared(container, stream)
    decoded = state.get("decoded", 0) + state.get("damaged", 0)  # damaged frames were there, and are counted
    if num_frames is not None and not seeked and decoded < num_frames:
        return f"decoded {decoded} of the {num_frames} frames the container lists"
    if duration is not None and last_t is not None and duration - (last_t + 1.0 / fps) > max(1.0, 5.0 / fps):
        return f"frames end at {last_t:.2f} s but the container says {duration:.2f} s"
    return None


# --------------------------------------------------------------------------------------------- writing


# NTSC rates are 1000/1001 of a round number; 29.97 typed by a user means 30000/1001.
_NTSC = {round(n * 1000 / 1001, 2): Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120, 240)}


def _rate(fps: float | Fraction) -> Fraction:
    if isinstance(fps, Fraction):
        rate = fps
    else:
        fps = float(fps)
        if not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps: expected a positive frame rate, got {fps}")
        rate = _NTSC.get(round(fps, 2)) if abs(fps - round(fps, 2)) < 1e-4 else None
        if rate is None:
            rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps: expected a positive frame rate, got {rate}")
    return rate


def _encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


class VideoWriter:
    """Encode RGB frames into a video file, streaming, written atomically.

    Parameters
    ----------
    path : str or PathLike
        Output file; its suffix picks the container (``.mp4`` recommended).
    width, height : int
        Size of the frames that will be written, in pixels. H.264 in yuv420p needs even sizes: an odd
        width/height is padded by one repeated column/row.
    fps : float or Fraction
        Frame rate; 29.97, 59.94, 23.98... mean the exact NTSC rates (30000/1001, ...).
    codec : str
        Encoder name, any that takes yuv420p (libx264, mpeg4, libvpx-vp9, libx265...); ``"libx264"`` falls
        back to ``"mpeg4"`` (with a warning) where FFmpeg lacks it.
    crf : int
        libx264 quality (0 lossless .. 51 worst; 18-23 is visually good).
    preset : str
        libx264 speed/size trade-off.

    Examples
    --------
    >>> with VideoWriter("out.mp4", 480, 360, 25) as writer:  # doctest: +SKIP
    ...     for rgb in images:
    ...         writer.write(rgb)

    Frames go to a hidden temporary file next to ``path`` that is renamed to ``path`` when the ``with``
    block ends cleanly; if it raises, the temporary file is deleted and ``path`` is left untouched.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float | Fraction,
                 codec: str = "libx264", crf: int = 20, preset: str = "veryfast"):
        if int(width) != width or int(height) != height or width < 1 or height < 1:
            raise ValueError(f"width, height: expected positive integers, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.rate = _rate(fps)
        self.fps = float(self.rate)
        if not _encoder_available(codec):
            if codec != "libx264":
                raise VideoError(f"the video encoder {codec!r} is not available in this FFmpeg", self.path)
            _LOG.warning("libx264 is not available in this FFmpeg build; writing MPEG-4 Part 2 instead")
            codec = "mpeg4"
        self.codec = codec
        self.crf = int(crf)
        self.preset = preset
        self.frames_written = 0
        self._atomic = None
        self._container = None
        self._stream = None

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the encoded video: yuv420p subsamples chroma 2x2, so odd sides grow by one."""
        return self.width + self.width % 2, self.height + self.height % 2

    def __enter__(self) -> "VideoWriter":
        if self._atomic is not None:
            raise RuntimeError("VideoWriter is already open")
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            options = {"movflags": "+faststart"} if tmp.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
            self._container = av.open(os.fspath(tmp), mode="w", options=options)
            stream = self._container.add_stream(self.codec, rate=self.rate)
            stream.width, stream.height = self.output_size
            stream.pix_fmt = "yuv420p"
            if self.codec == "libx264":
                stream.options = {"crf": str(self.crf), "preset": self.preset}
            elif self.codec == "mpeg4":
                # fixed quantiser (like ffmpeg -q:v 3) instead of the 200 kb/s default bit rate
                stream.codec_context.qscale = True
                stream.codec_context.global_quality = 3 * 118  # FF_QP2LAMBDA
            self._stream = stream
        except BaseException as exc:
            self._abort(exc)
            if isinstance(exc, (av.FFmpegError, ValueError)):  # PyAV: ValueError for an unknown suffix
                raise VideoError(f"cannot create the video ({_reason(exc)})", self.path) from exc
            raise
        return self

    def write(self, rgb: np.ndarray) -> None:
        """Encode one frame: ``rgb`` (height, width, 3) uint8, in the size given to the constructor."""
        if self._stream is None:
            raise RuntimeError("VideoWriter.write() outside its 'with' block")
        rgb = np.asarray(rgb)
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"rgb: expected ({self.height}, {self.width}, 3) uint8, got {rgb.shape} {rgb.dtype}")
        coded_w, coded_h = self.output_size
        if (coded_w, coded_h) != (self.width, self.height):
            rgb = np.pad(rgb, ((0, coded_h - self.height), (0, coded_w - self.width), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames_written
        frame.time_base = 1 / self.rate
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.FFmpegError as exc:
            raise VideoError(f"encode error at frame {self.frames_written} ({_reason(exc)})", self.path) from exc
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self._abort(exc)
            return
        try:
            if self.frames_written == 0:
                raise VideoError("no frames were written; not creating an empty video", self.path)
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                self._container.close()
            except av.FFmpegError as exc:
                raise VideoError(f"cannot finish the video ({_reason(exc)})", self.path) from exc
        except BaseException as err:
            self._abort(err)
            raise
        atomic, self._atomic, self._container, self._stream = self._atomic, None, None, None
        atomic.__exit__(None, None, None)

    def _abort(self, exc: BaseException) -> None:
        """Close without finishing and delete the temporary file (atomic_path's error branch)."""
        container, atomic = self._container, self._atomic
        self._container = self._stream = self._atomic = None
        if container is not None:
            try:
                container.close()
            except Exception:  # the file is being thrown away; its trailer does not matter
                pass
        if atomic is not None:
            try:
                atomic.__exit__(type(exc), exc, exc.__traceback__)
            except BaseException as again:
                if again is not exc:
                    raise
