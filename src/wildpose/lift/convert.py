"""Convert a reference (VideoPose3D) torch checkpoint into a wildpose lifter (safetensors + JSON).

Only tensors are read: torch.load runs with ``weights_only=True``, so a checkpoint cannot execute code.
The reference's weights are licensed CC BY-NC 4.0; a converted file keeps that licence (recorded in its
provenance) and using it is the user's responsibility.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from wildpose.errors import FormatError, WildposeError
from wildpose.lift.weights import save_lifter

REFERENCE_LICENCE = ("CC BY-NC 4.0 (VideoPose3D weights, facebookresearch): non-commercial use only; "
                     "complying with it is the user's responsibility")
_BLOCK_CONV = re.compile(r"layers_conv\.(\d+)\.weight$")


def _state_dict(checkpoint: Any, key: str, path: Path) -> dict[str, Any]:
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
        return checkpoint[key]
    if isinstance(checkpoint, dict) and "expand_conv.weight" in checkpoint:
        return checkpoint  # a bare state dict
    keys = ", ".join(map(str, list(checkpoint)[:8])) if isinstance(checkpoint, dict) else type(checkpoint).__name__
    raise FormatError(f"no {key!r} state dict in this checkpoint (found: {keys})", path)


def _epoch(checkpoint: Any) -> int | None:
    epoch = checkpoint.get("epoch") if isinstance(checkpoint, dict) else None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def infer_architecture(tensors: dict[str, np.ndarray], path: str | os.PathLike | None = None) -> dict[str, Any]:
    """filter_widths, channels, in_joints, out_joints from reference-named tensors' shapes.

    Raises
    ------
    FormatError
        if a tensor the architecture needs is missing or has an unexpected rank.
    """
    try:
        expand = tensors["expand_conv.weight"]
        shrink = tensors["shrink.weight"]
    except KeyError as exc:
        raise FormatError(f"not a VideoPose3D-style lifter: tensor {exc.args[0]} missing", path) from None
    if expand.ndim != 3 or shrink.ndim != 3 or expand.shape[1] % 2 or shrink.shape[0] % 3:
        raise FormatError(f"unexpected shapes: expand_conv.weight {expand.shape}, shrink.weight {shrink.shape}",
                          path)
    widths = [int(expand.shape[2])]
    wide = sorted(int(m.group(1)) for k in tensors if (m := _BLOCK_CONV.match(k)) and int(m.group(1)) % 2 == 0)
    if wide != list(range(0, 2 * len(wide), 2)):
        raise FormatError(f"layers_conv indices are not consecutive: {wide}", path)
    for i in wide:
        weight = tensors[f"layers_conv.{i}.weight"]
        if weight.ndim != 3:
            raise FormatError(f"layers_conv.{i}.weight: expected 3 dimensions, got {weight.shape}", path)
        widths.append(int(weight.shape[2]))
    return {"filter_widths": widths, "channels": int(expand.shape[0]), "in_joints": int(expand.shape[1]) // 2,
            "out_joints": int(shrink.shape[0]) // 3}


def convert_checkpoint(ckpt_path: str | os.PathLike, out_path: str | os.PathLike, fps: float = 50.0,
                       causal: bool = False, key: str = "model_pos", bn_eps: float = 1e-5) -> Path:
    """Read a reference checkpoint and write our lifter files ``out_path`` (.safetensors + .json).

    Parameters
    ----------
    ckpt_path : path
        The reference's ``.bin`` (a torch pickle: a dict with ``model_pos`` = state dict) or a bare state dict.
    out_path : path
        ``NAME.safetensors``, ``NAME.json`` or the stem ``NAME``.
    fps : float
        Frame rate the checkpoint was trained at (frames/s): the reference trained at Human3.6M's 50.
    causal : bool
        Whether it was trained as a causal model (the weights look the same either way).
    key : str
        The checkpoint entry holding the state dict (``model_traj`` holds the trajectory model).
    bn_eps : float
        Batch-norm epsilon (torch's default, 1e-5, in the reference).

    Returns
    -------
    Path
        The safetensors file written. The JSON records input_normalisation "screen" (the reference's),
        layouts coco -> h36m, and provenance with the source file and its CC BY-NC licence.

    Raises
    ------
    WildposeError
        if torch is not installed (``pip install wildpose[train]``).
    FormatError
        if the file is missing, is not a torch checkpoint, holds anything but tensors (weights_only refuses
        pickled code), or its tensors are not a VideoPose3D-style lifter.
    """
    ckpt_path = Path(ckpt_path)
    try:
        import torch
    except ImportError:
        raise WildposeError("converting a checkpoint needs torch: pip install wildpose[train]", ckpt_path) from None
    if not ckpt_path.is_file():
        raise FormatError("no such checkpoint file", ckpt_path)
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here (UnpicklingError, RuntimeError, EOFError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"not a loadable torch checkpoint (only plain tensors are accepted): {first}",
                          ckpt_path) from None
    state = _state_dict(checkpoint, key, ckpt_path)
    tensors: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise FormatError(f"state dict key {name!r} is not a tensor name", ckpt_path)
        if name.endswith(".num_batches_tracked"):
            continue
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise FormatError(f"state dict entry {name!r} is not a floating-point tensor", ckpt_path)
        tensors[name] = value.detach().to(torch.float32).cpu().numpy()
    arch = infer_architecture(tensors, ckpt_path)
    config = {
        **arch,
        "causal": bool(causal),
        "in_layout": "coco",
        "out_layout": "h36m",
        "input_normalisation": "screen",
        "fps": float(fps),
        "bn_eps": float(bn_eps),
        "provenance": {
            "source": ckpt_path.name,
            "converted_by": "wildpose convert-checkpoint",
            "date": datetime.date.today().isoformat(),
            "epoch": _epoch(checkpoint),
            "licence": REFERENCE_LICENCE,
        },
    }
    try:
        return save_lifter(out_path, tensors, config)
    except ValueError as exc:
        raise FormatError(f"state dict does not form a lifter: {exc}", ckpt_path) from None


__all__ = ["convert_checkpoint", "infer_architecture"]
