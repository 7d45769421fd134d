"""``python -m wildpose.lift.train --config configs/lifter.json [--name RUN] [--steps N | --seconds S]
[--threads N] [--ship [--ship-as NAME]]``"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from wildpose.lift.train.loop import train

ROOT = Path(__file__).resolve().parents[4]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wildpose.lift.train", description=__doc__)
    ap.add_argument("--config", default=str(ROOT / "configs" / "lifter.json"))
    ap.add_argument("--mocap", default=str(ROOT.parent / "shared" / "data" / "mocap"))
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--name", help="run name (default: the config's name)")
    ap.add_argument("--steps", type=int, help="override the config's step count")
    ap.add_argument("--seconds", type=float, help="train for this wall time instead of a step count")
    ap.add_argument("--threads", type=int, help="torch threads (overrides the config)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override a config key, e.g. --set channels=128 --set 'filter_widths=[3,3,3,3]' "
                         "--set augment.limb_rotation_sd=15")
    ap.add_argument("--ship", action="store_true", help="copy the best weights to src/wildpose/models/NAME.*")
    ap.add_argument("--ship-as", default="lifter", help="NAME for --ship (default lifter)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = json.loads(Path(args.config).read_text())
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:  # a bare string, e.g. a path
            pass
        *parents, leaf = key.split(".")  # "augment.limb_rotation_sd=15" sets a nested key
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    if args.steps:
        cfg["steps"] = args.steps
        cfg.pop("max_seconds", None)
    if args.seconds:
        cfg["max_seconds"] = args.seconds
    if args.threads:
        cfg["threads"] = args.threads
    cfg.setdefault("cache_dir", str(Path(args.runs) / "cache"))
    name = args.name or cfg.get("name", "lifter")
    ship = ROOT / "src" / "wildpose" / "models" / args.ship_as if args.ship else None
    summary = train(cfg, args.mocap, Path(args.runs) / name, ship_to=ship)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
