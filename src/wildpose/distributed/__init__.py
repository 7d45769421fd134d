"""Many videos, and long ones split into segments, over a Ray cluster: ``wildpose run --ray`` (docs/SCALING.md).

``segments`` plans and joins segments (pure numpy, no Ray), ``work`` is what a worker does (no Ray either), and
``ray_runner`` schedules it on Ray (the optional extra ``wildpose[ray]``).
"""

from .segments import (DEFAULT_OVERLAP_SECONDS, DEFAULT_SEGMENT_SECONDS, Segment, SegmentOutput, plan_segments,
                       stitch)

__all__ = ["Segment", "SegmentOutput", "plan_segments", "stitch", "DEFAULT_SEGMENT_SECONDS",
           "DEFAULT_OVERLAP_SECONDS"]
