"""Lifter inference speed: frames/s of TemporalModel.predict on a long track, against raw matmul.

For each receptive field (27/81/243 frames = widths 3,3,3 / 3,3,3,3 / 3,3,3,3,3) and channel count, with and
without flip averaging, it times ``predict`` on one track (default 10,000 frames) and, in the same process
and interleaved with it, the raw float32 matrix products of the same shapes and FLOPs (the baseline: what
BLAS alone does on this machine right now). ``ratio`` = model time / matmul time: 1.0 would mean the stacking
copies, bias, ReLU, residuals, padding overlap and Python cost nothing. Best of ``--repeat`` runs each.
``peak MiB``: numpy memory allocated at the peak of one predict call (tracemalloc, untimed run).

    python benchmarks/bench_lift.py [--frames 10000] [--repeat 3] [--channels 256 512 1024] [--fields 27 81 243]
        [--model OTHER.safetensors ...]

Random weights: speed does not depend on the values. Then, if the shipped model is installed, the whole
``lift()`` call (normalisation, resampling to the model's rate, flip, resampling back, and with or without the
test-time refinement, wildpose.lift.refine) on the same number of frames given at the model's rate and at
60 fps; the target is 5,000 frames/s with flip.
"""

from __future__ import annotations

import argparse
import math
import time
import tracemalloc

import numpy as np

from wildpose.errors import ModelError
from wildpose.lift import lift, load_lifter
from wildpose.lift.model import TemporalModel, expected_shapes

WIDTHS = {27: [3, 3, 3], 81: [3, 3, 3, 3], 243: [3, 3, 3, 3, 3]}


def random_model(widths: list[int], channels: int) -> TemporalModel:
    config = {"filter_widths": widths, "channels": channels, "causal": False, "in_joints": 17, "out_joints": 17,
              "input_normalisation": "screen", "fps": 50.0}
    rng = np.random.default_rng(0)
    tensors = {}
    for name, shape in expected_shapes(config).items():
        fan_in = shape[1] * shape[2] if len(shape) == 3 else 1
        value = rng.normal(0, 1 / math.sqrt(fan_in), shape)
        tensors[name] = np.abs(value) + 0.5 if name.endswith("running_var") else value
    return TemporalModel(config, tensors)


def matmul_seconds(model: TemporalModel, rows: int, block: int = 4096) -> float:
    """Time of plain matmuls with every layer's (K, N) shape over ``rows`` rows in all (same FLOPs)."""
    total = 0.0
    rng = np.random.default_rng(1)
    for layer in model._layers():
        k, n = layer.matrix.shape
        m = min(block, rows)
        a = rng.standard_normal((m, k), dtype=np.float32)
        out = np.empty((m, n), np.float32)
        np.matmul(a, layer.matrix, out=out)  # warm up
        start = time.perf_counter()
        np.matmul(a, layer.matrix, out=out)
        total += (time.perf_counter() - start) * rows / m
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--channels", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--fields", type=int, nargs="+", default=[27, 81, 243], choices=sorted(WIDTHS))
    parser.add_argument("--chunk", type=int, default=None, help="output frames per chunk (default: automatic)")
    parser.add_argument("--model", action="append", default=[],
                        help="also time lift() with this lifter file (repeatable; e.g. an ensemble), after the shipped one")
    args = parser.parse_args()

    rng = np.random.default_rng(2)
    track = (0.3 * rng.standard_normal((1, 17, 2)) + 0.05 * np.cumsum(
        rng.standard_normal((args.frames, 17, 2)), axis=0) / np.sqrt(args.frames)).astype(np.float32)
    print(f"{args.frames} frames, best of {args.repeat}; numpy {np.__version__}")
    print(f"{'field':>5} {'C':>5} {'flip':>5} {'frames/s':>10} {'model GFLOP/s':>14} {'matmul GFLOP/s':>15} "
          f"{'ratio':>6} {'peak MiB':>9}")
    for field in args.fields:
        for channels in args.channels:
            model = random_model(WIDTHS[field], channels)
            for flip in (False, True):
                passes = 2 if flip else 1
                model.predict(track[:1000], flip=flip, chunk_frames=args.chunk)  # warm up
                best_model = best_matmul = math.inf
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    model.predict(track, flip=flip, chunk_frames=args.chunk)
                    best_model = min(best_model, time.perf_counter() - start)
                    best_matmul = min(best_matmul, matmul_seconds(model, passes * args.frames))
                tracemalloc.start()
                model.predict(track, flip=flip, chunk_frames=args.chunk)
                peak = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
                flops = model.flops_per_frame * passes * args.frames
                print(f"{field:>5} {channels:>5} {str(flip):>5} {args.frames / best_model:>10,.0f} "
                      f"{flops / best_model / 1e9:>14.1f} {flops / best_matmul / 1e9:>15.1f} "
                      f"{best_model / best_matmul:>6.2f} {peak:>9.0f}", flush=True)

    pixels = (track * 200 + np.array([320, 240], np.float32)).astype(np.float32)
    baseline: dict[tuple[float, bool], float] = {}
    for path in [None, *args.model]:
        try:
            lifter = load_lifter(path)
        except ModelError as exc:
            print(f"{path or 'shipped model'}: not measured ({exc})")
            continue
        print(f"\n{path or 'shipped'} {lifter}: lift() on {args.frames} frames of pixels, best of {args.repeat}")
        for fps in (lifter.fps, 60.0):
            for flip in (False, True):
                times = {}
                for refine in (False, True):
                    best = math.inf
                    for _ in range(args.repeat):
                        start = time.perf_counter()
                        lift(pixels, (640, 480), fps, model=lifter, flip=flip, refine=refine)
                        best = min(best, time.perf_counter() - start)
                    times[refine] = best
                    # the first model measured (the shipped one) is the baseline of the others' time ratio
                    ratio = best / baseline.setdefault((fps, flip, refine), best)
                    extra = f", x{best / times[False]:.2f} the time without" if refine else ""
                    print(f"  input {fps:g} fps, flip {str(flip):>5}, refine {str(refine):>5}: "
                          f"{args.frames / best:,.0f} input frames/s  (time x{ratio:.2f} the first model's{extra})",
                          flush=True)


if __name__ == "__main__":
    main()
