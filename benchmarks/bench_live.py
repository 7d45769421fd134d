"""Live latency and throughput: the shared videos streamed in real time as MPEG-TS over loopback TCP.

Each video is served by a subprocess in real time (tests/live_streams.py): walk_single.mp4 at its own 25 fps,
its packets remuxed (not re-encoded); marathon_crowd.mkv re-encoded once to an MPEG-TS file at 30 fps (its
Matroska packets do not remux into MPEG-TS decodably), then served the same way. It is read by
``wildpose.live.run_live`` with the given settings, as ``wildpose live tcp://...`` would. Reported per run:

- capture-to-output latency, p50 / p95 / max (ms): from the decoder delivering a frame to its JSON line being
  written (the frame's queue wait, detection, tracking, lifting, world and the write);
- sustained frames/s: frames processed over the stream's duration; decoded; dropped (queue and late) and the
  drop rate;
- processing ms per frame (median; a frame taken from the queue -> its line written), and its ratio to the
  detector alone on the same frames (the baseline, measured in the same process right after: the whole live
  step against MoveNet's share of it).

The machine is shared (other agents' jobs): the load average before and after each run is printed.

Usage: python benchmarks/bench_live.py [--videos walk_single.mp4 marathon_crowd.mkv] [--preset default fast]
       [--seconds S] [--shared DIR] [--json]
Target (issue 19): walk_single at 25 fps: no drops and p95 < 100 ms (default settings or the `fast` preset);
the crowd's drop rate reported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WILDPOSE_SHARED", ROOT.parent / "shared"))
sys.path.insert(0, str(ROOT / "tests"))

PRESETS = {"default": {}, "fast": {"input_size": 192, "crop_pass": False}}  # fast: wildpose live --fast


def _detector_baseline(video: Path, options, frames: int) -> float:
    """ms per frame of the detector alone on the first ``frames`` frames (decoded beforehand)."""
    from wildpose.pipeline import RunOptions, make_detector
    from wildpose.video import read_frames

    images = [f.image for _, f in zip(range(frames), read_frames(video))]
    from wildpose.live import detector_options

    detector = make_detector(RunOptions(detector_options=detector_options(options)))
    detector(images[0])
    t = time.perf_counter()
    for image in images:
        detector(image)
    return (time.perf_counter() - t) / len(images) * 1e3


def run_one(video: Path, preset: str, seconds: float | None) -> dict:
    from live_streams import MpegTsServer, free_port

    from wildpose.live import LiveOptions, run_live
    from wildpose.video import probe

    if video.suffix == ".mkv":
        import tempfile

        from live_streams import write_mpegts

        video = write_mpegts(video, Path(tempfile.mkdtemp()) / f"{video.stem}.ts", 100_000, 30)
    info = probe(video)
    options = LiveOptions(**PRESETS[preset])
    packets = None if seconds is None else int(round(seconds * info.fps))
    port = free_port()
    load_before = os.getloadavg()
    server = MpegTsServer(video, port, realtime=True, max_packets=packets).start()
    try:
        t0 = time.perf_counter()
        summary = run_live(f"tcp://127.0.0.1:{port}", options, stream=open(os.devnull, "w"), reconnects=0,
                           handle_sigint=False)
        wall = time.perf_counter() - t0
        server.join()
    finally:
        server.kill()
    load_after = os.getloadavg()
    duration = summary.decoded / info.fps
    lat = np.array(summary.latencies) * 1e3
    detector_ms = _detector_baseline(video, options, min(100, summary.decoded))
    processing_ms = float(np.median(summary.processing)) * 1e3
    return {"video": video.name, "preset": preset, "fps_source": round(info.fps, 3), "decoded": summary.decoded,
            "processed": summary.frames, "dropped_queue": summary.dropped_queue,
            "dropped_late": summary.dropped_late, "drop_rate": round(summary.dropped / max(1, summary.decoded), 4),
            "sustained_fps": round(summary.frames / duration, 2),
            "latency_p50_ms": round(float(np.percentile(lat, 50)), 1),
            "latency_p95_ms": round(float(np.percentile(lat, 95)), 1), "latency_max_ms": round(float(lat.max()), 1),
            "processing_ms": round(processing_ms, 1), "detector_ms": round(detector_ms, 1),
            "processing_vs_detector": round(processing_ms / detector_ms, 2),
            "people_ids": summary.people, "wall_s": round(wall, 1),
            "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in load_after]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", nargs="+", default=["walk_single.mp4", "marathon_crowd.mkv"])
    ap.add_argument("--preset", nargs="+", default=["default", "fast"], choices=sorted(PRESETS))
    ap.add_argument("--seconds", type=float, help="stream only the first S seconds of each video")
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for name in args.videos:
        video = args.shared / "data" / "videos" / name
        if not video.exists():
            print(f"skip {name}: {video} is absent", file=sys.stderr)
            continue
        for preset in args.preset:
            row = run_one(video, preset, args.seconds)
            rows.append(row)
            if not args.json:
                print(f"{row['video']:20s} {preset:8s} {row['fps_source']:6.2f} fps in: processed {row['processed']}"
                      f"/{row['decoded']}, dropped {row['dropped_queue']}+{row['dropped_late']} "
                      f"({100 * row['drop_rate']:.1f}%), sustained {row['sustained_fps']:.1f} frames/s, latency "
                      f"p50 {row['latency_p50_ms']:.0f} ms p95 {row['latency_p95_ms']:.0f} ms max "
                      f"{row['latency_max_ms']:.0f} ms; processing {row['processing_ms']:.1f} ms/frame (median), "
                      f"detector alone {row['detector_ms']:.1f} ms: x{row['processing_vs_detector']:.2f}; load "
                      f"{row['load_before'][0]:.2f} -> {row['load_after'][0]:.2f}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
