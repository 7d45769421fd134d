"""The viewer's data: a result's sparse rows, quantised and deflated, as a JSON header plus one binary blob.

Every joint is rounded once to whole millimetres (``STEP_M``), so each coordinate the page draws is within half a
step of ``poses_world``. The rounded pelvis is stored as int32 millimetres (people may be far from the origin:
int32 spans 2,000 km), the other 16 joints as int16 millimetres from the rounded pelvis (a body spans under
2 m; int16 spans 32 m), so decoding ``pelvis + offset`` gives back exactly the rounded joint. Each array is
stored coordinate-major (all rows' x of one joint, then their y, ...): a coordinate changes slowly along a
track, and deflate finds those runs (24.6 bytes of the page per person-frame on real poses:
benchmarks/bench_viewer.py). The browser inflates the blob with ``DecompressionStream('deflate')`` (zlib
format).

Blob layout: the arrays of ``header["arrays"]`` one after another, each at an 8-byte aligned offset (typed arrays
over one ArrayBuffer need aligned offsets), little-endian.
"""

from __future__ import annotations

import zlib

import numpy as np

from .. import skeleton
from ..errors import FormatError
from ..types import Result

FORMAT = "wildpose-viewer/1"
STEP_M = 0.001  # one quantisation step: a millimetre
ROW_INTERPOLATED = 1  # row flags: keypoints filled in over a short gap, not detected
ROW_MISSING = 2  # the row has no world pose (NaN in poses_world): nothing is drawn for it
_INT16_MAX = np.iinfo(np.int16).max


def track_colors(track_ids: np.ndarray) -> list[str]:
    """'#rrggbb' of every track: the render's colours (render.track_color), so a track looks the same in both."""
    from ..render import track_color

    return ["#%02x%02x%02x" % track_color(int(i)) for i in track_ids]


def encode(result: Result, path=None) -> tuple[dict, bytes]:
    """(header, deflated blob) of ``result`` for the page. ``path`` names the result in errors.

    Raises FormatError when the result has no frames or no world poses, or a joint lies more than 32 m from its pelvis
    (int16 millimetres cannot hold it; no real body does).
    """
    if result.poses_world is None:
        raise FormatError("the result has no poses_world (world alignment did not run): nothing to place in 3D",
                          path)
    if result.num_frames == 0:
        raise FormatError("the result has no frames", path)
    world = np.asarray(result.poses_world, np.float64)
    missing = ~np.isfinite(world).all(axis=(1, 2))
    quantised = np.round(np.where(missing[:, None, None], 0.0, world) / STEP_M)
    if np.abs(quantised).max(initial=0) >= 2**31:
        raise FormatError("a joint lies beyond 2,000 km of the world origin", path)
    quantised = quantised.astype(np.int64)
    pelvis = quantised[:, 0]  # (N, 3)
    offsets = quantised[:, 1:] - pelvis[:, None]  # (N, 16, 3)
    if np.abs(offsets).max(initial=0) > _INT16_MAX:
        raise FormatError("a joint lies more than 32 m from its pelvis: not a body", path)
    flags = (np.asarray(result.interpolated, bool) * ROW_INTERPOLATED | missing * ROW_MISSING).astype(np.uint8)

    arrays = {
        "timestamps": np.asarray(result.timestamps, "<f8"),
        "frame_index": np.asarray(result.frame_index, "<i4"),
        "row_flags": flags,
        # coordinate-major: (3, N) and (16 * 3, N)
        "pelvis_mm": np.ascontiguousarray(pelvis.T, "<i4"),
        "offsets_mm": np.ascontiguousarray(offsets.reshape(len(offsets), 16 * 3).T, "<i2"),
    }
    camera = None
    if result.camera is not None:
        cam = result.camera
        intr = cam.intrinsics
        arrays["world_from_camera"] = np.asarray(cam.world_from_camera(np.arange(result.num_frames)),
                                                 "<f4").reshape(-1, 9)
        camera = {"position": [float(v) for v in cam.position], "fx": float(intr.fx), "fy": float(intr.fy),
                  "cx": float(intr.cx), "cy": float(intr.cy), "static": bool(cam.static),
                  "focal_length_known": bool(cam.focal_length_known)}

    table, chunks, at = {}, [], 0
    for name, arr in arrays.items():
        pad = -at % 8
        chunks.append(b"\0" * pad)
        at += pad
        data = arr.tobytes()
        table[name] = {"dtype": arr.dtype.name, "offset": at, "length": int(arr.size), "shape": list(arr.shape)}
        chunks.append(data)
        at += len(data)
    blob = zlib.compress(b"".join(chunks), 6)
    header = {
        "format": FORMAT,
        "fps": float(result.fps),
        "num_frames": int(result.num_frames),
        "num_rows": int(result.num_rows),
        "image_size": [int(v) for v in result.image_size],
        "step_m": STEP_M,
        "track_ids": [int(v) for v in result.track_ids],
        "track_lengths": [int(v) for v in result.track_lengths],
        "track_colors": track_colors(result.track_ids),
        "joint_names": list(skeleton.H36M_NAMES),
        "bones": [list(b) for b in skeleton.H36M_BONES],
        "camera": camera,
        "arrays": table,
        "raw_bytes": at,
    }
    return header, blob


def decode(header: dict, blob: bytes) -> dict[str, np.ndarray]:
    """The arrays of an encoded payload, and ``poses_world`` (N, 17, 3) float64 metres as the page computes it
    (NaN on missing rows): the page's decoding, in numpy, for tests and the benchmark."""
    raw = zlib.decompress(blob)
    out = {}
    for name, spec in header["arrays"].items():
        arr = np.frombuffer(raw, dtype=np.dtype(spec["dtype"]).newbyteorder("<"), count=spec["length"],
                            offset=spec["offset"])
        out[name] = arr.reshape(spec["shape"])
    pelvis = out["pelvis_mm"].T.astype(np.int64)  # (N, 3)
    joints = np.concatenate([np.zeros((len(pelvis), 1, 3), np.int64),
                             out["offsets_mm"].T.reshape(len(pelvis), 16, 3)], axis=1) + pelvis[:, None]
    world = joints * header["step_m"]
    world[(out["row_flags"] & ROW_MISSING).astype(bool)] = np.nan
    out["poses_world"] = world
    return out
