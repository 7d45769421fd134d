"""What ``wildpose train`` and ``wildpose eval`` do, over the training code's own functions.

- :func:`train_from_config`: a config file (configs/lifter.json, configs/trajectory.json, ...) plus data
  sources -> ``wildpose.lift.train.loop.train`` (the function ``python -m wildpose.lift.train`` calls), or
  ``wildpose.lift.train.trajectory.train`` for a trajectory config; optional copy of the best weights.
- :func:`evaluate_models`: held-out scores through ``wildpose.lift.train.evaluate`` (``make_sequences`` +
  ``score``) and ``wildpose.lift.train.trajectory.evaluate``; :func:`format_scores` prints them.

Data paths may sit in the config under ``"data"``: ``{"mocap": DIR or [DIRS], "h36m": FILE or [FILES],
"mapping": FILE or shipped name}`` (relative to the config file); command-line values replace them.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from wildpose.errors import FormatError
from wildpose.formats import read_json
from wildpose.lift.train.sources import Sources, resolve_split

log = logging.getLogger(__name__)

TORCH_MISSING = "wildpose train needs torch: pip install wildpose[train]"
H36M_LICENCE = ("Human3.6M (data_3d_h36m.npz): licensed by its authors for non-commercial research only; "
                "weights trained on it inherit that licence and must not ship under wildpose's Apache-2.0.")


def default_mocap_dir() -> Path:
    """The shared CMU mocap folder: $WILDPOSE_SHARED/data/mocap, else ../shared/data/mocap beside a checkout."""
    env = os.environ.get("WILDPOSE_SHARED")
    if env:
        return Path(env) / "data" / "mocap"
    return Path(__file__).resolve().parents[4].parent / "shared" / "data" / "mocap"


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return [v] if isinstance(v, (str, os.PathLike)) else list(v)


def make_sources(mocap: Sequence[str | os.PathLike] | None = None,
                 h36m: Sequence[str | os.PathLike] | None = None,
                 mapping: str | os.PathLike | Sequence[str | os.PathLike] | None = None, config_data: dict | None = None,
                 base_dir: str | os.PathLike = ".", max_clips: int | None = None) -> Sources:
    """Sources from command-line values, else the config's ``data`` (paths relative to ``base_dir``), else
    the shared CMU mocap folder. Raises FormatError when none of them gives any data."""
    data = config_data or {}
    rel = lambda p: p if Path(p).is_absolute() else Path(base_dir) / p  # noqa: E731
    mocap_l = [Path(p) for p in mocap] if mocap else [rel(p) for p in _as_list(data.get("mocap"))]
    h36m_l = [Path(p) for p in h36m] if h36m else [rel(p) for p in _as_list(data.get("h36m"))]
    if not mapping and data.get("mapping") is not None:
        mapping = [rel(m) if (Path(base_dir) / m).is_file() or str(m).endswith(".json") else m
                   for m in _as_list(data["mapping"])]
    if not mocap_l and not h36m_l:
        default = default_mocap_dir()
        if not default.is_dir():
            raise FormatError("no training data: pass --mocap DIR (BVH files) or --h36m data_3d_h36m.npz "
                              "(the shared CMU mocap folder is not here)", default)
        mocap_l = [default]
    return Sources(mocap=mocap_l, mapping=mapping, h36m=h36m_l, max_clips=max_clips)


def _is_default_cmu(sources: Sources) -> bool:
    return (not sources.h36m and not sources.mappings and len(sources.mocap) == 1
            and Path(sources.mocap[0]).resolve() == default_mocap_dir().resolve())


def _provenance(sources: Sources) -> dict[str, str]:
    """Provenance 'data' and 'licence' for weights trained on anything but the shared CMU folder."""
    parts = [f"BVH files in {p} ({'mapping ' + sources.mapping_names() if sources.mappings else 'rig detected'})"
             for p in sources.mocap]
    parts += [f"Human3.6M 3D poses from {p}" for p in sources.h36m]
    licence = []
    if sources.h36m:
        licence.append(H36M_LICENCE)
    if sources.mocap:
        licence.append("BVH data: the licence of its source (CMU mocap: free for all uses; obtained from "
                       "mocap.cs.cmu.edu, created with funding from NSF EIA-0196217).")
    return {"data": "; ".join(parts), "licence": " ".join(licence)}


def _patch_provenance(json_path: Path, extra: dict[str, str]) -> None:
    from wildpose.atomic import atomic_path

    cfg = json.loads(json_path.read_text())
    cfg.setdefault("provenance", {}).update(extra)
    with atomic_path(json_path) as tmp:
        Path(tmp).write_text(json.dumps(cfg, indent=2) + "\n")
        os.chmod(tmp, 0o644)


def is_trajectory_config(cfg: dict) -> bool:
    """A trajectory-model config (configs/trajectory.json) rather than a pose lifter's."""
    return "init_depth" in cfg or cfg.get("out_layout") == "root"


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=JSON`` strings (``--set``) -> {key: value}; a value that is not JSON stays a string (a path).
    Keys may be dotted (``augment.limb_rotation_sd=15``) to reach into nested sections."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def apply_overrides(cfg: dict, overrides: dict[str, Any], path: str | os.PathLike) -> None:
    """Set each (possibly dotted) key of ``overrides`` in ``cfg``; FormatError naming ``path`` when a dotted
    key runs into a value that is not a section."""
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise FormatError(f"override {key!r}: {part!r} is not a section of the config", path)
        node[leaf] = value


def train_from_config(config: str | os.PathLike, sources: Sources | None = None, name: str | None = None,
                      runs: str | os.PathLike = "runs", steps: int | None = None, seconds: float | None = None,
                      threads: int | None = None, ship: str | os.PathLike | None = None,
                      overrides: dict | None = None, command: str | None = None, resume: bool = False) -> dict:
    """Train from a config file; returns the training summary plus ``run_dir``, ``weights`` (and ``shipped``).

    Parameters
    ----------
    config : a JSON training config (configs/lifter.json; a trajectory config trains the trajectory model).
    sources : the data (default: :func:`make_sources` from the config's ``data``, else the shared mocap).
    name : run name (default: the config's); logs and best weights go to ``runs/NAME/``.
    steps, seconds : replace the config's step count / time budget; threads: torch threads.
    ship : also copy the weights to ``SHIP.safetensors`` + ``SHIP.json`` (atomically): the best on
        validation, or the last ones where the config says ``"ship_weights": "last"``.
    overrides : config keys to replace (e.g. ``{"channels": 128, "augment.limb_rotation_sd": 15}``).
    resume : continue ``runs/NAME/`` from its checkpoint (same config and options; pose lifters only), to
        the weights an uninterrupted run gives.

    The split is the config's, plus the standard Human3.6M one (train S1 S5 S6 S7 S8, test S9 S11) when
    Human3.6M data is given and the split names no 'h36m:' group. Needs torch (ImportError otherwise).
    """
    import torch  # noqa: F401  (fail before any data is read)

    from wildpose.lift.train.data import DEFAULT_SPLIT

    config = Path(config)
    cfg = read_json(config, "config")
    apply_overrides(cfg, overrides or {}, config)
    if cfg.get("input_normalisation", "focal") not in ("focal", "crop"):
        raise FormatError(f"input_normalisation {cfg['input_normalisation']!r}: training supports 'focal' or "
                          "'crop'", config)
    if sources is None:
        sources = make_sources(config_data=cfg.get("data"), base_dir=config.parent)
    cfg.pop("data", None)
    if steps:
        cfg["steps"] = steps
        cfg.pop("max_seconds", None)
    if seconds:
        cfg["max_seconds"] = seconds
    if threads:
        cfg["threads"] = threads
    cfg["split"] = resolve_split(cfg.get("split", DEFAULT_SPLIT), sources)
    for part in ("train", "val"):
        if not set(cfg["split"].get(part, [])) & set(sources.groups()):
            raise FormatError(f"no {part} clips: the split's {part} groups {cfg['split'].get(part, [])} match none "
                              f"of the data's groups {sources.groups()[:12]}; set \"split\" in the config", config)
    # which weights --ship copies: "best" on validation, or "last" for a final model trained on train +
    # validation clips once the recipe was chosen on validation (nothing held out is left to select on)
    chosen = cfg.get("ship_weights", "best")
    if chosen not in ("best", "last"):
        raise FormatError(f"\"ship_weights\": expected \"best\" or \"last\", got {chosen!r}", config)
    if chosen == "last" and is_trajectory_config(cfg):
        raise FormatError("\"ship_weights\": \"last\" is for pose lifters (trajectory runs keep only the best)",
                          config)
    train_groups = set(cfg["split"].get("train", []))
    if train_groups & set(cfg["split"].get("test", [])):
        raise FormatError(f"the split trains on test groups {sorted(train_groups & set(cfg['split']['test']))}: "
                          "test scores would be on training clips", config)
    if chosen == "best" and train_groups & set(cfg["split"].get("val", [])):
        raise FormatError(f"validation groups {sorted(train_groups & set(cfg['split']['val']))} are also trained "
                          "on: the best on them is not a held-out choice (set \"ship_weights\": \"last\")", config)
    cfg.setdefault("cache_dir", str(Path(runs) / "cache"))
    cfg["command"] = command or f"wildpose train --config {shlex.quote(str(config))}"
    name = name or cfg.get("name", "lifter")
    run_dir = Path(runs) / name
    if is_trajectory_config(cfg):
        if resume:
            raise FormatError("--resume is for pose lifters (trajectory runs are short: start again)", config)
        from wildpose.lift.train.trajectory import train

        summary = dict(train(cfg, sources, run_dir))
    else:
        from wildpose.lift.train.loop import train

        summary = dict(train(cfg, sources, run_dir, resume=resume))
    best = run_dir / f"{chosen}.json"
    if not best.is_file():
        raise FormatError("training wrote no weights (no validation step ran?)", run_dir)
    if not _is_default_cmu(sources):
        _patch_provenance(best, _provenance(sources))
    summary["run_dir"] = str(run_dir)
    summary["weights"] = str(run_dir / f"{chosen}.safetensors")
    if ship is not None:
        from wildpose.atomic import atomic_path
        from wildpose.lift.weights import model_paths

        for src, dst in zip(model_paths(run_dir / chosen), model_paths(ship)):
            dst.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
                os.chmod(tmp, 0o644)
        summary["shipped"] = str(model_paths(ship)[0])
    return summary


def split_groups(sources: Sources, split: str) -> list[str]:
    """The subject groups of the standard ``split`` that ``sources`` holds, in split order."""
    from wildpose.lift.train.data import DEFAULT_SPLIT

    have = set(sources.groups())
    return [g for g in resolve_split(DEFAULT_SPLIT, sources).get(split, []) if g in have]


def evaluate_models(sources: Sources, split: str = "test", noisy: bool = False, model: str | None = None,
                    trajectory: str | None | bool = None, max_clips: int | None = None,
                    max_segments: int | None = None, cache_dir: str | os.PathLike | None = None,
                    progress: Callable[[str], None] | None = None, groups: list[str] | None = None,
                    refine: bool = True, unknown_focal: bool = False) -> dict:
    """Held-out scores of a pose lifter (and a trajectory model) on the ``split`` groups of ``sources``
    (only ``groups`` of them where given: one activity or subject at a time).

    Each clip at the model's frame rate is cut into 10 s segments, each seen by its own random static camera
    (the evaluation seeds of ``wildpose.lift.train.evaluate`` / ``trajectory``); whole segments are lifted
    with the numpy inference and flip averaging, then (``refine``) refined as ``wildpose.lift.lift`` does.
    ``unknown_focal``: the 2D is normalised with the default field of view instead of each camera's focal
    length (what `run` does when no --focal/--fov is given); pose scores only.

    Returns
    -------
    dict
        ``pose``: {"gt2d": scores, and with ``noisy`` "noisy2d" (sd 1.5% of the person's height + 1%
        outliers) and "movenet2d" (the calibrated MoveNet noise)}; scores as ``evaluate.score`` (mm).
        ``trajectory`` (unless ``trajectory`` is False or no model is found): {"gt2d", ("noisy2d")}: root
        error mm and depth error % of the distance (``trajectory.score_trajectory``), for the network.
        ``groups``, ``model``, ``trajectory_model``, ``refined``.
    """
    from wildpose.lift.train import evaluate as ev
    from wildpose.lift.train.data import DEFAULT_SPLIT, load_split
    from wildpose.lift.train.noise import MOVENET_NOISE
    from wildpose.lift.weights import default_model_path, load_lifter

    say = progress or (lambda s: None)
    in_split = resolve_split(DEFAULT_SPLIT, sources).get(split, [])
    if groups:
        outside = [g for g in groups if g not in in_split]
        if outside:
            raise FormatError(f"groups {outside} are not in the {split} split ({in_split}): scores on other "
                              "groups would include training clips", "--groups")
    groups = list(groups) if groups else in_split
    have = sources.groups()
    if not set(groups) & set(have):
        raise FormatError(f"no {split} clips in the data (split groups {groups}; the data holds {have[:12]})",
                          " + ".join(str(p) for p in list(sources.mocap) + list(sources.h36m)))
    sources.max_clips = max_clips
    lifter = load_lifter(model)
    clips = load_split(sources, groups, max_clips, cache_dir)
    conditions = [("gt2d", False)] + ([("noisy2d", True), ("movenet2d", MOVENET_NOISE)] if noisy else [])
    out: dict[str, Any] = {"split": split, "groups": [g for g in groups if g in have],
                           "model": str(model or default_model_path()), "fps": lifter.fps, "refined": refine,
                           "unknown_focal": unknown_focal, "pose": {}}
    # a model trained on train + val (v4) scored on val is scored on its training clips: say so
    trained_on = set(lifter.config.get("provenance", {}).get("split", {}).get("train", []))
    out["trained_on_groups"] = [g for g in out["groups"] if g in trained_on]
    for name, noise in conditions:
        say(f"pose {name}")
        seqs = ev.make_sequences(clips, lifter.fps, noise=noise, max_segments=max_segments)
        if unknown_focal:
            seqs = ev.with_default_focal(seqs)
        out["pose"][name] = ev.score(ev.numpy_predictor(lifter, refine=refine), seqs)
    if trajectory is not False:
        from wildpose.world import default_trajectory_path

        path = trajectory if isinstance(trajectory, (str, os.PathLike)) else None
        if path is not None or default_trajectory_path().is_file():
            from wildpose.lift.train import trajectory as tr

            say("trajectory")
            res = tr.evaluate(path, sources, groups, cache_dir, max_segments=max_segments)
            out["trajectory_model"] = str(path or default_trajectory_path())
            out["trajectory"] = {k: v for k, v in res.items() if k in ("gt2d", "noisy2d") and (noisy or k == "gt2d")}
    return out


_LABEL = {"gt2d": "ground truth", "noisy2d": "noisy", "movenet2d": "MoveNet-like"}


def format_scores(res: dict, per_joint: bool = False) -> str:
    """The scores of :func:`evaluate_models` as a small table (mm; MPJVE in mm per frame); ``per_joint``:
    then each joint's MPJPE under each 2D condition."""
    first = next(iter(res["pose"].values()))
    how = " (refined)" if res.get("refined") else " (raw network, --no-refine)"
    if res.get("unknown_focal"):
        how += ", focal length unknown (default FOV)"
    lines = [f"{res['model']}{how}: {res['split']} split ({', '.join(res['groups'])}), {first['segments']} segments, "
             f"{first['frames']} frames at {res['fps']:g} fps",
             f"{'2D':<14}{'MPJPE':>8}{'P-MPJPE':>9}{'N-MPJPE':>9}{'MPJVE':>8}   mean-pose MPJPE / P-MPJPE"
             "   in image / depth"]
    if res.get("trained_on_groups"):
        lines.insert(1, f"NOT HELD OUT: the model trained on {', '.join(res['trained_on_groups'])}")
    for k, s in res["pose"].items():
        lines.append(f"{_LABEL[k]:<14}{s['mpjpe_mm']:8.1f}{s['p_mpjpe_mm']:9.1f}{s['n_mpjpe_mm']:9.1f}"
                     f"{s['mpjve_mm']:8.1f}   {s['baseline_mpjpe_mm']:.1f} / {s['baseline_p_mpjpe_mm']:.1f}"
                     f"   {s['in_plane_mm']:.1f} / {s['depth_mm']:.1f}")
    if per_joint:
        lines.append(f"{'joint':<16}" + "".join(f"{_LABEL[k]:>14}" for k in res["pose"]))
        for joint in first["per_joint_mm"]:
            lines.append(f"{joint:<16}" + "".join(f"{s['per_joint_mm'][joint]:14.1f}" for s in res["pose"].values()))
    if "trajectory" in res:
        lines.append(f"{res['trajectory_model']}: root (pelvis) position in camera space")
        lines.append(f"{'2D':<14}{'root mm':>9}{'median':>8}   depth error % of distance (mean / median / p90)")
        for k, s in res["trajectory"].items():
            lines.append(f"{_LABEL[k]:<14}{s['root_mm']:9.0f}{s['root_median_mm']:8.0f}   "
                         f"{s['depth_pct']:.1f} / {s['depth_median_pct']:.1f} / {s['depth_p90_pct']:.1f}")
    return "\n".join(lines)


def torch_available() -> bool:
    """Whether torch imports (training needs it; evaluation does not)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def command_line(args) -> str:
    """The ``wildpose train`` command line for parsed arguments, for the weights' provenance."""
    words = ["wildpose", "train", "--config", str(args.config)]
    for flag in ("mocap", "h36m", "mapping", "set"):
        for value in getattr(args, flag) or []:
            words += [f"--{flag}", str(value)]
    for flag in ("name", "runs", "steps", "seconds", "threads", "ship"):
        value = getattr(args, flag, None)
        if value is not None and not (flag == "runs" and value == "runs"):
            words += [f"--{flag}", str(value)]
    return " ".join(shlex.quote(w) for w in words)
