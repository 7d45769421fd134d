"""wildpose.video on the shared real videos and on videos made here with PyAV (rotated, variable frame
rate, damaged, empty), plus the writer's round trip and atomicity."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from badcorpus import audio_only, zero_frame_video
from wildpose.errors import VideoError
from wildpose.types import DecodeReport
from wildpose.video import VideoWriter, is_image_sequence, probe, read_frames


def _encode(path: Path, images, rate=10, rotation_ccw: int | None = None, pts=None, time_base=None,
            metadata: dict | None = None) -> Path:
    """Write ``images`` (RGB uint8) with PyAV directly, independent of VideoWriter."""
    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if time_base is not None:
            stream.codec_context.time_base = time_base
        if rotation_ccw is not None:
            stream.set_display_rotation(rotation_ccw)
        for key, value in (metadata or {}).items():
            stream.metadata[key] = value
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(image.tobytes(), digest_size=16).digest()


@dataclass
class Decoded:
    """A whole video decoded once, kept light: every frame's timestamp, index, size and pixel digest,
    and the images of the first 30 frames (all 444 walk frames would hold 230 MB)."""

    timestamps: np.ndarray
    indices: list
    shapes: set
    digests: list
    head: list

    def __len__(self) -> int:
        return len(self.timestamps)


def _decode_all(path) -> Decoded:
    t, idx, shapes, digests, head = [], [], set(), [], []
    for frame in read_frames(path):
        t.append(frame.timestamp)
        idx.append(frame.index)
        shapes.add((frame.image.shape, frame.image.dtype.str, frame.image.flags.c_contiguous))
        digests.append(_digest(frame.image))
        if len(head) < 30:
            head.append(frame.image)
    return Decoded(np.array(t), idx, shapes, digests, head)


@pytest.fixture(scope="module")
def walk_frames(walk_video) -> Decoded:
    return _decode_all(walk_video)


@pytest.fixture(scope="module")
def crowd_frames(crowd_video) -> Decoded:
    return _decode_all(crowd_video)


@pytest.fixture
def portrait(astronaut) -> np.ndarray:
    """A non-square (512 high, 384 wide) crop of the astronaut, so a rotation shows in the shape."""
    return np.ascontiguousarray(astronaut[:, 64:448])


# ------------------------------------------------------------------------------------------ real videos


def test_probe_walk(walk_video):
    info = probe(walk_video)
    assert (info.width, info.height) == (480, 360)
    assert info.image_size == (480, 360)
    assert info.fps == 25.0
    assert info.num_frames == 444
    assert info.rotation == 0
    assert info.codec == "h264"
    assert info.duration == pytest.approx(444 / 25, abs=1e-3)
    assert info.path == os.fspath(walk_video)


def test_probe_crowd(crowd_video):
    info = probe(crowd_video)
    assert (info.width, info.height) == (960, 540)
    assert info.fps == pytest.approx(30000 / 1001)
    assert info.rotation == 0
    assert info.num_frames is None  # Matroska does not store a frame count
    # 138 frames at 29.97 fps, some dropped: the stream spans 4.64 s after its 0.491 s start offset
    assert info.duration == pytest.approx(4.638, abs=0.01)


def test_walk_frames(walk_frames):
    assert len(walk_frames) == 444
    assert walk_frames.indices == list(range(444))
    # constant 25 fps: PTS are exact multiples of 1/25 s
    np.testing.assert_allclose(walk_frames.timestamps, np.arange(444) / 25, atol=1e-9)
    assert walk_frames.shapes == {((360, 480, 3), "|u1", True)}
    assert walk_frames.head[0].std() > 10  # real pixels, not a blank frame
    assert len(set(walk_frames.digests)) > 400  # the picture changes from frame to frame


def test_crowd_frames(crowd_frames):
    assert len(crowd_frames) == 138
    assert crowd_frames.indices == list(range(138))
    t = crowd_frames.timestamps
    assert t[0] == 0.0  # relative to the stream's start_time (0.491 s in the container)
    assert np.all(np.diff(t) > 0)
    # timestamps come from PTS, not index / fps: this file drops frames (gaps of two frame intervals)
    assert np.median(np.diff(t)) == pytest.approx(1001 / 30000, abs=1e-3)
    assert np.diff(t).max() > 1.5 * 1001 / 30000
    assert t[-1] > 137 * 1001 / 30000
    assert crowd_frames.shapes == {((540, 960, 3), "|u1", True)}


@pytest.mark.parametrize("start, end", [(2.0, 3.0), (1.37, 1.9), (3.5, None), (None, 1.0)])
@pytest.mark.parametrize("which", ["walk", "crowd"])
def test_segment_matches_full_decode(which, start, end, request):
    """A segment (seek + skip) yields exactly the frames of a full decode with start <= t < end."""
    path = request.getfixturevalue(f"{which}_video")
    full = request.getfixturevalue(f"{which}_frames")
    lo, hi = start or 0.0, np.inf if end is None else end
    expected = np.flatnonzero((full.timestamps >= lo - 1e-6) & (full.timestamps < hi - 1e-6))
    segment = [(f.index, f.timestamp, _digest(f.image)) for f in read_frames(path, start=start, end=end)]
    assert len(segment) == len(expected) > 0
    assert [s[0] for s in segment] == list(range(len(segment)))
    np.testing.assert_allclose([s[1] for s in segment], full.timestamps[expected], atol=1e-9)
    assert [s[2] for s in segment] == [full.digests[i] for i in expected]  # pixel-identical


def test_segment_arguments(walk_video):
    with pytest.raises(ValueError, match="end"):
        read_frames(walk_video, start=2.0, end=1.0)
    with pytest.raises(ValueError, match="start"):
        read_frames(walk_video, start=-1.0)
    with pytest.raises(VideoError, match="past the end") as err:
        list(read_frames(walk_video, start=100.0))
    assert "walk_single.mp4" in str(err.value)


def test_threaded_decode_is_identical(crowd_video, crowd_frames):
    plain = [(f.timestamp, _digest(f.image)) for f in read_frames(crowd_video, threads=False)]
    assert plain == list(zip(crowd_frames.timestamps, crowd_frames.digests))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through /proc/self/fd")
def test_generator_closes_file(walk_video, tmp_path):
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    gen = read_frames(walk_video)
    next(gen)
    assert open_fds() > before  # the container is open while frames are being read
    gen.close()  # abandoned half way
    assert open_fds() == before
    list(read_frames(walk_video, end=0.5))  # stopped by end
    assert open_fds() == before
    bad = tmp_path / "cut.mp4"
    data = Path(walk_video).read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError):
        list(read_frames(bad))  # fails half way (cut short)
    assert open_fds() == before


# ------------------------------------------------------------------------------------ made-up videos


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
@pytest.mark.parametrize("rotation_cw", [90, 180, 270])
def test_rotation(tmp_path, portrait, ext, rotation_cw):
    """A display matrix asking for a clockwise turn: probe swaps the size, frames come out turned."""
    path = _encode(tmp_path / f"rot{rotation_cw}.{ext}", [portrait, portrait], rotation_ccw=-rotation_cw)
    info = probe(path)
    assert info.rotation == rotation_cw
    expected = np.rot90(portrait, k=-rotation_cw // 90)  # np.rot90 turns counter-clockwise for k > 0
    assert (info.height, info.width) == expected.shape[:2]
    frames = list(read_frames(path))
    assert len(frames) == 2
    assert frames[0].image.shape == expected.shape
    assert _mae(frames[0].image, expected) < 4
    # the opposite sense (for 180: no turn) is far off, so the check tells directions apart
    wrong = portrait if rotation_cw == 180 else np.rot90(portrait, k=rotation_cw // 90)
    assert wrong.shape == expected.shape and _mae(frames[0].image, wrong) > 30


def test_rotation_agrees_with_opencv(tmp_path, portrait):
    """An independent decoder (OpenCV's FFmpeg backend auto-rotates) shows the frame the same way."""
    cv2 = pytest.importorskip("cv2")
    path = _encode(tmp_path / "rot.mp4", [portrait], rotation_ccw=-90)
    capture = cv2.VideoCapture(str(path))
    ok, bgr = capture.read()
    capture.release()
    if not ok:
        pytest.skip("this OpenCV build cannot read mp4")
    ours = next(read_frames(path)).image
    assert ours.shape == bgr.shape
    assert _mae(ours, bgr[..., ::-1]) < 4


def test_legacy_rotate_tag(tmp_path, portrait):
    """Files remuxed by old FFmpeg keep a clockwise ``rotate`` tag instead of a display matrix."""
    path = _encode(tmp_path / "tag.mkv", [portrait], metadata={"rotate": "90"})
    info = probe(path)
    assert info.rotation == 90 and (info.width, info.height) == (512, 384)
    assert _mae(next(read_frames(path)).image, np.rot90(portrait, k=-1)) < 4


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_variable_frame_rate(tmp_path, astronaut, ext):
    pts_ms = [0, 40, 80, 200, 233, 300, 500, 510, 520, 900, 1000, 1300]
    images = [np.roll(astronaut[::4, ::4], 7 * i, axis=1) for i in range(len(pts_ms))]
    path = _encode(tmp_path / f"vfr.{ext}", images, rate=25, pts=pts_ms, time_base=Fraction(1, 1000))
    frames = list(read_frames(path))
    assert [f.timestamp for f in frames] == pytest.approx(np.array(pts_ms) / 1000, abs=1e-6)
    # the content follows its timestamps (no frame dropped or duplicated to a constant rate)
    for frame, image in zip(frames, images):
        assert _mae(frame.image, image) < 6
    segment = list(read_frames(path, start=0.3, end=0.9))
    assert [f.timestamp for f in segment] == pytest.approx([0.3, 0.5, 0.51, 0.52], abs=1e-6)


# -------------------------------------------------------------------------------------------- writer


def test_writer_round_trip(tmp_path, walk_frames):
    out = tmp_path / "out" / "walk.mp4"
    source = walk_frames.head
    with VideoWriter(out, 480, 360, 25) as writer:
        for image in source:
            writer.write(image)
    assert writer.frames_written == 30
    assert [p.name for p in out.parent.iterdir()] == ["walk.mp4"]  # no temporary left behind
    info = probe(out)
    assert (info.width, info.height, info.fps, info.num_frames, info.codec) == (480, 360, 25.0, 30, "h264")
    back = list(read_frames(out))
    assert len(back) == 30
    np.testing.assert_allclose([f.timestamp for f in back], np.arange(30) / 25, atol=1e-9)
    errors = [_mae(a.image, b) for a, b in zip(back, source)]
    assert max(errors) < 3  # crf 20 on real footage: about 1.2 grey levels
    # and it is the same video, not any video: frames are much closer to their own source than to others
    assert _mae(back[0].image, source[29]) > 2 * errors[0]


def test_writer_fractional_rate_and_odd_size(tmp_path, walk_frames):
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 479, 359, 29.97) as writer:
        assert writer.output_size == (480, 360)
        for image in walk_frames.head[:12]:
            writer.write(image[:359, :479])
    info = probe(out)
    assert (info.width, info.height) == (480, 360)  # padded by one repeated column/row
    assert Fraction(info.fps).limit_denominator(1001) == Fraction(30000, 1001)
    back = list(read_frames(out))
    np.testing.assert_allclose([f.timestamp for f in back], np.arange(12) * 1001 / 30000, atol=1e-4)
    assert _mae(back[5].image[:359, :479], walk_frames.head[5][:359, :479]) < 3
    assert _mae(back[5].image[359], back[5].image[358]) < 3  # the pad repeats the edge


def test_writer_mpeg4(tmp_path, walk_frames):
    """The encoder used where FFmpeg has no libx264."""
    out = tmp_path / "m4.mp4"
    with VideoWriter(out, 480, 360, 25, codec="mpeg4") as writer:
        for image in walk_frames.head[:10]:
            writer.write(image)
    assert probe(out).codec == "mpeg4"
    back = list(read_frames(out))
    assert len(back) == 10 and _mae(back[3].image, walk_frames.head[3]) < 4


def test_writer_is_atomic(tmp_path, walk_frames):
    out = tmp_path / "render.mp4"
    with pytest.raises(KeyError):
        with VideoWriter(out, 480, 360, 25) as writer:
            writer.write(walk_frames.head[0])
            raise KeyError("stopped half way")
    assert list(tmp_path.iterdir()) == []
    # an existing file under the final name survives a failed rewrite untouched
    out.write_bytes(b"previous result")
    with pytest.raises(ValueError, match="rgb"):
        with VideoWriter(out, 480, 360, 25) as writer:
            writer.write(walk_frames.head[0])
            writer.write(walk_frames.head[0][:100])  # wrong shape
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["render.mp4"]
    with pytest.raises(VideoError, match="no frames"):
        with VideoWriter(tmp_path / "empty.mp4", 480, 360, 25):
            pass
    assert not (tmp_path / "empty.mp4").exists()


def test_writer_arguments(tmp_path):
    with pytest.raises(VideoError, match="not available"):
        VideoWriter(tmp_path / "x.mp4", 64, 64, 25, codec="no_such_encoder")
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "x.mp4", 64, 64, 0)
    with pytest.raises(ValueError, match="width"):
        VideoWriter(tmp_path / "x.mp4", 0, 64, 25)
    with pytest.raises(RuntimeError):
        VideoWriter(tmp_path / "x.mp4", 64, 64, 25).write(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(VideoError, match="cannot create") as err:
        with VideoWriter(tmp_path / "x.notavideoformat", 64, 64, 25):
            pass
    assert "x.notavideoformat" in str(err.value)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- bad inputs


def _bad_input(kind: str, tmp_path: Path, astronaut) -> Path:
    if kind == "missing":
        return tmp_path / "nope.mp4"
    if kind == "directory":
        (tmp_path / "folder.mp4").mkdir()
        return tmp_path / "folder.mp4"
    path = tmp_path / {"text": "notes.mp4", "random": "noise.mkv", "image": "astronaut.png",
                       "empty": "empty.mp4", "zero_frames": "zero.mkv", "audio_only": "tone.m4a"}[kind]
    if kind == "text":
        path.write_text("this is a text file, not a video\n" * 20)
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(200_000))
    elif kind == "image":
        av.VideoFrame.from_ndarray(astronaut, format="rgb24").to_image().save(path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "zero_frames":
        zero_frame_video(path)
    elif kind == "audio_only":
        audio_only(path)
    return path


@pytest.mark.parametrize("kind, message", [
    ("missing", "not found"), ("directory", "directory"), ("text", "not a video"), ("random", "not a video"),
    ("empty", "empty"), ("zero_frames", "no frames"), ("audio_only", "no video stream"),
])
def test_bad_inputs(tmp_path, astronaut, kind, message):
    path = _bad_input(kind, tmp_path, astronaut)
    with pytest.raises(VideoError, match=message) as err:
        probe(path)
    assert path.name in str(err.value) and "\n" not in str(err.value)
    assert err.value.path == os.fspath(path)
    with pytest.raises(VideoError, match=message):
        list(read_frames(path))


def _cut(source: Path, tmp_path: Path, fraction: float) -> Path:
    data = source.read_bytes()
    out = tmp_path / f"cut_{source.name}"
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


@pytest.mark.parametrize("which", ["walk", "crowd"])
def test_truncated_copy_raises_after_its_complete_frames(tmp_path, caplog, request, which):
    """The first 40% of the bytes: the complete frames come out, then VideoError names the file and the loss.

    PyAV's behaviour differs by container. mp4 (index at the front): the index lists all 444 frames; the
    demuxer hands over the half-written packet where the bytes end, flagged corrupt, and the decoder
    raises on it when single-threaded but silently skips it with frame threading: read_frames drops such
    a packet so both end the same way. mkv: the demuxer stops at the last complete block, no error at all.
    Either way the container's own frame count or duration shows the loss. By default that is an error
    (a truncated video is bad input); allow_truncated=True keeps the frames with a logged warning.
    """
    source = request.getfixturevalue(f"{which}_video")
    full = request.getfixturevalue(f"{which}_frames")
    cut = _cut(Path(source), tmp_path, 0.4)
    assert probe(cut).width == full.head[0].shape[1]
    for threads in (True, False):
        frames = []
        with pytest.raises(VideoError, match="truncated") as err:
            for f in read_frames(cut, threads=threads):
                frames.append((f.timestamp, _digest(f.image)))
        assert cut.name in str(err.value) and "\n" not in str(err.value)
        assert 0.2 * len(full) < len(frames) < 0.6 * len(full)
        # what came out before the error is exactly the start of the intact video
        assert frames == list(zip(full.timestamps, full.digests))[: len(frames)]

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wildpose.video"):
            kept = [(f.timestamp, _digest(f.image)) for f in read_frames(cut, threads=threads, allow_truncated=True)]
        assert kept == frames
        assert any(cut.name in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records)


def test_corrupt_middle_decodes_on_and_counts_the_damage(tmp_path, walk_video, walk_frames, caplog):
    """20 kB of zeros in the middle of the mp4 (bytes damaged in transit): the frames the decoder rejects are
    left out and counted, every other frame comes out in order, and one warning names the file and the place."""
    data = Path(walk_video).read_bytes()
    middle = len(data) // 2
    bad = tmp_path / "holed.mp4"
    bad.write_bytes(data[:middle] + bytes(20000) + data[middle + 20000:])
    report = DecodeReport()
    with caplog.at_level(logging.WARNING, logger="wildpose.video"):
        frames = list(read_frames(bad, report=report))
    assert report.damaged > 0 and "frame" in report.first_damage
    assert len(frames) + report.damaged == len(walk_frames)
    times = np.array([f.timestamp for f in frames])
    assert (np.diff(times) > 0).all()
    # the frames before the damage are the clean file's, pixel for pixel
    first_bad = int(report.first_damage.split()[1])
    assert first_bad > 0.2 * len(walk_frames)
    assert [_digest(frames[i].image) for i in range(0, first_bad, 25)] == walk_frames.digests[0:first_bad:25]
    assert sum("holed.mp4" in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records) == 1


def test_mostly_corrupt_video_is_rejected(tmp_path, walk_video):
    """Random bytes over most of the stream: not a video with holes but a broken file, one error."""
    data = bytearray(Path(walk_video).read_bytes())
    rng = np.random.default_rng(1)
    start = len(data) // 10
    data[start:-1000] = rng.integers(0, 256, len(data) - 1000 - start, dtype=np.uint8).tobytes()
    bad = tmp_path / "ruined.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(VideoError, match=r"decode errors in \d+ of|truncated or corrupt") as err:
        list(read_frames(bad))
    assert "ruined.mp4" in str(err.value) and "\n" not in str(err.value)


def _remux_with_timestamps(source: Path, out: Path, frames: int, pts_of) -> None:
    """The first ``frames`` frames of ``source`` re-encoded as MJPEG, packet i stamped ``pts_of(i)``
    milliseconds, as old cameras and muxers do."""
    with av.open(os.fspath(source)) as src, av.open(os.fspath(out), "w") as dst:
        stream = dst.add_stream("mjpeg", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuvj420p"
        count = 0

        def mux(packets):
            nonlocal count
            for packet in packets:
                packet.time_base = Fraction(1, 1000)
                packet.pts, packet.dts = pts_of(count), None
                dst.mux(packet)
                count += 1

        for i, frame in enumerate(src.decode(video=0)):
            if i >= frames:
                break
            frame = frame.reformat(320, 180)
            frame.pts = i
            mux(stream.encode(frame))
        mux(stream.encode())


def test_repeated_timestamps_are_replaced_by_the_frame_rate(tmp_path, walk_video, caplog):
    """Packets stamped in steps of 100 ms at 30 fps (three frames share a timestamp): from the first repeat on,
    frames are timed by index and rate, strictly increasing, with one warning."""
    bad = tmp_path / "repeats.mkv"
    _remux_with_timestamps(Path(walk_video), bad, 40, lambda i: (i // 3) * 100)
    report = DecodeReport()
    with caplog.at_level(logging.WARNING, logger="wildpose.video"):
        frames = list(read_frames(bad, report=report))
    times = np.array([f.timestamp for f in frames])
    assert len(frames) == 40 and (np.diff(times) > 0).all()
    assert report.retimed > 30
    np.testing.assert_allclose(np.diff(times[-20:]), 1 / 30, atol=1e-6)
    assert sum("repeats.mkv" in r.getMessage() and "timestamp" in r.getMessage() for r in caplog.records) == 1


def test_still_image_is_one_frame(tmp_path, astronaut):
    path = _bad_input("image", tmp_path, astronaut)
    info = probe(path, fps=12.0)
    assert (info.width, info.height, info.num_frames, info.fps) == (astronaut.shape[1], astronaut.shape[0], 1, 12.0)
    frames = list(read_frames(path))
    assert len(frames) == 1 and frames[0].timestamp == 0.0
    np.testing.assert_array_equal(frames[0].image, astronaut)


def test_folder_of_images_is_a_sequence_in_name_order(tmp_path, walk_frames):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in (1, 2, 10, 3):  # name order with numbers as numbers: 1, 2, 3, 10
        av.VideoFrame.from_ndarray(walk_frames.head[i], format="rgb24").to_image().save(folder / f"img{i}.png")
    assert is_image_sequence(folder)
    info = probe(folder, fps=5.0)
    assert (info.num_frames, info.fps, info.width) == (4, 5.0, walk_frames.head[0].shape[1])
    frames = list(read_frames(folder, fps=5.0))
    np.testing.assert_allclose([f.timestamp for f in frames], [0, 0.2, 0.4, 0.6])
    for frame, i in zip(frames, (1, 2, 3, 10)):
        np.testing.assert_array_equal(frame.image, walk_frames.head[i])
    # an image of another size in the sequence is named
    av.VideoFrame.from_ndarray(walk_frames.head[0][:100], format="rgb24").to_image().save(folder / "img11.png")
    with pytest.raises(VideoError, match="share one size") as err:
        list(read_frames(folder))
    assert "img11.png" in str(err.value)
    # a folder with anything but images is not a sequence
    (folder / "notes.txt").write_text("x")
    assert not is_image_sequence(folder)
