"""TRC, OpenSim's marker file: one per track (an OpenSim model is one person), ``{stem}_track{id}.trc``.

The documented header (PathFileType 4, DataRate ... OrigNumFrames), then ``Frame#``, ``Time`` and x, y, z of the
17 Human3.6M joints, tab separated, millimetres, y up as OpenSim's ground (wildpose's world axes as they are: x,
y up, z). Rows are the video's own frames from the track's first to its last, ``Frame#`` the video's frame
number counted from 1 and ``Time`` its presentation time in seconds: OpenSim works from the times, so a variable
frame rate is kept as it is (not resampled; ``DataRate`` is the average rate). Frames inside a track's span where
it was not seen have empty fields, which OpenSim reads as missing (NaN) markers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import FormatError
from ..skeleton import H36M_NAMES
from ..types import Result


def _number(values: np.ndarray, fmt: str) -> np.ndarray:
    text = np.char.mod(fmt, values)
    return np.where(np.isnan(values), "", text)


def export(result: Result, out_dir: Path, stem: str) -> list[Path]:
    if result.poses_world is None:
        raise FormatError("the result has no world coordinates (poses_world) to write as TRC", Path(out_dir) / stem)
    times = np.asarray(result.timestamps, np.float64)
    written = []
    for p, track_id in enumerate(result.track_ids):
        world = result.dense(result.poses_world, p) * 1000.0  # (T, 17, 3) mm, NaN where absent
        seen = np.flatnonzero(~np.isnan(world).all(axis=(1, 2)))
        if len(seen) == 0:
            continue
        span = np.arange(seen[0], seen[-1] + 1)
        path = Path(out_dir) / f"{stem}_track{int(track_id)}.trc"
        header = [
            f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
            "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
            f"{result.fps:.6g}\t{result.fps:.6g}\t{len(span)}\t17\tmm\t{result.fps:.6g}\t{span[0] + 1}\t{len(times)}",
            "Frame#\tTime\t" + "\t".join(f"{name}\t\t" for name in H36M_NAMES).rstrip("\t"),
            "\t\t" + "\t".join(f"X{i + 1}\tY{i + 1}\tZ{i + 1}" for i in range(17)),
            "",
        ]
        table = np.concatenate([np.char.mod("%d", span + 1)[:, None], np.char.mod("%.6f", times[span])[:, None],
                                _number(world[span].reshape(len(span), -1), "%.2f")], axis=1)
        with atomic_path(path) as tmp, open(tmp, "w", newline="\n") as f:
            f.write("\n".join(header) + "\n")
            f.write("\n".join("\t".join(row) for row in table) + "\n")
        written.append(path)
    return written
