"""Joint layouts: COCO-17 (2D input) and Human3.6M-17 (3D output)."""

from __future__ import annotations

import numpy as np

COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# mirror image of each COCO keypoint (left <-> right)
COCO_FLIP = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])
COCO_LEFT = (1, 3, 5, 7, 9, 11, 13, 15)
COCO_RIGHT = (2, 4, 6, 8, 10, 12, 14, 16)
# bones drawn on the 2D view: (parent, child)
COCO_BONES = (
    (5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (5, 11), (6, 12), (11, 12),
    (11, 13), (13, 15), (12, 14), (14, 16), (0, 1), (0, 2), (1, 3), (2, 4),
)

H36M_NAMES = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "spine", "thorax", "neck", "head", "left_shoulder", "left_elbow",
    "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)
H36M_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15])
H36M_LEFT = (4, 5, 6, 11, 12, 13)
H36M_RIGHT = (1, 2, 3, 14, 15, 16)
H36M_FLIP = np.array([0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13])
H36M_BONES = tuple((int(p), c) for c, p in enumerate(H36M_PARENTS) if p >= 0)

# COCO's per-keypoint falloff constants for object keypoint similarity (OKS), from the COCO evaluation
COCO_SIGMAS = np.array([0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
                        0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089], np.float64)
