"""2D people detection: every person in a frame as COCO-17 keypoints (:class:`wildpose.types.People2D`)."""

from wildpose.detect2d.base import Detector2D, available_detectors, create_detector
from wildpose.detect2d.crops import CropConfig
from wildpose.detect2d.movenet import MoveNetMultiPose

__all__ = ["CropConfig", "Detector2D", "MoveNetMultiPose", "available_detectors", "create_detector"]
