"""Results in the formats other tools open: one module per format, each a plain function
``export(result, out_dir, stem) -> list[Path]`` that writes atomically (``wildpose.atomic``) and returns the
files it wrote. ``export_result`` runs several by name; the CLI's ``wildpose export`` and ``run --export`` use it.

Coordinates: every exporter reads ``Result.poses_world`` (metres, y up, the floor at y = 0, one fixed world
frame for the whole video); docs/OUTPUTS.md gives each tool's axes and units.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UsageError
from ..types import Result

# format name -> (module in this package, function); modules are imported on use, so a missing optional
# library only matters to the format that needs it
FORMATS: dict[str, tuple[str, str]] = {
    "bvh": ("bvh", "export"),
    "gltf": ("gltf", "export"),
    "c3d": ("c3d", "export"),
    "trc": ("trc", "export"),
    "json": ("rows", "export_json"),
    "csv": ("rows", "export_csv"),
}


def exporter(name: str) -> Callable[[Result, Path, str], list[Path]]:
    if name not in FORMATS:
        raise UsageError(f"unknown export format {name!r} (choose from {', '.join(FORMATS)})")
    module, function = FORMATS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


def parse_formats(spec: str | Sequence[str]) -> list[str]:
    """'bvh,trc' or ['bvh', 'trc'] or 'all' -> checked, de-duplicated names in the given order."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for item in (s.strip().lower() for s in items):
        if not item:
            continue
        if item != "all" and item not in FORMATS:  # refused before anything is written
            raise UsageError(f"unknown export format {item!r} (choose from {', '.join(FORMATS)}, or all)")
        for name in (FORMATS if item == "all" else [item]):
            if name not in names:
                names.append(name)
    return names


def export_result(result: Result, out_dir: str | os.PathLike, formats: str | Sequence[str],
                  stem: str = "poses") -> list[Path]:
    """Write ``result`` into ``out_dir`` in each of ``formats``; returns every file written."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    for name in parse_formats(formats):
        written.extend(exporter(name)(result, out_dir, stem))
    return written
