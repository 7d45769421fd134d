"""Video I/O speed and memory: decode and encode frames/s, and peak RSS against stream length.

Decode (best of ``--repeats`` runs, each full video, RGB conversion included):
- ``pyav raw``: a bare PyAV loop (``container.decode`` + ``to_ndarray("rgb24")``), the baseline,
- ``read_frames threads=False`` and ``read_frames threads=True`` (FFmpeg frame+slice threading);
the ratios printed are threaded / unthreaded and read_frames / raw PyAV.

Encode: ``VideoWriter`` frames/s on the 480x360 frames of walk_single.mp4 (libx264 veryfast, the default,
against libx264 medium and mpeg4).

Memory: each measurement runs in a fresh child process that reads the video once, ten times in a row,
and once from a ten times longer file (the packets remuxed ten times end to end, no re-encode), and
prints its peak RSS (VmHWM, or resource.getrusage's ru_maxrss off Linux) before and after decoding. Streaming means the peak
does not grow with length; holding all frames would need frames x H x W x 3 bytes.

Usage: python benchmarks/bench_video.py [--repeats 7] [--shared DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WILDPOSE_SHARED", ROOT.parent / "shared"))
VIDEOS = ("walk_single.mp4", "marathon_crowd.mkv")


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux's VmHWM where there is one: ``getrusage().ru_maxrss`` survives execve, so a child started
    from a parent holding decoded frames would report the parent's peak as its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def decode_raw(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        n = 0
        for frame in container.decode(video=0):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n


def decode_ours(path: Path, threads: bool) -> int:
    from wildpose.video import read_frames

    return sum(1 for _ in read_frames(path, threads=threads))


def decode_rates(path: Path, repeats: int) -> dict[str, list[float]]:
    """frames/s of each decoder, runs interleaved so that a change in machine load hits all of them."""
    runs = {"raw": lambda: decode_raw(path), "single": lambda: decode_ours(path, threads=False),
            "threaded": lambda: decode_ours(path, threads=True)}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            n = fn()
            rates[name].append(n / (time.perf_counter() - t0))
    rates["frames"] = [n]
    return rates


def encode_fps(images, repeats: int, **options) -> float:
    from wildpose.video import VideoWriter

    h, w = images[0].shape[:2]
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            t0 = time.perf_counter()
            with VideoWriter(Path(tmp) / "bench.mp4", w, h, 25, **options) as writer:
                for image in images:
                    writer.write(image)
            best = min(best, time.perf_counter() - t0)
    return len(images) / best


def concatenate(path: Path, out: Path, times: int) -> None:
    """Remux the video stream ``times`` times end to end (packets copied, PTS shifted)."""
    import av

    with av.open(str(path)) as src, av.open(str(out), "w") as dst:
        stream = src.streams.video[0]
        target = dst.add_stream_from_template(stream)
        offset, end, last_dts = 0, 0, None
        for _ in range(times):
            src.seek(0)
            for packet in src.demux(stream):
                if packet.size == 0:
                    continue
                packet.pts += offset
                if packet.dts is not None:
                    packet.dts += offset
                elif last_dts is not None:
                    # Matroska leaves the first DTS out; a guess from the PTS would step back in time
                    packet.dts = last_dts + 1
                last_dts = packet.dts if packet.dts is not None else last_dts
                end = max(end, packet.pts + (packet.duration or 1))
                packet.stream = target
                dst.mux(packet)
            offset = end


def child_rss(path: Path, passes: int) -> None:
    """Child-process entry point: print JSON with peak RSS before/after reading ``path`` ``passes`` times."""
    from wildpose.video import read_frames

    before = _peak_rss_mb()
    frames = 0
    for _ in range(passes):
        frames += sum(1 for _ in read_frames(path))
    print(json.dumps({"before_mb": before, "after_mb": _peak_rss_mb(), "frames": frames}))


def measure_rss(path: Path, passes: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child-rss", str(path), str(passes)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--child-rss", nargs=2, metavar=("PATH", "PASSES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        child_rss(Path(args.child_rss[0]), int(args.child_rss[1]))
        return

    from wildpose.video import probe, read_frames

    videos = [args.shared / "data" / "videos" / name for name in VIDEOS]
    missing = [str(v) for v in videos if not v.exists()]
    if missing:
        sys.exit(f"shared videos absent: {', '.join(missing)}")
    print(f"cpus available: {len(os.sched_getaffinity(0))}, repeats: {args.repeats} (best run reported)\n")

    print("decode frames/s (full video, RGB uint8; best run, and the ratio of best and of median runs)")
    print(f"{'video':<22}{'frames':>7}{'pyav raw':>10}{'ours 1 thr':>12}{'ours thr':>10}"
          f"{'thr/1thr':>10}{'(median)':>10}{'ours/raw':>10}{'(median)':>10}")
    for video in videos:
        r = decode_rates(video, args.repeats)
        raw, single, threaded = (max(r[k]) for k in ("raw", "single", "threaded"))
        med = {k: float(np.median(r[k])) for k in ("raw", "single", "threaded")}
        print(f"{video.name:<22}{r['frames'][0]:>7}{raw:>10.0f}{single:>12.0f}{threaded:>10.0f}"
              f"{threaded / single:>10.2f}{med['threaded'] / med['single']:>10.2f}"
              f"{threaded / raw:>10.2f}{med['threaded'] / med['raw']:>10.2f}")

    images = [f.image for f in read_frames(videos[0], end=4.0)]  # 100 real 480x360 frames
    print(f"\nencode frames/s ({len(images)} frames of {images[0].shape[1]}x{images[0].shape[0]})")
    base = encode_fps(images, args.repeats)
    rows = [("libx264 veryfast crf20 (default)", base),
            ("libx264 medium crf20", encode_fps(images, args.repeats, preset="medium")),
            ("mpeg4 q3 (fallback)", encode_fps(images, args.repeats, codec="mpeg4"))]
    for name, fps in rows:
        print(f"  {name:<34}{fps:>8.0f}   x{fps / base:.2f} of default")
    del images

    print("\npeak RSS (fresh child process each; MB)")
    print(f"{'input':<34}{'frames':>7}{'after import':>14}{'peak':>8}{'growth':>8}{'all frames held':>17}")
    with tempfile.TemporaryDirectory() as tmp:
        for video in videos:
            info = probe(video)
            long_file = Path(tmp) / f"x10_{video.stem}.mkv"
            concatenate(video, long_file, 10)
            for label, path, passes in ((f"{video.name} x1", video, 1),
                                        (f"{video.name} read 10 times", video, 10),
                                        (f"{video.name} 10x longer file", long_file, 1)):
                r = measure_rss(path, passes)
                held = r["frames"] * info.width * info.height * 3 / 2**20 / passes
                print(f"{label:<34}{r['frames']:>7}{r['before_mb']:>14.0f}{r['after_mb']:>8.0f}"
                      f"{r['after_mb'] - r['before_mb']:>8.0f}{held:>17.0f}")


if __name__ == "__main__":
    main()
