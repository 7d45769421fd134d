"""The skeleton exports' errors on saved results: the constant-length fit against poses_world, and what an
independent reader rebuilds from the files (bvhio's forward kinematics of the BVH; the glTF node animation's, read
with pygltflib) against the fit. Millimetres, mean and max over every joint of every sample of every track.

    PYTHONPATH=src python benchmarks/bench_skeleton_fit.py /tmp/results/walk_single.npz /tmp/results/marathon_crowd.npz
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_export_bvh import bvhio_joints  # noqa: E402  (the tests' readers: one way to read the files)
from test_export_gltf import gltf_joints  # noqa: E402

from wildpose.export import bvh, gltf  # noqa: E402
from wildpose.export.skeleton_fit import fit_result  # noqa: E402
from wildpose.formats.result import load_result  # noqa: E402


def main(paths: list[str]) -> None:
    for path in paths:
        result = load_result(path)
        with tempfile.TemporaryDirectory() as tmp:
            bvh.export(result, Path(tmp), "bench")
            (glb,) = gltf.export(result, Path(tmp), "bench")
            fit_err, bvh_err, gltf_err, samples, filled = [], [], [], 0, 0
            for p in range(len(result.track_ids)):
                fit = fit_result(result, p)
                fit_err.append(fit.fit_error().ravel())
                joints = bvhio_joints(Path(tmp) / f"bench_track{fit.track_id}.bvh")
                bvh_err.append(np.linalg.norm(joints - fit.fitted, axis=-1).ravel())
                joints = gltf_joints(glb, fit.track_id, fit.times)
                gltf_err.append(np.linalg.norm(joints - fit.fitted, axis=-1).ravel())
                samples += fit.num_samples
                filled += int(fit.filled.sum())
        print(f"{Path(path).name}: {len(result.track_ids)} tracks, {samples} samples ({filled} filled)")
        for name, err in (("fitted vs poses_world", fit_err), ("bvhio FK vs fitted", bvh_err),
                          ("glTF FK vs fitted", gltf_err)):
            err = np.concatenate(err) * 1000
            print(f"  {name:22s} mean {err.mean():9.4f} mm  p99 {np.percentile(err, 99):9.4f}  max {err.max():9.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
