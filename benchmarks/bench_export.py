"""What each export costs, against writing poses.npz in the same process.

    python benchmarks/bench_export.py                  # the crowd result played 1x and 20x in a row
    python benchmarks/bench_export.py --repeat 100     # longer

The shared crowd video (138 frames, 27 tracks) goes through the whole pipeline once; its result is then played
``--repeat`` times in a row (new track ids each time, frames shifted: a long video's worth of rows). Each format
is written into a fresh folder; printed: seconds, seconds per 1000 person-frames, size in bytes per person-frame,
and both as a ratio to poses.npz's. Absolute numbers depend on the machine; ratios are what to compare.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CROWD = ROOT.parent / "shared" / "data" / "videos" / "marathon_crowd.mkv"


def repeated(result, times: int):
    """``result`` played ``times`` times in a row: rows, ids and timestamps tiled."""
    from wildpose.types import Camera, Result

    if times == 1:
        return result
    T, P = result.num_frames, len(result.track_ids)
    period = result.timestamps[-1] - result.timestamps[0] + 1.0 / result.fps
    tile = lambda a: np.concatenate([a] * times)  # noqa: E731
    camera = result.camera
    if camera is not None:
        camera = Camera(camera.intrinsics, camera.focal_length_known, camera.rotation, camera.position,
                        tile(camera.rotations), camera.static, tile(camera.rotation_held))
    return Result(np.concatenate([result.track_ids + k * (result.track_ids.max() + 1) for k in range(times)]),
                  tile(result.track_lengths),
                  np.concatenate([result.frame_index + k * T for k in range(times)]),
                  np.concatenate([result.timestamps + k * period for k in range(times)]),
                  keypoints_2d=tile(result.keypoints_2d), poses_3d=tile(result.poses_3d),
                  interpolated=tile(result.interpolated), fps=result.fps, image_size=result.image_size,
                  trajectory=tile(result.trajectory), poses_world=tile(result.poses_world), camera=camera)


def measure(result, formats: list[str]) -> list[tuple[str, float, int]]:
    from wildpose.export import export_result
    from wildpose.formats.result import save_result

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        save_result(result, Path(tmp) / "poses.npz")
        rows.append(("poses.npz", time.perf_counter() - t0, (Path(tmp) / "poses.npz").stat().st_size))
        for name in formats:
            out = Path(tmp) / name
            t0 = time.perf_counter()
            files = export_result(result, out, name, stem="crowd")
            rows.append((name, time.perf_counter() - t0, sum(f.stat().st_size for f in files)))
        try:
            from wildpose.viewer import write_viewer
        except ImportError:
            pass
        else:
            t0 = time.perf_counter()
            page = write_viewer(result, Path(tmp) / "view.html")
            rows.append(("viewer", time.perf_counter() - t0, page.stat().st_size))
        from wildpose.plots import plot_result

        t0 = time.perf_counter()
        files = plot_result(result, Path(tmp) / "plots", "crowd")
        rows.append(("plots", time.perf_counter() - t0, sum(f.stat().st_size for f in files)))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    if not CROWD.exists():
        print(f"{CROWD} is absent: the shared data is needed", file=sys.stderr)
        return 1
    from wildpose.export import FORMATS
    from wildpose.pipeline import process_video

    base, _ = process_video(CROWD)
    for times in (1, args.repeat):
        result = repeated(base, times)
        print(f"\n{times}x the crowd: {result.num_rows} person-frames, {len(result.track_ids)} tracks, "
              f"{result.num_frames} frames ({result.num_frames / result.fps / 60:.1f} min)")
        rows = measure(result, list(FORMATS))
        ref_s, ref_b = rows[0][1], rows[0][2]
        print(f"{'output':10} {'seconds':>8} {'ms/1k rows':>10} {'x npz':>7} {'B/row':>8} {'x npz':>7}")
        for name, seconds, size in rows:
            print(f"{name:10} {seconds:8.2f} {1e6 * seconds / result.num_rows:10.1f} {seconds / ref_s:7.1f} "
                  f"{size / result.num_rows:8.0f} {size / ref_b:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
