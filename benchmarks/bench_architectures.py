"""Lifter architectures: held-out VALIDATION error vs numpy inference speed, one row per trained run.

    python benchmarks/bench_architectures.py runs/a27_256 runs/a81_256 ... [--baseline runs/arch/lifter_v1]

For each run directory (``best.safetensors`` + ``best.json`` and ``summary.json``/``log.csv`` written by
``python -m wildpose.lift.train``): training steps and windows/s (from the run), multiply-adds per frame
(``TemporalModel.flops_per_frame``), numpy frames/s on a 3,000-frame track with flip averaging (best of 3,
one thread; the ratio column is against the baseline model timed in the same process), and MPJPE / P-MPJPE
(mm) on the VAL split (never test) with ground-truth 2D and with the calibrated MoveNet noise. Prints a
markdown table (docs/ARCHITECTURES.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the trainings ran
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def frames_per_s(model, frames: int = 3000, repeats: int = 3) -> float:
    x = np.random.default_rng(0).normal(0, 0.3, (frames, 17, 2)).astype(np.float32)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        model.predict(x, flip=True)
        best = min(best, time.perf_counter() - t)
    return frames / best


def train_speed(mocap: str, widths: list[int], channels: int, steps: int = 6, batch: int = 256) -> tuple[float, float]:
    """Training windows/s (one torch thread): (whole step incl. window generation, window generation only)."""
    import torch

    from wildpose.lift.train.data import DEFAULT_SPLIT, load_split
    from wildpose.lift.train.loop import make_batch
    from wildpose.lift.train.model import TemporalLifter
    from wildpose.lift.train.noise import MOVENET_NOISE

    torch.set_num_threads(1)
    clips = load_split(mocap, DEFAULT_SPLIT["val"], cache_dir=ROOT / "runs" / "cache")
    model = TemporalLifter(17, 17, widths, channels, 0.1)
    opt = torch.optim.Adam(model.parameters(), 1e-3, amsgrad=True)
    rng = np.random.default_rng(0)
    gen = total = 0.0
    for i in range(steps + 1):
        t0 = time.perf_counter()
        x, y = make_batch(rng, clips, batch, model.receptive_field, aug=MOVENET_NOISE)
        t1 = time.perf_counter()
        loss = (model(torch.from_numpy(x), single=True) - torch.from_numpy(y)).norm(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            gen += t1 - t0
            total += time.perf_counter() - t0
    return steps * batch / total, steps * batch / gen


def run_info(run: Path) -> dict:
    info = {}
    if (run / "summary.json").is_file():
        s = json.loads((run / "summary.json").read_text())
        info.update(steps=s.get("steps"), seconds=s.get("seconds"), windows_per_s=s.get("windows_per_s"))
    if (run / "log.csv").is_file():
        rows = list(csv.DictReader(open(run / "log.csv")))
        if rows:
            info["val_windows_mm"] = min(float(r["val_mpjpe_mm"]) for r in rows)
    return info


def main(argv=None) -> int:
    from wildpose.lift.train.data import DEFAULT_SPLIT
    from wildpose.lift.train.evaluate import evaluate, numpy_predictor
    from wildpose.lift.weights import load_lifter

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--train-speed", action="store_true",
                    help="also time training steps for fields 27/81/243 x 256 channels (one thread)")
    ap.add_argument("--skip-eval", action="store_true", help="timings only")
    ap.add_argument("--baseline", default=str(ROOT / "src" / "wildpose" / "models" / "lifter"))
    ap.add_argument("--mocap", default=str(ROOT.parent / "shared" / "data" / "mocap"))
    args = ap.parse_args(argv)
    if args.train_speed:
        base_wps = None
        for widths in ([3, 3, 3], [3, 3, 3, 3], [3, 3, 3, 3, 3]):
            wps, gen = train_speed(args.mocap, widths, 256)
            base_wps = base_wps or wps
            print(f"field {3 ** len(widths)} x 256: {wps:,.0f} training windows/s ({wps / base_wps:.2f} x field 27), "
                  f"window generation alone {gen:,.0f}/s", flush=True)
    base = load_lifter(Path(args.baseline).with_suffix(".safetensors"))
    models = []
    for r in args.runs:
        run = Path(r)
        path = run / "best.safetensors" if run.is_dir() else run.with_suffix(".safetensors")
        models.append((run, load_lifter(path)))
    # timings interleaved round by round, best of 5 per model: the shared machine's load drifts, so timing
    # each model once, one after the other, would compare different loads
    best = np.full(len(models) + 1, np.inf)
    for _ in range(5):
        for i, m in enumerate([base] + [m for _, m in models]):
            best[i] = min(best[i], 3000 / frames_per_s(m, repeats=1))
    fps = 3000 / best
    print(f"baseline {args.baseline}: {fps[0]:,.0f} frames/s (numpy, flip, 1 thread)")
    rows = []
    for (run, model), f in zip(models, fps[1:]):
        info = run_info(run) if run.is_dir() else {}
        if args.skip_eval:
            g = m = {"mpjpe_mm": np.nan, "p_mpjpe_mm": np.nan}
        else:
            res = evaluate(numpy_predictor(model), args.mocap, DEFAULT_SPLIT["val"], model.fps,
                           cache_dir=ROOT / "runs" / "cache")
            g, m = res["gt2d"], res["movenet2d"]
        wps = info.get("windows_per_s")
        rows.append(f"| {run.name} | {model.receptive_field} | {model.config['channels']} | {model.causal} "
                    f"| {info.get('steps', '-')} | {f'{wps:,.0f}' if wps else '-'} | {model.flops_per_frame / 2e6:.2f} "
                    f"| {f:,.0f} ({f / fps[0]:.2f}) | {g['mpjpe_mm']:.1f} / {g['p_mpjpe_mm']:.1f} "
                    f"| {m['mpjpe_mm']:.1f} / {m['p_mpjpe_mm']:.1f} |")
    print("| run | field | C | causal | steps | train windows/s | M mult-adds/frame | numpy frames/s (x base) "
          "| VAL MPJPE / P-MPJPE gt2d | VAL MPJPE / P-MPJPE movenet2d |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
