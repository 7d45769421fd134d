"""``python -m wildpose.lift.train --config configs/lifter.json [--name RUN] [--steps N | --seconds S]
[--threads N] [--set KEY=JSON ...] [--ship [--ship-as NAME]]``

The developers' spelling of ``wildpose train`` (same function, ``commands.train_from_config``), with defaults
for this checkout: runs in ./runs, the shared mocap, and ``--ship`` writing src/wildpose/models/NAME.*.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from wildpose.errors import WildposeError
from wildpose.lift.train.commands import make_sources, parse_overrides, train_from_config

ROOT = Path(__file__).resolve().parents[4]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wildpose.lift.train", description=__doc__)
    ap.add_argument("--config", default=str(ROOT / "configs" / "lifter.json"))
    ap.add_argument("--mocap", help="a folder of BVH files (default: the config's data, else the shared mocap)")
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
    ap.add_argument("--resume", action="store_true", help="continue RUNS/NAME from its checkpoint")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        summary = train_from_config(
            args.config, make_sources([args.mocap]) if args.mocap else None, name=args.name, runs=args.runs,
            steps=args.steps, seconds=args.seconds, threads=args.threads,
            ship=ROOT / "src" / "wildpose" / "models" / args.ship_as if args.ship else None,
            overrides=parse_overrides(args.set),
            command="python -m wildpose.lift.train " + " ".join(a for a in (sys.argv[1:] if argv is None else argv)
                                                                if a != "--resume"),
            resume=args.resume)
    except (WildposeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
