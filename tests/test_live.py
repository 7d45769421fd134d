"""wildpose live on real streams: walk_single.mp4 served as MPEG-TS on loopback TCP (tests/live_streams.py), the
real detector and models, output checked against the shipped JSON Schema and the offline pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from live_streams import MpegTsServer, free_port, write_mpegts  # noqa: E402

from wildpose.errors import ModelError, VideoError  # noqa: E402
from wildpose.live import LiveOptions, load_schema, read_lines, run_live  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# walk_single's frames 40-99: the man is detected in every one of them (no track gap), re-timed at 30 fps,
# the causal lifter's own rate, so every frame lies on the lifter's time grid
FIRST, FRAMES, FPS = 40, 60, 30


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (the test extra) validates the output lines")
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def clip30(walk_video, tmp_path_factory) -> Path:
    return write_mpegts(walk_video, tmp_path_factory.mktemp("live") / "walk30.ts", FRAMES, FPS, first=FIRST)


@pytest.fixture(scope="module")
def streamed30(clip30, tmp_path_factory):
    """The clip sent over TCP as fast as live takes it (no drops: the reader waits, TCP slows the sender)."""
    port = free_port()
    server = MpegTsServer(clip30, port).start()
    out = tmp_path_factory.mktemp("live-out") / "live.jsonl"
    try:
        summary = run_live(f"tcp://127.0.0.1:{port}", output=out, drop=False, reconnects=0)
        sent = server.join()
    finally:
        server.kill()
    return summary, list(read_lines(out)), sent


def test_stream_lines_are_valid_and_in_order(streamed30, validator):
    summary, lines, sent = streamed30
    for line in lines:
        validator.validate(line)
    assert sent == FRAMES and summary.decoded == FRAMES and summary.dropped == 0
    assert [r["frame"] for r in lines] == list(range(FRAMES))
    assert np.allclose([r["time"] for r in lines], np.arange(FRAMES) / FPS, atol=1e-5)
    assert all(len(r["people"]) == 1 and r["people"][0]["id"] == 1 for r in lines)
    worlds = [r["world"] for r in lines]
    assert worlds[0] is None and worlds[-1] is not None and worlds[-1]["fits"] >= 2  # it settles as it goes
    assert all(np.isfinite(np.array(r["people"][0]["joints_world"], float)).all() for r in lines if r["world"])


def test_stream_poses_equal_offline_causal_run(streamed30, clip30):
    """With no drops, live equals ``wildpose run --lifter causal --static-camera --preset accurate`` on the same frames: the 2D
    keypoints (the same decoded pixels), and the root-relative 3D poses (causal lifter + causal refinement),
    to the output's rounding (1e-5 m). The roots (the trajectory model is symmetric) equal the offline
    trajectory model on the frames up to each one (``estimate_trajectory`` on the prefix)."""
    from wildpose.pipeline import RunOptions, process_video
    from wildpose.world import estimate_trajectory

    _, lines, _ = streamed30
    result, info = process_video(clip30, RunOptions(lifter="causal", static_camera=True, preset="accurate"))
    assert len(result) == 1 and not result.interpolated.any() and result.num_rows == FRAMES  # the premise
    keypoints = np.array([r["people"][0]["keypoints_2d"] for r in lines])
    poses = np.array([r["people"][0]["pose_3d"] for r in lines])
    roots = np.array([r["people"][0]["joints_camera"][0] for r in lines])
    np.testing.assert_allclose(keypoints[..., :2], result.keypoints_2d[..., :2], atol=0.006)
    np.testing.assert_allclose(poses, result.poses_3d, atol=2e-5)
    kp, times = result.keypoints_2d, result.timestamps
    for i in (0, 5, 13, 30, FRAMES - 1):
        prefix = estimate_trajectory(kp[:i + 1], info.image_size, info.fps, times[:i + 1])
        np.testing.assert_allclose(roots[i], prefix[-1], atol=2e-5)


def test_prefix_lifter_equals_offline_on_uneven_times(streamed30):
    """Off the lifter's grid (the same keypoints at 25 fps, with a missed frame), the streamed network output
    for each frame equals ``run_temporal_model`` on the frames so far (the strictly causal result)."""
    from wildpose.lift import load_lifter, run_temporal_model
    from wildpose.live.causal import PrefixTemporalModel

    _, lines, _ = streamed30
    keypoints = np.array([r["people"][0]["keypoints_2d"] for r in lines], np.float32)
    times = np.arange(FRAMES) / 25.0
    keep = np.ones(FRAMES, bool)
    keep[17] = False
    keypoints, times = keypoints[keep], times[keep]
    model = load_lifter("causal")
    stream = PrefixTemporalModel(model, (480, 360))
    for i in range(len(times)):
        newest = stream.push(keypoints[i], times[i])
        if i % 7 == 0 or i == len(times) - 1:
            offline = run_temporal_model(model, keypoints[:i + 1], (480, 360), 25.0, timestamps=times[:i + 1])[-1]
            np.testing.assert_allclose(newest, offline, atol=1e-5)


def test_slow_processing_drops_oldest_and_counts(walk_video, validator, tmp_path):
    """A real-time sender (25 fps) and processing made slower than that: frames are dropped, every frame
    is either handled (in order) or counted as dropped."""
    port = free_port()
    server = MpegTsServer(walk_video, port, realtime=True, max_packets=50).start()
    out = tmp_path / "live.jsonl"
    try:
        summary = run_live(f"tcp://127.0.0.1:{port}", output=out, queue_size=2, reconnects=0,
                           on_frame=lambda record: time.sleep(0.1))
        sent = server.join()
    finally:
        server.kill()
    lines = list(read_lines(out))
    for line in lines:
        validator.validate(line)
    numbers = [r["frame"] for r in lines]
    assert numbers == sorted(set(numbers))  # in order, none twice
    assert summary.decoded == sent == 50
    assert summary.dropped_queue > 0
    assert len(lines) + summary.dropped == summary.decoded
    assert lines[-1]["dropped"]["queue"] <= summary.dropped_queue
    # the holes in the frame numbers are exactly the dropped frames
    assert len(set(range(summary.decoded)) - set(numbers)) == summary.dropped


def test_max_latency_drops_late_frames(walk_video, tmp_path):
    port = free_port()
    server = MpegTsServer(walk_video, port, realtime=True, max_packets=30).start()
    try:
        summary = run_live(f"tcp://127.0.0.1:{port}", output=tmp_path / "o.jsonl", queue_size=8, reconnects=0,
                           max_latency=0.05, on_frame=lambda record: time.sleep(0.15))
        server.join()
    finally:
        server.kill()
    assert summary.dropped_late > 0 and summary.frames + summary.dropped == summary.decoded


def test_reconnects_after_the_stream_drops(walk_video, tmp_path, caplog):
    port = free_port()
    server = MpegTsServer(walk_video, port, max_packets=40, cut_after=20).start()
    try:
        with caplog.at_level("WARNING", logger="wildpose.live.source"):
            summary = run_live(f"tcp://127.0.0.1:{port}", output=tmp_path / "o.jsonl", drop=False, reconnects=1,
                               options=LiveOptions(trajectory=False))
        server.join()
    finally:
        server.kill()
    lines = list(read_lines(tmp_path / "o.jsonl"))
    assert summary.reconnects >= 1 and summary.decoded > 20
    assert sum("reconnecting" in r.message for r in caplog.records) == summary.reconnects
    assert np.all(np.diff([r["time"] for r in lines]) > 0) and np.all(np.diff([r["frame"] for r in lines]) > 0)


def test_ctrl_c_leaves_complete_output(walk_video, validator, tmp_path):
    out = tmp_path / "live.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "wildpose.cli", "live", str(walk_video), "--realtime", "-o",
                             str(out)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for a few lines in the temporary file
            partial = list(tmp_path.glob(".live.jsonl.partial.*"))
            if partial and partial[0].read_text().count("\n") >= 5:
                break
            time.sleep(0.1)
        assert not out.exists()  # under its final name only when complete
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    text = out.read_text()
    assert text.endswith("\n") and not list(tmp_path.glob(".live.jsonl.partial.*"))
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) >= 5
    for line in lines:
        validator.validate(line)
    assert "(interrupted)" in err


def test_bad_sources_and_lifter(tmp_path, walk_video):
    missing = tmp_path / "nothing.mp4"
    with pytest.raises(VideoError, match="nothing.mp4: file not found"):
        run_live(str(missing), output=tmp_path / "o.jsonl")
    with pytest.raises(ModelError, match="causal"):
        run_live(str(walk_video), LiveOptions(lifter=None), output=tmp_path / "o.jsonl")
    assert not list(tmp_path.iterdir())  # nothing half-written
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-m", "wildpose.cli", "live", str(missing)], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [f"error: {missing}: file not found"]


def test_render_and_browser_view(walk_video, tmp_path):
    """--render writes the side-by-side video of the processed frames; --serve answers the page and sends
    each output line over the websocket."""
    import asyncio
    import threading
    import urllib.request

    pytest.importorskip("websockets", reason="--serve needs the websockets package (the live extra)")
    from websockets.asyncio.client import connect

    from wildpose.video import probe

    port = free_port()
    done = {}

    def run():
        done["summary"] = run_live(str(walk_video), output=tmp_path / "o.jsonl", realtime=True, serve_port=port,
                                   render=tmp_path / "render.mp4", max_frames=50, handle_sigint=False)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert "THREE" in page and "wildposeLive" in page

        async def first_message():
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), 20))

        message = asyncio.run(first_message())
    finally:
        thread.join(60)
    summary = done["summary"]
    assert 0 <= message["frame"] < summary.decoded and isinstance(message["people"], list)
    info = probe(tmp_path / "render.mp4")
    assert info.num_frames == summary.frames and info.image_size == (960, 360)


def test_live_page_in_headless_chromium_draws_the_people(walk_video, tmp_path):
    """The served page in a real headless Chromium: it connects to the websocket and draws the frames it gets."""
    import shutil
    import threading

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    pytest.importorskip("websockets", reason="--serve needs the websockets package (the live extra)")
    chromium_path = os.environ.get("WILDPOSE_CHROMIUM") or shutil.which("chromium")
    if not chromium_path:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    port = free_port()
    done = {}

    def run():
        done["summary"] = run_live(str(walk_video), output=tmp_path / "o.jsonl", realtime=True, serve_port=port,
                                   max_frames=200, handle_sigint=False)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            deadline = time.monotonic() + 30
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=5000)
                    break
                except sync_api.Error:
                    assert time.monotonic() < deadline, "the live page never answered"
                    time.sleep(0.2)
            page.wait_for_function("window.wildposeLive && window.wildposeLive.frames >= 10 && "
                                   "window.wildposeLive.vertices > 0", timeout=30000)
            state = page.evaluate("({frames: wildposeLive.frames, frame: wildposeLive.frame, "
                                  "vertices: wildposeLive.vertices, status: document.body.innerText})")
            browser.close()
    finally:
        thread.join(60)
    assert not errors, errors
    assert state["vertices"] % 2 == 0 and state["vertices"] >= 2 * 16  # one person's 16 bones, two ends each
    assert "frame" in state["status"] and "people 1" in state["status"]
    assert 0 <= state["frame"] < done["summary"].decoded
