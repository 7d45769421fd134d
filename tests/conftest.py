"""Shared fixtures. Real data lives in ../shared/data (next to the checkout); tests that need it skip,
with the reason, where it is absent (a user's fresh clone has no shared/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WILDPOSE_SHARED", ROOT.parent / "shared"))
VIDEOS = SHARED / "data" / "videos"
MOCAP = SHARED / "data" / "mocap"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared test data (../shared/data) is not next to this checkout")
    return path


@pytest.fixture(scope="session")
def walk_video() -> Path:
    return _need(VIDEOS / "walk_single.mp4")


@pytest.fixture(scope="session")
def crowd_video() -> Path:
    return _need(VIDEOS / "marathon_crowd.mkv")


@pytest.fixture(scope="session")
def mocap_dir() -> Path:
    return _need(MOCAP)


@pytest.fixture(scope="session")
def astronaut():
    """skimage's astronaut: (512, 512, 3) uint8 RGB, one person, real pixels."""
    from skimage import data

    return data.astronaut()


class Dense:
    """A sparse Tracks or Result seen in the 0.1 layout, (P, T, ...) arrays NaN where a track is absent, for
    tests that check behaviour frame by frame on short clips (``TrackRows.to_dense``)."""

    def __init__(self, rows):
        self.rows = rows
        self.__dict__.update(rows.to_dense())
        self.track_ids, self.timestamps = rows.track_ids, rows.timestamps

    def __len__(self) -> int:
        return len(self.rows)

    def __getattr__(self, name):  # anything not per-row (ids, fps, image_size, camera, main_track, ...)
        return getattr(self.rows, name)


def dense(rows) -> Dense:
    return Dense(rows)


@pytest.fixture(scope="session")
def walk_result(walk_video):
    """The whole pipeline's Result on walk_single.mp4 (one man walking; real pixels, real models), once a session."""
    from wildpose.pipeline import process_video

    result, _ = process_video(walk_video)
    return result


@pytest.fixture(scope="session")
def crowd_result(crowd_video):
    """marathon_crowd.mkv (4.6 s, many runners, a moving camera) through the whole pipeline."""
    from wildpose.pipeline import process_video

    result, _ = process_video(crowd_video)
    return result
