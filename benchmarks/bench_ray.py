"""`wildpose run --ray`: throughput with 1 and 2 workers (1 thread each), and Ray's overhead over a plain run.

    python benchmarks/bench_ray.py                  # 4 copies of the walk + the walk played twice, 2 repeats
    python benchmarks/bench_ray.py --copies 2 --repeats 1

In one invocation, on this machine: (a) a batch of short videos (``--copies`` copies of walk_single.mp4, 444
frames each), (b) one long video (the walk played ``--long-repeats`` times, re-encoded) split into 2 segments.
Each is processed by a plain local run (``run_video`` in a child process held to 1 thread: the detector's
interpreter, OpenCV and BLAS), then by Ray with 1 worker and with 2 workers (1 thread, 1 CPU each) on a Ray
instance started on 127.0.0.1 for each worker count (its start-up is timed apart). The crowd video's plain
one-thread speed is measured too (the per-core cost of a busy scene). Printed: seconds, frames/s,
the 2-worker / 1-worker ratio (target >= 1.7 in both) and Ray-1-worker / plain (the overhead), per repeat and
their spread; for the split video also the serial tail (the join task: tracking, linking, lifting, world
alignment, writing) against the whole. The load average is printed before and after: on a machine shared
with other work, the ratios move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
ONE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def plain_child(videos: list[str], out: str) -> float:
    """The local run, 1 thread everywhere: seconds for the batch (models loaded before the clock starts)."""
    from wildpose.distributed.work import worker_models
    from wildpose.pipeline import RunOptions, output_dirs, run_video

    options = RunOptions()
    detector, model, _ = worker_models(options, 1)
    dirs = output_dirs(videos, out)
    t = time.perf_counter()
    for video, d in zip(videos, dirs):
        run_video(video, out, options, detector=detector, model=model, out_dir=d)
    return time.perf_counter() - t


def plain(videos: list[Path], out: Path) -> float:
    env = {**os.environ, **ONE, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, __file__, "--plain-child", str(out), *map(str, videos)], env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return float(proc.stdout.strip().splitlines()[-1])


def on_ray(workers: int, jobs: list[tuple[str, list[Path], float]], out: Path) -> dict:
    """Start Ray with ``workers`` CPUs, run each (name, videos, segment_seconds) job; seconds per job."""
    from wildpose.distributed.ray_runner import LOOPBACK_ENV, RayConfig, _thread_env, run_batch
    from wildpose.pipeline import RunOptions

    os.environ.setdefault(LOOPBACK_ENV, "0")
    import ray

    t = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 2 ** 20, runtime_env={"env_vars": _thread_env(1)})
    rows = {"startup_s": time.perf_counter() - t}
    try:
        # warm the workers (imports, model loading): a batch system pays it once per worker, not per video
        warm = [ray.remote(num_cpus=1)(_warm).remote() for _ in range(workers)]
        ray.get(warm)
        for name, videos, segment_seconds in jobs:
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            outcomes = run_batch(videos, out / name, RunOptions(), RayConfig(segment_seconds=segment_seconds))
            rows[name] = time.perf_counter() - t
            errors = [o.error for o in outcomes if o.error]
            if errors:
                raise RuntimeError(errors)
            split = [o for o in outcomes if o.segments]
            if split:
                rows[name + "_join_s"] = sum(o.seconds for o in split)
                rows[name + "_work_s"] = sum(o.summary.seconds for o in split)
    finally:
        ray.shutdown()
    return rows


def _warm():
    from wildpose.distributed.work import worker_models
    from wildpose.pipeline import RunOptions

    worker_models(RunOptions(), 1)
    return os.getpid()


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="short videos in the batch (copies of the walk)")
    parser.add_argument("--long-repeats", type=int, default=2, help="the long video: the walk played N times")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--plain-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_child:
        out, *videos = args.plain_child
        print(plain_child(videos, out))
        return 0
    walk = VIDEOS / "walk_single.mp4"
    if not walk.exists():
        print(f"skipped: {walk} absent (the shared data is not next to this checkout)")
        return 0
    try:
        import ray  # noqa: F401
    except ImportError:
        print("skipped: ray is not installed (pip install 'wildpose[ray]')")
        return 0
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_pipeline import make_long_video
    from wildpose.video import probe

    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average before: {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        batch = []
        for i in range(args.copies):
            (tmp / f"c{i}").mkdir()
            batch.append(tmp / f"c{i}" / f"walk_{i}.mp4")
            shutil.copyfile(walk, batch[-1])
        long_video = tmp / f"walk_x{args.long_repeats}.mp4"
        make_long_video(walk, args.long_repeats, long_video)
        info = probe(long_video)
        segment_seconds = info.duration / 2 + 0.5  # two segments: one per worker
        frames = {"batch": 444 * args.copies, "long": info.num_frames}
        crowd = VIDEOS / "marathon_crowd.mkv"
        jobs = [("batch", batch, 1e9), ("long", [long_video], segment_seconds)]
        runs = []
        for r in range(args.repeats):
            row = {"plain_batch": plain(batch, tmp / "plain"), "plain_long": plain([long_video], tmp / "plain")}
            if crowd.exists():  # the per-core speed of a crowd, for the cost of an hour (docs/SCALING.md)
                row["plain_crowd"] = plain([crowd], tmp / "plain")
            row["ray1"] = on_ray(1, jobs, tmp / "ray")
            row["ray2"] = on_ray(2, jobs, tmp / "ray")
            runs.append(row)
            print(f"repeat {r + 1}: " + json.dumps(row, default=lambda x: round(x, 2)), flush=True)
        print(f"load average after: {_load()}")
        for name in ("batch", "long"):
            what = (f"{args.copies} x walk_single (444 frames each)" if name == "batch" else
                    f"walk x{args.long_repeats} ({info.num_frames} frames, {info.duration:.1f} s) in 2 segments")
            print(f"\n{what}:")
            for key, label in (("plain", "plain local run, 1 thread"), ("ray1", "Ray, 1 worker x 1 thread"),
                               ("ray2", "Ray, 2 workers x 1 thread")):
                secs = [row[f"plain_{name}"] if key == "plain" else row[key][name] for row in runs]
                print(f"  {label:28s} {_spread(secs)} s = {_spread([frames[name] / s for s in secs])} frames/s")
            print(f"  2 workers / 1 worker: x{_spread([row['ray1'][name] / row['ray2'][name] for row in runs])}"
                  " (target >= 1.7)")
            print(f"  Ray 1 worker / plain: x{_spread([row['ray1'][name] / row[f'plain_{name}'] for row in runs])}"
                  " in time (the overhead)")
            if name == "long":
                for key in ("ray1", "ray2"):
                    tails = [row[key].get("long_join_s", float("nan")) / row[key][name] for row in runs]
                    print(f"  serial tail (the join task) / wall time, {key}: {_spread(tails)}")
        if "plain_crowd" in runs[0]:
            print(f"\nmarathon_crowd.mkv (138 frames), plain 1 thread: "
                  f"{_spread([138 / row['plain_crowd'] for row in runs])} frames/s per core")
        print(f"\nRay start-up: " + _spread([row[k]["startup_s"] for row in runs for k in ("ray1", "ray2")]) + " s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
