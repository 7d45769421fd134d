"""Named trade-offs between the 2D stage's speed and its quality (``wildpose run --preset``).

- ``accurate``: every frame gets the full detection (full-frame pass, tiles in crowds, the crop pass), the
  default before key frames existed, reproduced exactly.
- ``balanced`` (the default): the full-frame search only on key frames, person-sized windows around the people
  followed in between (:mod:`wildpose.detect2d.keyframes`).
- ``fast``: the same with rarer key frames and smaller windows.

Measured in ``benchmarks/bench_speed.py``; the numbers and why these values are in ``docs/DETECTION.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from wildpose.detect2d.keyframes import KeyframeConfig


@dataclass(frozen=True)
class Preset:
    """detector_options: passed to the detector's constructor (the caller's own options win).
    keyframes: how to follow people between key frames; None: a full detection on every frame."""

    detector_options: dict = field(default_factory=dict)
    keyframes: KeyframeConfig | None = None


PRESETS = MappingProxyType({
    "fast": Preset(keyframes=KeyframeConfig(interval=16, idle_interval=2, person_size=96, max_pixels=100_000,
                                             follow_score=0.2, margin=0.3)),
    "balanced": Preset(keyframes=KeyframeConfig()),
    "accurate": Preset(),
})
# ``balanced`` meets the targets on both shared videos with keypoints as close to the 768 reference as
# ``accurate``'s, and its restarts make split runs (``wildpose run --ray``) exact (docs/DETECTION.md): the default.
DEFAULT_PRESET = "balanced"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ValueError naming the choices for any other name."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}") from None


def restart_seconds(name: str) -> float | None:
    """The period at which preset ``name``'s detector starts afresh (where a split video is cut), or None for
    a detector without memory between frames."""
    keyframes = get_preset(name).keyframes
    return None if keyframes is None else keyframes.restart_seconds


__all__ = ["DEFAULT_PRESET", "PRESETS", "Preset", "get_preset", "restart_seconds"]
