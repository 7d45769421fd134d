"""Lifter files: ``NAME.safetensors`` (weights, reference naming, batch norm not folded) + ``NAME.json`` (config).

The JSON carries the sha256 of the safetensors file, so a truncated, swapped or half-updated pair is refused
with a ModelError naming the file instead of producing silently wrong poses.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wildpose.atomic import atomic_path
from wildpose.errors import ModelError
from wildpose.lift.model import (FORMAT_NAME, FORMAT_VERSION, TemporalModel, check_tensors, member_prefixes,
                                 validate_config)

log = logging.getLogger(__name__)

DEFAULT_MODEL = "lifter"


def model_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The (safetensors, json) pair for a path given as either file or as the common stem."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        stem = path.with_suffix("")
    else:
        stem = path
    return Path(f"{stem}.safetensors"), Path(f"{stem}.json")


def default_model_path() -> Path:
    """Where the shipped lifter lives: ``wildpose/models/lifter.safetensors`` inside the installed package."""
    return Path(str(importlib.resources.files("wildpose") / "models" / f"{DEFAULT_MODEL}.safetensors"))


def shipped_models() -> list[str]:
    """Names of the shipped models besides the default, for ``load_lifter(name)`` (e.g. ``["causal"]``)."""
    return sorted(p.stem[len("lifter_"):] for p in default_model_path().parent.glob("lifter_*.safetensors"))


def _is_shipped_name(path) -> bool:
    # a bare word that names a shipped model and is not a file the user has here
    return isinstance(path, str) and path in shipped_models() and not os.path.exists(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a lifter's JSON config (given the JSON, the safetensors or the stem)."""
    _, json_path = model_paths(path)
    try:
        text = json_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError("lifter config missing (a model is NAME.safetensors + NAME.json)", json_path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the lifter config: {exc}", json_path) from None
    try:
        config = json.loads(text)
    # JSONDecodeError, and ValueError for an integer of more than 4300 digits; RecursionError for deep nesting
    except (ValueError, RecursionError) as exc:
        raise ModelError(f"not valid JSON: {exc}", json_path) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise ModelError(f"not a wildpose lifter config (expected \"format\": \"{FORMAT_NAME}\")", json_path)
    try:
        config = validate_config(config)
    except ValueError as exc:
        raise ModelError(f"invalid lifter config: {exc}", json_path) from None
    sha = config.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise ModelError("invalid lifter config: sha256 missing or not 64 hex digits", json_path)
    return config


def load_lifter(path: str | os.PathLike | None = None) -> TemporalModel:
    """Load a lifter: check its checksum and config, fold batch norm, return the ready model.

    Parameters
    ----------
    path : path or name, optional
        ``NAME.safetensors``, ``NAME.json`` or the stem ``NAME``; None loads the shipped default,
        ``wildpose/models/lifter.safetensors`` + ``.json``; the name of another shipped model (``"causal"``
        for ``lifter_causal``) loads that one.

    Raises
    ------
    ModelError
        naming the file, if a file is missing or unreadable, the checksum differs from the config's sha256,
        the config is invalid, or the tensors do not match it.
    """
    config, tensors, weights_path, json_path = _read_checked(path)
    try:
        model = TemporalModel(config, tensors)
    except ValueError as exc:
        raise ModelError(f"weights do not match {json_path.name}: {exc}", weights_path) from None
    log.debug("loaded %s from %s", model, weights_path)
    return model


def _read_checked(path) -> tuple[dict[str, Any], dict[str, np.ndarray], Path, Path]:
    """A lifter's config and raw tensors, checksum verified: (config, tensors, weights path, json path)."""
    shipped = path is None or _is_shipped_name(path)
    if shipped:
        path = default_model_path() if path is None else default_model_path().with_name(f"lifter_{path}.safetensors")
    weights_path, json_path = model_paths(path)
    if shipped and not weights_path.exists():
        raise ModelError("the shipped lifter is missing from this installation (reinstall wildpose, or pass "
                         "the path of a model)", weights_path)
    if not weights_path.is_file():
        raise ModelError("lifter weights missing (a model is NAME.safetensors + NAME.json)", weights_path)
    config = read_config(json_path)
    try:
        sha = _sha256(weights_path)
    except OSError as exc:
        raise ModelError(f"cannot read the lifter weights: {exc}", weights_path) from None
    if sha != config["sha256"].lower():
        raise ModelError(f"sha256 {sha} differs from {config['sha256']} in {json_path.name}: the file is "
                         "corrupt or does not belong with this config", weights_path)
    return config, _read_tensors(weights_path), weights_path, json_path


# what members of an ensemble must share: they see the same input and their outputs are averaged
_ENSEMBLE_KEYS = ("filter_widths", "channels", "causal", "in_joints", "out_joints", "in_layout", "out_layout",
                  "input_normalisation", "fps", "bn_eps")


def combine_lifters(paths: list[str | os.PathLike], out: str | os.PathLike,
                    provenance: Mapping[str, Any] | None = None) -> Path:
    """Write an ensemble of lifters as one model file whose output is the mean of theirs.

    The members are independently trained networks of one architecture (same config keys in
    ``_ENSEMBLE_KEYS``); their errors are partly independent, so the mean of equally good members is more
    accurate and smoother than each (about 1.3 mm for three, docs/MODEL.md; a weaker member pulls it back).
    Tensors are stored as ``members.I.NAME``; members that are ensembles are flattened.

    Raises
    ------
    ModelError
        naming the file, if a member cannot be read or differs from the first in architecture or input.
    """
    if len(paths) < 2:
        raise ValueError("combine_lifters: needs two models or more")
    first: dict[str, Any] | None = None
    tensors: dict[str, np.ndarray] = {}
    sources = []
    members = 0
    for path in paths:
        config, member_tensors, weights_path, _ = _read_checked(path)
        if first is None:
            first = config
        differs = [k for k in _ENSEMBLE_KEYS if config.get(k) != first.get(k)]
        if differs:
            raise ModelError(f"cannot be averaged with {paths[0]}: different {', '.join(differs)}", weights_path)
        for prefix in member_prefixes(config):
            for name, value in member_tensors.items():
                if name.startswith(prefix):
                    tensors[f"members.{members}.{name[len(prefix):]}"] = value
            members += 1
        sources.append({"file": str(path), "sha256": config["sha256"],
                        "provenance": config.get("provenance", {})})
    config = {k: v for k, v in first.items() if k not in ("sha256", "provenance")}
    config["members"] = members
    # what all members share (data, licence, ...) stays at the top; the split is what any member trained on,
    # so that `wildpose eval` still marks groups that are not held out for the ensemble
    shared = {k: v for k, v in sources[0]["provenance"].items()
              if k != "split" and all(m["provenance"].get(k) == v for m in sources)}
    splits = [m["provenance"].get("split") for m in sources]
    merged: dict[str, Any] = {}
    if all(isinstance(sp, dict) for sp in splits):
        trained = sorted({g for sp in splits for g in sp.get("train", [])})
        merged["split"] = {"train": trained,
                           "test": [g for g in splits[0].get("test", []) if g not in trained]}
    config["provenance"] = {**shared, **merged, **(provenance or {}), "members": sources}
    return save_lifter(out, tensors, config)


def _read_tensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"not a readable safetensors file: {exc}", path) from None
    bad = [k for k, v in tensors.items() if not np.issubdtype(v.dtype, np.floating)]
    if bad:
        raise ModelError(f"tensor {bad[0]} is not floating point ({tensors[bad[0]].dtype})", path)
    return tensors


def save_lifter(path: str | os.PathLike, tensors: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> Path:
    """Write a lifter as ``NAME.safetensors`` + ``NAME.json``, each atomically, with the weights' sha256.

    Parameters
    ----------
    path : path
        ``NAME.safetensors``, ``NAME.json`` or the stem ``NAME``.
    tensors : mapping of str to ndarray
        Reference state-dict naming, batch norm not folded (see docs/ARCHITECTURE.md); stored as float32.
        ``*.num_batches_tracked`` entries are dropped.
    config : mapping
        filter_widths, channels, causal, in/out joints and layouts, input_normalisation, fps, bn_eps,
        provenance; format, version and sha256 are filled in here.

    Returns
    -------
    Path
        The safetensors file written.

    Raises
    ------
    ValueError
        if the config is invalid or the tensors do not match it (nothing is written).
    """
    from safetensors.numpy import save_file

    checked = validate_config({**config, "format": FORMAT_NAME, "version": FORMAT_VERSION})
    check_tensors(checked, tensors)
    cfg = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
           **{k: v for k, v in checked.items() if k not in ("format", "version", "sha256")}}
    arrays = {k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()
              if not k.endswith(".num_batches_tracked")}
    weights_path, json_path = model_paths(path)
    # the JSON is renamed into place last: a reader that sees the new config also sees the new weights
    # (and a crash in between leaves a checksum mismatch that load_lifter reports, never a silent mix)
    with atomic_path(json_path) as tmp_json:
        with atomic_path(weights_path) as tmp_weights:
            save_file(arrays, str(tmp_weights))
            cfg["sha256"] = _sha256(tmp_weights)
        tmp_json.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return weights_path
