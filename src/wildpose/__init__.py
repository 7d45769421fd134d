"""wildpose: videos of people in, tracked 3D human motion out.

    >>> import wildpose
    >>> summary = wildpose.run_video("walk.mp4", "out/")          # writes out/walk/poses.npz
    >>> result = wildpose.load_result("out/walk/poses.npz")       # a wildpose.Result
    >>> poses = wildpose.lift(keypoints_2d, (w, h), fps=30)       # one person's (T, 17, 2|3) pixels -> (T, 17, 3) m
"""

__version__ = "0.1.0"

from .errors import FormatError, ModelError, NoPersonError, VideoError, WildposeError  # noqa: E402
from .types import Camera, Detections, Frame, People2D, Result, TrackRows, Tracks, VideoInfo  # noqa: E402
from .formats.result import load_result, save_result  # noqa: E402
from .pipeline import RunOptions, process_video, run_video  # noqa: E402
from .lift import lift, load_lifter  # noqa: E402  (binds wildpose.lift to the function; the subpackage stays importable)

__all__ = [
    "__version__", "lift", "load_lifter", "run_video", "process_video", "RunOptions", "load_result", "save_result",
    "Frame", "People2D", "Detections", "TrackRows", "Tracks", "Camera", "Result", "VideoInfo",
    "WildposeError", "VideoError", "NoPersonError", "FormatError", "ModelError",
]
