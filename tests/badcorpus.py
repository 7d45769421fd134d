"""The odd-input corpus: files a batch of real users' videos holds, generated here from the shared walk video
(nothing downloaded), each with the outcome wildpose documents for it (docs/RELIABILITY.md).

    python tests/badcorpus.py OUT_FOLDER      # writes the files and prints the table of cases

``make_corpus(folder, walk_video)`` returns the cases; tests/test_reliability.py runs them all through one
``wildpose run`` batch and checks each outcome. An ``expect`` of ``None`` means the input must succeed; a string
is a regular expression the one error line must match (besides naming the file).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Frames of walk_single.mp4 in which the man is in full view (he crosses the field right to left).
WALK_FIRST, WALK_LAST = 100, 200


@dataclass(frozen=True)
class Case:
    """One input of the corpus: ``path`` (may not exist: the "missing" case), what it is, and what wildpose gives."""

    path: Path
    what: str
    expect: str | None  # None: succeeds; else a regex the input's one error line matches
    frames: int | None = None  # for inputs that succeed: frames the summary line reports
    note: str = ""  # for inputs that succeed: a phrase the summary line holds (repairs made)


def _walk_frames(walk_video: Path, first: int = WALK_FIRST, last: int = WALK_LAST) -> list[np.ndarray]:
    from wildpose.video import read_frames

    return [f.image for f in read_frames(walk_video) if first <= f.index <= last]


def _encode(path: Path, images, rate: float = 25, codec: str = "libx264", pix_fmt: str = "yuv420p",
            rotation_ccw: int | None = None, pts: list[int] | None = None, time_base: Fraction | None = None) -> Path:
    """Write RGB images with PyAV directly (not through wildpose's writer, which is under test elsewhere)."""
    h, w = images[0].shape[:2]
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(rate).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if time_base is not None:
            stream.codec_context.time_base = time_base
        if rotation_ccw is not None:
            stream.set_display_rotation(rotation_ccw)  # the display matrix a phone writes
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def zero_frame_video(path: Path) -> Path:
    """A Matroska file whose video stream is declared but holds no frames (only audio was muxed)."""
    with av.open(os.fspath(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        _mux_tone(container)
    return path


def audio_only(path: Path) -> Path:
    with av.open(os.fspath(path), "w") as container:
        _mux_tone(container)
    return path


def _mux_tone(container) -> None:
    audio = container.add_stream("aac", rate=16000)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)[None]
    frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
    frame.sample_rate = 16000
    for packet in [*audio.encode(frame), *audio.encode()]:
        container.mux(packet)


def _avi_without_timestamps(path: Path, images) -> Path:
    """MJPEG in AVI with every packet's pts and dts left unset, as old cameras write them: the demuxer can only
    number the frames."""
    h, w = images[0].shape[:2]
    with av.open(os.fspath(path), "w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuvj420p"
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                packet.pts = packet.dts = None
                container.mux(packet)
        for packet in stream.encode():
            packet.pts = packet.dts = None
            container.mux(packet)
    return path


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return frame.reformat(width, height, interpolation="BILINEAR").to_ndarray(format="rgb24")


def make_corpus(folder: Path, walk_video: Path, crowd_video: Path | None = None) -> list[Case]:
    """Write the corpus into ``folder`` (created) and return its cases, good and bad."""
    folder.mkdir(parents=True, exist_ok=True)
    walk = _walk_frames(walk_video)
    short = walk[::2][:25]  # 2 s at 12.5 frames/s of content, written at 25: a short clip of the man walking
    cases: list[Case] = []

    def add(name: str, what: str, expect: str | None, frames: int | None = None, note: str = "") -> Path:
        path = folder / name
        cases.append(Case(path, what, expect, frames, note))
        return path

    # --- files that are not videos, or not whole ones
    add("missing.mp4", "a file that does not exist", r"no such file")
    add("empty.mp4", "an empty file (0 bytes)", r"empty").write_bytes(b"")
    add("notes.mp4", "a text file named .mp4", r"not a video").write_text("this is a text file, not a video\n" * 20)
    add("noise.mkv", "200 kB of random bytes", r"not a video").write_bytes(np.random.default_rng(0).bytes(200_000))
    raw = Path(walk_video).read_bytes()
    add("truncated.mp4", "the first 40% of an mp4's bytes (a download cut short)",
        r"truncated").write_bytes(raw[: len(raw) * 4 // 10])
    middle = len(raw) // 2
    add("holed.mp4", "20 kB of zeros in the middle of an mp4 (bytes damaged in transit)", None, note="damaged frame"
        ).write_bytes(raw[:middle] + bytes(20_000) + raw[middle + 20_000:])
    audio_only(add("tone.m4a", "audio only", r"no video stream"))
    zero_frame_video(add("zero_frames.mkv", "a video stream with no frames in it", r"no frames"))

    # --- sizes and lengths
    _encode(add("one_frame.mp4", "a video of one frame", None, frames=1), walk[50:51])
    _encode(add("tiny_32x32.mp4", "32 x 32 pixels (the man is 9 pixels tall)", r"no person"),
            [_resize(im, 32, 32) for im in short])
    big = add("huge_8k.mp4", "7680 x 4320 (8K UHD), 3 frames", None, frames=3)
    _encode(big, [_resize(im, 7680, 4320) for im in walk[40:43]])

    # --- phone videos: the pixels stored sideways, the display matrix turning them upright
    for cw in (90, 180, 270):
        stored = [np.ascontiguousarray(np.rot90(im, k=cw // 90)) for im in short]  # undone by a cw turn on display
        _encode(add(f"phone_rotated_{cw}.mp4", f"a phone video stored turned, display matrix {cw} degrees", None,
                    frames=len(short)), stored, rotation_ccw=-cw)

    # --- timing
    rng = np.random.default_rng(3)
    steps = rng.choice([20, 40, 80], size=len(short))  # ms: 50, 25 and 12.5 frames/s mixed
    _encode(add("variable_rate.mkv", "variable frame rate (frame gaps of 20, 40 and 80 ms)", None,
                frames=len(short)), short, pts=list(np.cumsum(steps) - steps[0]), time_base=Fraction(1, 1000))
    _avi_without_timestamps(add("no_timestamps.avi", "MJPEG in AVI with no packet timestamps", None,
                                frames=len(short)), [_resize(im, 320, 240) for im in short])

    # --- names
    _encode(add("my clip – ünïcode 漢字 (1).mp4", "spaces, punctuation and non-Latin letters in the name", None,
                frames=len(short)), short)

    # --- stills
    av.VideoFrame.from_ndarray(walk[50], format="rgb24").to_image().save(
        add("photo.jpg", "a photo (JPEG) of a person", None, frames=1))
    from skimage import data

    coffee = np.ascontiguousarray(data.coffee()[:384, :576])
    _encode(add("nobody.mp4", "a video with no person in it (a cup of coffee)", r"no person"), [coffee] * 8)
    av.VideoFrame.from_ndarray(coffee, format="rgb24").to_image().save(
        add("nobody.png", "a photo with no person in it", r"no person"))

    # --- content
    covered = [im.copy() for im in walk]
    for im in covered[40:80]:  # 1.6 s of the camera covered (someone walks right in front of it)
        im[:] = 96
    _encode(add("covered_1.6s.mp4", "the man hidden for 1.6 s (the view covered), then seen again", None,
                frames=len(covered)), covered)
    if crowd_video is not None:
        from wildpose.video import read_frames

        runners = [f.image for f in read_frames(crowd_video, end=2.0)]
        _encode(add("runners_in_and_out.mp4", "runners entering and leaving a moving camera's view", None,
                    frames=len(runners)), runners, rate=30)
    return cases


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/badcorpus.py OUT_FOLDER", file=sys.stderr)
        return 2
    here = Path(__file__).resolve().parent
    videos = here.parent.parent / "shared" / "data" / "videos"
    cases = make_corpus(Path(argv[0]), videos / "walk_single.mp4", videos / "marathon_crowd.mkv")
    for case in cases:
        print(f"{case.path.name:40s} {case.what:70s} {'ok' if case.expect is None else 'error: ' + case.expect}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
