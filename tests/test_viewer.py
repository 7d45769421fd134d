"""The 3D viewer (wildpose.viewer) on the real results of the shared videos, in a real headless Chromium with the
network cut off: the page loads from file:// alone, steps frames, and draws the result's people where the result
puts them (read back through window.wildposeViewer, and seen in the screenshot's pixels)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from wildpose import viewer
from wildpose.errors import FormatError
from wildpose.formats.result import save_result
from wildpose.viewer import payload, view_result_dir, write_viewer

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("WILDPOSE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HALF_STEP = payload.STEP_M / 2 + 1e-5  # rounding to the millimetre, plus float32 at tens of metres
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


# ---------------------------------------------------------------------------------------------- the payload

def _rows_at(result, t):
    """{track id: row} of the rows at frame t."""
    rows = np.flatnonzero(result.frame_index == t)
    return {int(result.track_ids[p]): int(i) for i, p in zip(rows, result.row_track()[rows])}


def test_payload_round_trip_within_half_a_millimetre(walk_result):
    header, blob = payload.encode(walk_result)
    decoded = payload.decode(header, blob)
    assert np.abs(decoded["poses_world"] - walk_result.poses_world).max() <= payload.STEP_M / 2 + 1e-6
    np.testing.assert_array_equal(decoded["frame_index"], walk_result.frame_index)
    np.testing.assert_array_equal(decoded["timestamps"], walk_result.timestamps)
    assert header["track_ids"] == walk_result.track_ids.tolist()
    R = walk_result.camera.world_from_camera(np.arange(walk_result.num_frames))
    np.testing.assert_allclose(decoded["world_from_camera"].reshape(-1, 3, 3), R, atol=1e-6)


def test_payload_marks_rows_without_a_world_pose(walk_result):
    import dataclasses

    world = walk_result.poses_world.copy()
    world[5, 3, 1] = np.nan
    header, blob = payload.encode(dataclasses.replace(walk_result, poses_world=world))
    decoded = payload.decode(header, blob)
    assert decoded["row_flags"][5] & payload.ROW_MISSING
    assert np.isnan(decoded["poses_world"][5]).all()
    assert not (decoded["row_flags"][np.arange(len(world)) != 5] & payload.ROW_MISSING).any()


def test_refuses_results_it_cannot_place(walk_result, tmp_path):
    import dataclasses

    with pytest.raises(FormatError, match="no poses_world"):
        write_viewer(dataclasses.replace(walk_result, poses_world=None), tmp_path / "v.html")
    far = walk_result.poses_world.copy()
    far[0, 10, 0] += 40.0  # a head 40 m from its pelvis
    with pytest.raises(FormatError, match="32 m"):
        write_viewer(dataclasses.replace(walk_result, poses_world=far), tmp_path / "v.html")
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind
    with pytest.raises(FormatError, match="not a result folder"):
        view_result_dir(tmp_path / "missing")
    with pytest.raises(FormatError, match="no such file"):
        view_result_dir(tmp_path)


def test_view_result_dir_writes_view_html(walk_result, tmp_path):
    save_result(walk_result, tmp_path / "poses.npz")
    out = view_result_dir(tmp_path)
    assert out == tmp_path / "view.html" and out.is_file()
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script src" not in text and "<link" not in text  # nothing loaded from elsewhere
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.npz", "view.html"]  # no temporary left
    other = view_result_dir(tmp_path, out=tmp_path / "sub" / "other.html")
    assert other.read_text(encoding="utf-8").count('id="wildpose-data"') == 1


def _bench_viewer():
    spec = importlib.util.spec_from_file_location("bench_viewer", ROOT / "benchmarks" / "bench_viewer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------- the browser

@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (set WILDPOSE_CHROMIUM): the viewer's browser tests need one")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class OfflinePage:
    """A page in its own offline context where every request that is not to a local file is aborted and
    recorded: ``remote`` must stay empty for a page that needs no network."""

    def __init__(self, browser, path: Path):
        self.context = browser.new_context(offline=True, viewport={"width": 1280, "height": 720})
        self.remote: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", self._seen)
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.goto(path.as_uri())
        self.page.evaluate("window.wildposeViewer.ready.then(() => true)")

    def _route(self, route):
        if route.request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            self.remote.append(route.request.url)
            route.abort()

    def _seen(self, request):
        if not request.url.startswith(LOCAL_SCHEMES) and request.url not in self.remote:
            self.remote.append(request.url)

    def js(self, expression, arg=None):
        return self.page.evaluate(expression, arg)

    def canvas_rgb(self) -> np.ndarray:
        png = self.page.locator("#canvas").screenshot()
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1].astype(np.int16)

    def close(self):
        assert self.errors == [], self.errors
        assert self.remote == [], f"the page asked the network for {self.remote}"
        self.context.close()


@pytest.fixture
def open_page(browser):
    pages = []

    def opener(path: Path) -> OfflinePage:
        pages.append(OfflinePage(browser, path))
        return pages[-1]

    yield opener
    for p in pages:
        p.close()


def _hex_rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], np.int16)


def _pixels_of(rgb: np.ndarray, color: str, tolerance: int = 12) -> np.ndarray:
    """(n, 2) x, y of the pixels within ``tolerance`` of ``color`` in every channel."""
    ys, xs = np.nonzero((np.abs(rgb - _hex_rgb(color)) <= tolerance).all(-1))
    return np.stack([xs, ys], 1)


def _check_drawn(page: OfflinePage, result, t: int) -> dict:
    """Frame t: the page draws exactly the result's people there, each joint within half a step."""
    page.js("t => wildposeViewer.setFrame(t)", t)
    drawn = page.js("wildposeViewer.drawn()")
    expected = _rows_at(result, t)
    assert drawn["frame"] == t
    assert sorted(p["id"] for p in drawn["people"]) == sorted(expected)
    for person in drawn["people"]:
        world = result.poses_world[expected[person["id"]]]
        assert np.abs(np.array(person["joints"]) - world).max() <= HALF_STEP
        decoded = page.js("([id, t]) => wildposeViewer.jointPositions(id, t)", [person["id"], t])
        assert np.abs(np.array(decoded) - world).max() <= HALF_STEP
    assert sorted(p["id"] for p in page.js("t => wildposeViewer.people(t)", t)) == sorted(expected)
    return drawn


def test_walk_page_draws_the_result(walk_result, tmp_path, open_page):
    result = walk_result
    title = 'walk </script><!-- & "quoted"'  # a title must not end the page's elements early
    page = open_page(write_viewer(result, tmp_path / "view.html", title=title))
    assert page.page.title() == title and page.page.locator("#title").inner_text() == title
    assert page.js("wildposeViewer.numFrames") == result.num_frames
    tracks = page.js("wildposeViewer.tracks()")
    assert [t["id"] for t in tracks] == result.track_ids.tolist()
    assert [t["rows"] for t in tracks] == result.track_lengths.tolist()
    np.testing.assert_array_equal(page.js("wildposeViewer.timestamps()"), result.timestamps)

    frames = result.frames(0)
    for t in (int(frames[0]), int(frames[len(frames) // 2]), int(frames[-1])):
        drawn = _check_drawn(page, result, t)
        assert [label["text"] for label in drawn["labels"]] == [str(result.track_ids[0])] or \
            result.interpolated[_rows_at(result, t)[int(result.track_ids[0])]]
        clock = page.page.locator("#clock").inner_text()
        assert f"frame {t} / {result.num_frames - 1}" in clock and f"t {result.timestamps[t]:.3f} s" in clock
        assert page.page.locator("#slider").input_value() == str(t)
        # the camera's frustum: its position, and its view direction at this frame
        R = result.camera.world_from_camera(t)
        np.testing.assert_allclose(drawn["camera"]["position"], result.camera.position, atol=1e-6)
        np.testing.assert_allclose(drawn["camera"]["direction"], R[:, 2], atol=1e-6)
    absent = np.setdiff1d(np.arange(result.num_frames), frames)
    if len(absent):  # the walker is out of view there: nobody is drawn
        assert _check_drawn(page, result, int(absent[0]))["people"] == []

    # the pixels: the person in the track's colour, around where the page projects the pelvis
    t = int(frames[len(frames) // 2])
    page.js("t => wildposeViewer.setFrame(t)", t)
    for option in ("trajectories", "labels", "camera"):
        page.js("name => wildposeViewer.setOption(name, false)", option)
    color = tracks[0]["color"]
    pixels = _pixels_of(page.canvas_rgb(), color)
    assert len(pixels) >= 50, f"{len(pixels)} pixels of {color}"
    pelvis_world = result.poses_world[_rows_at(result, t)[tracks[0]["id"]], 0].tolist()
    pelvis = page.js("p => wildposeViewer.project(...p)", pelvis_world)
    dpr = page.js("window.devicePixelRatio")
    lo, hi = pixels.min(0) / dpr, pixels.max(0) / dpr
    assert lo[0] - 5 <= pelvis[0] <= hi[0] + 5 and lo[1] - 5 <= pelvis[1] <= hi[1] + 5
    page.js("wildposeViewer.setAllTracksVisible(false)")
    assert len(_pixels_of(page.canvas_rgb(), color)) == 0  # the negative: hidden, so not drawn
    assert page.js("wildposeViewer.drawn().people") == []
    page.js("wildposeViewer.setAllTracksVisible(true)")
    page.js("wildposeViewer.setOption('trajectories', true)")
    assert page.js("wildposeViewer.drawn().trajectories") == len(result)


def test_walk_page_controls(walk_result, tmp_path, open_page):
    page = open_page(write_viewer(walk_result, tmp_path / "view.html"))
    p = page.page
    page.js("wildposeViewer.setFrame(100)")
    p.keyboard.press("ArrowRight")
    assert page.js("wildposeViewer.frame()") == 101
    p.keyboard.press("Shift+ArrowLeft")
    assert page.js("wildposeViewer.frame()") == 91
    p.click("#next")
    assert page.js("wildposeViewer.frame()") == 92
    p.locator("#slider").fill("300")
    assert page.js("wildposeViewer.frame()") == 300
    # play at 4x for half a second: about 2 s of video pass
    page.js("wildposeViewer.setFrame(0)")
    p.select_option("#speed", "4")
    assert page.js("wildposeViewer.speed()") == 4
    p.click("#play")
    p.wait_for_timeout(500)
    p.click("#play")
    assert not page.js("wildposeViewer.isPlaying()")
    played = page.js("wildposeViewer.time()")
    assert 1.0 <= played <= 4.0, played
    # per-track show/hide from the list
    track = int(walk_result.track_ids[0])
    t = int(walk_result.frames(0)[10])
    page.js("t => wildposeViewer.setFrame(t)", t)
    p.locator(f'#tracks input[data-track="{track}"]').uncheck()
    assert page.js("wildposeViewer.drawn().people") == []
    p.locator(f'#tracks input[data-track="{track}"]').check()
    assert [q["id"] for q in page.js("wildposeViewer.drawn().people")] == [track]
    # through the video's camera: the 3D view sits at the camera, looks along its axis, and turns with it
    looking = "(() => { const c = wildposeViewer.three.camera, d = new wildposeViewer.three.THREE.Vector3(); " \
              "c.getWorldDirection(d); return [c.position.x, c.position.y, c.position.z, d.x, d.y, d.z]; })()"
    p.click("#view-camera")
    assert page.js("wildposeViewer.throughCamera()")
    for t in (10, 400):
        page.js("t => wildposeViewer.setFrame(t)", t)
        eye = np.array(page.js(looking))
        np.testing.assert_allclose(eye[:3], walk_result.camera.position, atol=1e-5)
        np.testing.assert_allclose(eye[3:], walk_result.camera.world_from_camera(t)[:, 2], atol=1e-4)
    assert not page.js("wildposeViewer.drawn().camera.visible")  # no frustum across the view from inside it
    p.click("#view-reset")
    assert not page.js("wildposeViewer.throughCamera()")
    # orbit (drag), zoom (wheel), pan (right-drag) move the 3D camera
    box = p.locator("#canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    state = "(() => { const c = wildposeViewer.three.camera, g = wildposeViewer.three.controls.target; " \
            "return [c.position.x, c.position.y, c.position.z, g.x, g.y, g.z]; })()"
    before = np.array(page.js(state))
    p.mouse.move(cx, cy)
    p.mouse.down()
    p.mouse.move(cx + 120, cy + 30, steps=5)
    p.mouse.up()
    orbited = np.array(page.js(state))
    assert np.abs(orbited[:3] - before[:3]).max() > 0.1 and np.allclose(orbited[3:], before[3:])
    p.mouse.wheel(0, -400)
    p.wait_for_timeout(50)
    zoomed = np.array(page.js(state))
    assert np.linalg.norm(zoomed[:3] - zoomed[3:]) < np.linalg.norm(orbited[:3] - orbited[3:]) - 0.1
    p.mouse.move(cx, cy)
    p.mouse.down(button="right")
    p.mouse.move(cx - 100, cy, steps=5)
    p.mouse.up(button="right")
    panned = np.array(page.js(state))
    assert np.abs(panned[3:] - zoomed[3:]).max() > 0.05


def test_crowd_page_draws_every_runner(crowd_result, tmp_path, open_page):
    result = crowd_result
    page = open_page(write_viewer(result, tmp_path / "view.html"))
    counts = np.bincount(result.frame_index, minlength=result.num_frames)
    busiest = int(np.argmax(counts))
    assert counts[busiest] >= 3
    drawn = _check_drawn(page, result, busiest)
    for t in np.linspace(0, result.num_frames - 1, 5).astype(int):
        _check_drawn(page, result, int(t))
    # hiding one track takes it (and only it) out of the scene and the labels
    ids = sorted(p["id"] for p in drawn["people"])
    page.js("t => wildposeViewer.setFrame(t)", busiest)
    page.js("id => wildposeViewer.setTrackVisible(id, false)", ids[0])
    now = page.js("wildposeViewer.drawn()")
    assert sorted(p["id"] for p in now["people"]) == ids[1:]
    assert str(ids[0]) not in [label["text"].split()[0] for label in now["labels"]]
    page.js("wildposeViewer.setAllTracksVisible(true)")
    # each of five runners, shown alone, appears in its colour where the page projects its pelvis
    for option in ("trajectories", "labels", "camera"):
        page.js("name => wildposeViewer.setOption(name, false)", option)
    colors = {t["id"]: t["color"] for t in page.js("wildposeViewer.tracks()")}
    rows = _rows_at(result, busiest)
    dpr = page.js("window.devicePixelRatio")
    for track in ids[:5]:
        page.js("wildposeViewer.setAllTracksVisible(false)")
        page.js("id => wildposeViewer.setTrackVisible(id, true)", track)
        pixels = _pixels_of(page.canvas_rgb(), colors[track])
        assert len(pixels) >= 20, f"track {track}: {len(pixels)} pixels of {colors[track]}"
        pelvis = np.array(page.js("p => wildposeViewer.project(...p)", result.poses_world[rows[track], 0].tolist()))
        assert np.linalg.norm(np.median(pixels, 0) / dpr - pelvis[:2]) < 60


def test_video_plays_in_sync(walk_result, walk_video, tmp_path, open_page):
    out = write_viewer(walk_result, tmp_path / "view.html", video=walk_video)
    assert "data:video/mp4;base64," in out.read_text(encoding="utf-8")  # 0.7 MB: embedded
    page = open_page(out)
    _check_sync(page, walk_result)


def test_large_video_is_referenced_by_relative_path(walk_result, walk_video, tmp_path, open_page, monkeypatch):
    monkeypatch.setattr(viewer, "EMBED_VIDEO_MAX_BYTES", 1000)
    out = write_viewer(walk_result, tmp_path / "page" / "view.html", video=walk_video)
    text = out.read_text(encoding="utf-8")
    assert "data:video" not in text
    relative = os.path.relpath(walk_video.resolve(), out.parent.resolve())
    assert f'window.WILDPOSE_VIDEO_SRC = "{Path(relative).as_posix()}"' in text
    assert out.stat().st_size < 2_000_000
    _check_sync(open_page(out), walk_result)


def _check_sync(page: OfflinePage, result):
    """The 3D frame follows the <video>'s clock by timestamps, and the slider moves the video."""
    sync = page.js("""async (frames) => {
        const v = wildposeViewer.video();
        if (!v) return null;
        await new Promise(r => v.readyState >= 1 ? r() : v.addEventListener('loadedmetadata', r, {once: true}));
        const ts = wildposeViewer.timestamps(), out = [];
        for (const t of frames) {
            v.currentTime = ts[t] + 0.3 * (ts[t + 1] - ts[t]);  // inside frame t
            await new Promise(r => v.addEventListener('seeked', r, {once: true}));
            out.push(wildposeViewer.frame());
        }
        wildposeViewer.setFrame(frames[0]);
        const set = v.currentTime;
        wildposeViewer.play();
        await new Promise(r => setTimeout(r, 600));
        const paused = new Promise(r => v.addEventListener('pause', r, {once: true}));
        wildposeViewer.pause();
        await paused;
        await new Promise(r => setTimeout(r, 100));  // any frame callback still queued has run
        return {frames: out, set, after: wildposeViewer.frame(), expected: wildposeViewer.frameAtTime(v.currentTime)};
    }""", [50, 200, 333])
    assert sync is not None and page.js("wildposeViewer.videoActive()"), "the video did not play"
    assert sync["frames"] == [50, 200, 333]
    assert abs(sync["set"] - result.timestamps[50]) < 1e-3
    assert sync["after"] > 50 and sync["after"] == sync["expected"]


def test_five_minutes_of_five_people_stay_under_20_mb(walk_result, tmp_path, open_page):
    big = _bench_viewer().synthetic_result(walk_result, minutes=5, people=5, fps=30)
    out = write_viewer(big, tmp_path / "view.html")
    assert out.stat().st_size < 20e6
    page = open_page(out)
    assert page.js("wildposeViewer.numRows") == 45_000
    _check_drawn(page, big, big.num_frames - 1)
