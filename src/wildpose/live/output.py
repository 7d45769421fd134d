"""JSON lines out: one line per processed frame (``schema.json`` in this package says what each holds)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from wildpose.live.process import LiveResult

# JSON numbers are rounded to what the measurements hold: 0.01 px, 1e-4 score, 1e-5 m (0.01 mm)
_PX, _SCORE, _M = 2, 4, 5


def load_schema() -> dict:
    """The JSON Schema of one output line (``wildpose/live/schema.json``)."""
    return json.loads(resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8"))


def _array(values: np.ndarray, decimals: int) -> list:
    return np.round(np.asarray(values, np.float64), decimals).tolist()


def frame_record(result: LiveResult, latency_s: float, dropped_queue: int, dropped_late: int) -> dict:
    """A processed frame as the dict of one output line (schema.json)."""
    people = []
    for p in result.people:
        kp = np.asarray(p.keypoints_2d, np.float64)
        keypoints = np.concatenate([np.round(kp[:, :2], _PX), np.round(kp[:, 2:], _SCORE)], axis=1).tolist()
        camera = p.joints_camera
        people.append({"id": int(p.id), "keypoints_2d": keypoints, "pose_3d": _array(p.pose_3d, _M),
                       "joints_camera": None if camera is None else _array(camera, _M),
                       "joints_world": None if p.joints_world is None else _array(p.joints_world, _M)})
    world = None
    if result.world is not None:
        w = result.world
        world = {"fits": w.fits, "settled": bool(w.settled), "poses_used": w.poses_used,
                 "camera_height": round(w.height, _M), "pitch_deg": round(w.pitch_deg, 3),
                 "roll_deg": round(w.roll_deg, 3), "rotation": _array(w.rotation, 6)}
    return {"frame": int(result.number), "time": round(float(result.timestamp), 6),
            "latency_s": round(max(0.0, float(latency_s)), 6),
            "dropped": {"queue": int(dropped_queue), "late": int(dropped_late)}, "people": people, "world": world}


class JsonLinesWriter:
    """Lines to a file (written under a temporary name, renamed when closed: the file is complete or absent)
    or to a stream (stdout), flushed after every line so a reader sees each frame as it happens."""

    def __init__(self, path: str | os.PathLike | None = None, stream: IO[str] | None = None):
        self.path = None if path is None else Path(path)
        self._tmp: Path | None = None
        self.lines = 0
        if self.path is not None:
            import tempfile

            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.partial.", dir=self.path.parent)
            self._tmp = Path(tmp)
            self._file: IO[str] = os.fdopen(fd, "w", encoding="utf-8")
        else:
            self._file = stream if stream is not None else sys.stdout

    def write(self, record: dict) -> str:
        line = json.dumps(record, separators=(",", ":"), allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()
        self.lines += 1
        return line

    def close(self, keep: bool = True) -> None:
        """Finish: a file is renamed to its final name (``keep``) or deleted."""
        if self._tmp is None:
            with contextlib.suppress(Exception):
                self._file.flush()
            return
        self._file.close()
        if keep:
            from wildpose.atomic import _umask

            os.chmod(self._tmp, 0o666 & ~_umask())  # the user's usual mode, not mkstemp's 0600
            os.replace(self._tmp, self.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
        self._tmp = None


def read_lines(path: str | os.PathLike) -> Iterator[dict]:
    """The records of a ``wildpose live`` output file."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)
