"""Blender as the real client of the skeleton exports: run tests/blender/read_bones.py headless on a file and
read back the bone heads it writes. Tests skip, saying so, only where ``blender`` is not on PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent / "blender" / "read_bones.py"
BLENDER = shutil.which("blender")
needs_blender = pytest.mark.skipif(BLENDER is None, reason="blender is not on PATH (Debian: apt install blender)")


def read_bones(kind: str, path: Path, frames, out_dir: Path) -> dict:
    """{"armatures": {name: {bone: (F, 3) heads}}, ...}: Blender's world space (z up), metres, per frame."""
    out = Path(out_dir) / f"{Path(path).stem}_{kind}_bones.json"
    spec = ",".join(str(f) for f in frames)
    # Blender takes its Python home from the first python3 on PATH: Debian's Blender needs Debian's Python (whose
    # numpy its glTF importer imports), not a pyenv or venv interpreter that runs the tests
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(BLENDER).resolve().parent), os.environ.get("PATH", "")])}
    proc = subprocess.run([BLENDER, "-b", "--factory-startup", "--python", str(SCRIPT), "--", kind, str(path), spec,
                           str(out)], capture_output=True, text=True, timeout=300, env=env)
    if proc.returncode != 0 or not out.exists():
        raise AssertionError(f"blender failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    data = json.loads(out.read_text())
    data["armatures"] = {name: {bone: np.asarray(heads, np.float64) for bone, heads in bones.items()}
                         for name, bones in data["armatures"].items()}
    return data


def world_from_blender(points: np.ndarray) -> np.ndarray:
    """Blender's z-up axes -> ours (y up): both importers turn (x, y, z) y-up into (x, -z, y)."""
    points = np.asarray(points, np.float64)
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)
