"""Files wildpose reads and writes.

- :mod:`.result`: ``poses.npz`` (our result, plain arrays, never pickled) and the reference's
  ``--viz-export`` ``.npy``.
- :mod:`.reference`: the reference system's (VideoPose3D's) Detectron detections and custom 2D dataset,
  read through a restricted unpickler (:mod:`.safe_pickle`) and written so its scripts load them.
"""

from .reference import (
    fill_single_track,
    read_custom_dataset,
    read_detectron_npz,
    write_custom_dataset,
    write_detectron_npz,
)
from .result import load_result, load_vp3d_export, save_result, save_vp3d_export
from .safe_pickle import safe_load_npz

__all__ = [
    "save_result",
    "load_result",
    "save_vp3d_export",
    "load_vp3d_export",
    "read_detectron_npz",
    "write_detectron_npz",
    "read_custom_dataset",
    "write_custom_dataset",
    "fill_single_track",
    "safe_load_npz",
]


def read_json(path, what: str):
    """Parse a JSON file; FormatError naming the file and saying what it should have been (``what``)."""
    import json
    from pathlib import Path

    from ..errors import FormatError

    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise FormatError(f"cannot read {what} ({exc.strerror or exc})", path) from None
    # ValueError covers JSONDecodeError, UnicodeDecodeError and an integer of more than 4300 digits
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{what} is not valid JSON ({exc})", path) from None
