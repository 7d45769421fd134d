"""The viewer's size: bytes per person-frame of the HTML page, and the page of a 5-minute video with 5 people.

The people are real motion: the root-relative world poses of a real result (walk_single.mp4 through the whole
pipeline, or ``--result poses.npz``), played back and forth for as long as asked, each person a different
stretch of it, walking a circle of their own on the floor (x, z) at 1.4 m/s. Their jitter, and so what deflate
can save, is the lifter's own. Prints the page's bytes, the part that is not the rows' data (three.js, the viewer,
the JSON header), bytes per person-frame of the data, and the write and (with ``--browser``) the load time in
headless Chromium.

Usage: python benchmarks/bench_viewer.py [--result poses.npz] [--minutes 5] [--people 5] [--fps 30] [--browser]
Target: a 5-minute, 30 fps, 5-person result's page under 20 MB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WILDPOSE_SHARED", ROOT.parent / "shared"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def synthetic_result(source, minutes: float = 5.0, people: int = 5, fps: float = 30.0):
    """A Result of ``people`` tracks over ``minutes`` at ``fps``, every track in every frame, from ``source``'s
    real poses (see the module docstring)."""
    from wildpose.types import Camera, Result

    world = source.poses_world[~np.isnan(source.poses_world).any(axis=(1, 2))]
    relative = world - world[:, :1]
    height = float(np.median(world[:, 0, 1]))
    cycle = np.concatenate([np.arange(len(world)), np.arange(len(world) - 2, 0, -1)])  # forth and back
    T = int(round(minutes * 60 * fps))
    t = np.arange(T) / fps
    rows = []
    for p in range(people):
        radius = 3.0 + p
        angle = 1.4 * t / radius + p
        pelvis = np.stack([radius * np.cos(angle), np.full(T, height), radius * np.sin(angle) - 8.0], 1)
        rows.append(relative[cycle[(np.arange(T) + 41 * p) % len(cycle)]] + pelvis[:, None])
    poses_world = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 17, 3), np.float32)
    N = len(poses_world)
    camera = None
    if source.camera is not None:
        camera = Camera(source.camera.intrinsics, source.camera.focal_length_known, source.camera.rotation,
                        source.camera.position, np.broadcast_to(np.eye(3, dtype=np.float32), (T, 3, 3)),
                        True, np.zeros(T, bool))
    return Result(np.arange(1, people + 1), np.full(people, T), np.tile(np.arange(T), people), t,
                  keypoints_2d=np.zeros((N, 17, 3), np.float32), poses_3d=poses_world - poses_world[:, :1],
                  interpolated=np.zeros(N, bool), fps=fps, image_size=source.image_size, poses_world=poses_world,
                  camera=camera)


def _load_time(page_path: Path) -> float | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(offline=True).new_page()
        start = time.perf_counter()
        page.goto(page_path.as_uri())
        page.evaluate("window.wildposeViewer.ready.then(() => 1)")
        seconds = time.perf_counter() - start
        browser.close()
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--result", type=Path, help="a poses.npz to take the motion from (default: run the pipeline "
                    "on the shared walk_single.mp4)")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--people", type=int, default=5)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--browser", action="store_true", help="also time the page's load in headless Chromium")
    args = ap.parse_args(argv)

    from wildpose.viewer import write_viewer

    if args.result is not None:
        from wildpose.formats.result import load_result

        source = load_result(args.result)
        what = str(args.result)
    else:
        from wildpose.pipeline import process_video

        video = SHARED / "data" / "videos" / "walk_single.mp4"
        if not video.exists():
            print(f"{video} is absent: pass --result poses.npz", file=sys.stderr)
            return 2
        source, _ = process_video(video)
        what = str(video)
    result = synthetic_result(source, args.minutes, args.people, args.fps)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        page = write_viewer(result, Path(tmp) / "view.html")
        write_s = time.perf_counter() - start
        size = page.stat().st_size
        text = page.read_text(encoding="utf-8")
        start_tag = '<script id="wildpose-data" type="application/octet-stream">'
        data_chars = text.index("</script>", text.index(start_tag)) - text.index(start_tag) - len(start_tag)
        fixed = size - data_chars  # three.js, the viewer, the header
        load_s = _load_time(page) if args.browser else None
    rows = result.num_rows
    print(f"motion from {what}: {len(source.poses_world)} real poses")
    print(f"{args.minutes:g} min, {args.fps:g} fps, {args.people} people: {rows} person-frames")
    print(f"page: {size} bytes ({size / 2**20:.2f} MiB), the rest (three.js, viewer, header) {fixed} bytes")
    print(f"data: {(size - fixed) / rows:.1f} bytes per person-frame (base64 of deflated int mm; "
          f"{17 * 3 * 4} as float32)")
    print(f"write: {write_s:.2f} s" + (f", load in headless Chromium: {load_s:.2f} s" if load_s is not None else ""))
    print(f"target < 20 MB: {'met' if size < 20e6 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
