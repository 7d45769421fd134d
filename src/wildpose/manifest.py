"""The manifest of an output folder: what it was made from, so that ``wildpose run --resume`` can skip it.

Each complete output folder holds ``manifest.json``, written last, inside the folder's temporary name (so a folder
with a manifest is complete: the folder appears whole or not at all)::

    {"format": "wildpose-manifest", "version": 1, "wildpose": "0.1.0",
     "input": {"path": "/abs/clip.mp4", "size": 1234, "mtime_ns": ..., "fingerprint": "sha256 of ..."},
     "options": {...RunOptions...}, "lifter_sha256": "...",
     "files": {"poses.npz": {"size": 5678, "sha256": "..."}, ...}, "frames": 444, "people": 1, ...}

A folder is up to date when its manifest parses, names this wildpose version, the same options and lifter, an
input of the same size, modification time and fingerprint, and every listed file is there with its size (the
sizes catch a file replaced or cut by hand; hashing every output again on each resume would cost more than
the check is worth, and ``verify_files`` does it when asked).

The input's fingerprint hashes its size and its first and last MiB rather than the whole file: a video of
gigabytes would otherwise be read once more just to decide to skip it, and an edit that keeps the size, the
modification time and both ends is not one a user makes by accident. A folder of images is fingerprinted by
its files' names, sizes and modification times.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "wildpose-manifest"
FORMAT_VERSION = 1
_EDGE = 1 << 20  # bytes hashed at each end of an input file

__all__ = ["MANIFEST_NAME", "input_identity", "options_record", "write_manifest", "read_manifest", "is_up_to_date",
           "verify_files"]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_identity(path: str | os.PathLike) -> dict[str, Any]:
    """Size, modification time and fingerprint of an input video, image, or folder of images."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        from .video import image_sequence_files

        files = image_sequence_files(path)
        stats = [(f.name, f.stat()) for f in files]
        for name, st in stats:
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        size = sum(st.st_size for _, st in stats)
        mtime_ns = max((st.st_mtime_ns for _, st in stats), default=0)
    else:
        st = path.stat()
        size, mtime_ns = st.st_size, st.st_mtime_ns
        digest.update(str(size).encode())
        with open(path, "rb") as f:
            digest.update(f.read(_EDGE))
            if size > 2 * _EDGE:
                f.seek(size - _EDGE)
                digest.update(f.read(_EDGE))
            else:
                digest.update(f.read())
    return {"path": os.fspath(path.resolve()), "size": int(size), "mtime_ns": int(mtime_ns),
            "fingerprint": digest.hexdigest()}


def options_record(options) -> dict[str, Any]:
    """The RunOptions as plain JSON values (tuples as lists), for comparing two runs."""
    record = dataclasses.asdict(options)
    return json.loads(json.dumps(record, default=str))


def write_manifest(folder: Path, *, input_path: Path, options, lifter_sha256: str | None, files: list[str],
                   frames: int, people: int, damaged_frames: int = 0, retimed_frames: int = 0) -> Path:
    """Write ``folder/manifest.json`` describing the finished files of ``folder`` (call it last)."""
    from . import __version__

    listed = {}
    for name in files:
        p = folder / name
        listed[name] = {"size": p.stat().st_size, "sha256": _sha256_file(p)}
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "wildpose": __version__,
                "input": input_identity(input_path), "options": options_record(options),
                "lifter_sha256": lifter_sha256, "files": listed, "frames": int(frames), "people": int(people),
                "damaged_frames": int(damaged_frames), "retimed_frames": int(retimed_frames)}
    target = folder / MANIFEST_NAME
    target.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return target


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none or it does not parse as one (never raises)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        return None
    return manifest


def is_up_to_date(folder: Path, input_path: Path, options, lifter_sha256: str | None) -> tuple[bool, str]:
    """(whether ``folder`` holds a complete output of ``input_path`` made with ``options``, why not)."""
    from . import __version__

    manifest = read_manifest(folder)
    if manifest is None:
        return False, "no manifest" if not (Path(folder) / MANIFEST_NAME).exists() else "unreadable manifest"
    if manifest.get("version") != FORMAT_VERSION or manifest.get("wildpose") != __version__:
        return False, f"made by wildpose {manifest.get('wildpose')}"
    if manifest.get("options") != options_record(options):
        return False, "made with other options"
    if manifest.get("lifter_sha256") != lifter_sha256:
        return False, "made with another lifter"
    try:
        current = input_identity(input_path)
    except OSError as exc:
        return False, f"input unreadable ({exc.strerror})"
    recorded = manifest.get("input") or {}
    for key in ("size", "mtime_ns", "fingerprint"):
        if recorded.get(key) != current[key]:
            return False, "the input changed"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False, "manifest lists no files"
    for name, entry in files.items():
        p = Path(folder) / name
        if Path(name).name != name or not p.is_file() or not isinstance(entry, dict) \
                or p.stat().st_size != entry.get("size"):
            return False, f"{name} missing or changed"
    return True, "up to date"


def verify_files(folder: Path) -> list[str]:
    """Names of the files whose sha256 differs from the manifest's (empty: all intact)."""
    manifest = read_manifest(folder) or {}
    return [name for name, entry in (manifest.get("files") or {}).items()
            if not (Path(folder) / name).is_file() or _sha256_file(Path(folder) / name) != entry.get("sha256")]
