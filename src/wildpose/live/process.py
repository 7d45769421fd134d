"""Causal processing of one frame at a time: 2D people -> online tracks -> causal 3D -> trajectory -> world.

Every step uses the current frame and earlier ones only:

- the detector runs on each frame as offline (``pipeline.make_detector``);
- the online ``wildpose.track.Tracker`` assigns ids; offline gap filling (interpolating a track's missed
  frames, which needs the frame after the gap) is not done: a track's missed frames are simply absent, and
  the lifter's time resampling bridges them as it bridges any uneven spacing. A track missing for more than
  ``TrackerConfig.max_gap`` seconds starts a new person id, as offline splits it there;
- per track, the causal lifter, the causal refinement and the trajectory model on ring buffers
  (``wildpose.live.causal``): each network's newest output equals the offline result on the track so far
  (docs/LIVE.md, "What is causal", says where that differs from the offline run on the whole video);
- the world frame settles as evidence accumulates (``wildpose.live.world``).

Offline drops tracks shorter than ``TrackerConfig.min_track_length`` frames once it has seen them end; live
cannot wait, so every tracked person is reported from their first frame (``min_frames`` hides the first few).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from wildpose.live.causal import CausalRefiner, PrefixTemporalModel, push_many
from wildpose.live.world import SettlingWorld, WorldState
from wildpose.track import Tracker, TrackerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveOptions:
    """What ``wildpose live`` does; defaults are the CLI's."""

    lifter: str = "causal"  # a lifter file or shipped name; live needs a causal one (checked)
    flip: bool = True
    refine: bool = True
    input_size: int | None = None  # the detector's longer side (MoveNet: a multiple of 32); None: its default
    crop_pass: bool = True  # MoveNet's second, top-down pass on small people (about half the detector's time)
    focal_length: float | None = None  # pixels; None: fov, else the default field of view
    fov: float | None = None
    min_frames: int = 1  # report a person from their N-th frame on
    world_refit_s: float = 1.0
    trajectory: bool = True  # the trajectory model (else no camera-space roots, no world)


FAST = {"input_size": 192, "crop_pass": False}
"""``wildpose live --fast``: MoveNet at 192 pixels without its crop pass, about a third of the default
detector's time on walk_single (docs/LIVE.md); small or distant people are found less well."""


def detector_options(options: LiveOptions) -> dict:
    """The MoveNet options ``options`` ask for (``pipeline.make_detector``'s ``detector_options``)."""
    out = {} if options.input_size is None else {"input_size": options.input_size}
    if not options.crop_pass:
        out["refine"] = False
    return out


@dataclass
class LivePerson:
    """One person in one frame."""

    id: int  # live person id, 1, 2, ... in order of first appearance
    keypoints_2d: np.ndarray  # (17, 3) float32 COCO pixels and score
    pose_3d: np.ndarray  # (17, 3) float32 H36M metres, camera axes, root-relative
    root: np.ndarray | None  # (3,) float32 metres, camera axes (the trajectory model), None without it
    joints_world: np.ndarray | None  # (17, 3) float32 world axes, None before the world's first fit
    frames: int  # frames of this person so far (this one included)

    @property
    def joints_camera(self) -> np.ndarray | None:
        """(17, 3) absolute camera-space joints, metres."""
        return None if self.root is None else self.pose_3d + self.root


@dataclass
class LiveResult:
    """One processed frame."""

    number: int
    timestamp: float
    captured: float
    people: list[LivePerson]
    world: WorldState | None


@dataclass
class _Person:
    id: int
    lifter: PrefixTemporalModel
    refiner: CausalRefiner | None
    trajectory: PrefixTemporalModel | None
    last_time: float
    frames: int = 0


@dataclass
class LiveProcessor:
    """Feed it frames (``process``); it keeps the state of every track.

    Parameters
    ----------
    image_size : (width, height) pixels of the frames
    fps : the source's nominal frame rate (the refinement's rate for a track's first frame)
    options : LiveOptions
    detector, lifter, trajectory_model : already loaded ones (default: made from ``options``)
    """

    image_size: tuple[int, int]
    fps: float
    options: LiveOptions = LiveOptions()
    detector: object = None
    lifter: object = None
    trajectory_model: object = None
    tracker_config: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self):
        from wildpose.camera import CameraIntrinsics
        from wildpose.errors import ModelError
        from wildpose.lift import load_lifter
        from wildpose.pipeline import RunOptions, make_detector

        opts = self.options
        if self.detector is None:
            self.detector = make_detector(RunOptions(detector_options=detector_options(opts), preset="accurate"))
        if self.lifter is None:
            self.lifter = load_lifter(opts.lifter)
        if not self.lifter.causal:
            raise ModelError("live needs a causal lifter (its outputs must not wait for later frames); this one "
                             "is symmetric: use --lifter causal")
        if self.trajectory_model is None and opts.trajectory:
            from wildpose.world import load_trajectory_model

            self.trajectory_model = load_trajectory_model(None)
        self.intrinsics = CameraIntrinsics.parse_cli(tuple(self.image_size), focal=opts.focal_length, fov=opts.fov)
        self.tracker = Tracker(dataclasses.replace(self.tracker_config))
        self.world = SettlingWorld(refit_every_s=opts.world_refit_s) if opts.trajectory else None
        self._people: dict[int, _Person] = {}  # tracker id -> state
        self._next_id = 1

    def _person(self, raw_id: int, timestamp: float) -> _Person:
        person = self._people.get(raw_id)
        if person is not None and timestamp - person.last_time <= self.tracker_config.max_gap + 1e-9:
            return person
        focal, centre = self.intrinsics.focal_length, self.intrinsics.principal_point
        size = tuple(self.image_size)
        person = _Person(
            self._next_id, PrefixTemporalModel(self.lifter, size, focal, centre, self.options.flip),
            CausalRefiner(size, self.fps, focal, centre) if self.options.refine and
            self.lifter.input_normalisation in ("focal", "crop") else None,
            PrefixTemporalModel(self.trajectory_model, size, focal, centre, self.options.flip)
            if self.trajectory_model is not None else None, timestamp)
        self._next_id += 1
        self._people[raw_id] = person
        return person

    def process(self, image: np.ndarray, timestamp: float, number: int = 0, captured: float = 0.0) -> LiveResult:
        """One frame (H, W, 3) uint8 RGB at ``timestamp`` seconds (increasing) -> its people."""
        found = self.detector(image)
        return self.process_people(found, timestamp, number, captured)

    def process_people(self, found, timestamp: float, number: int = 0, captured: float = 0.0) -> LiveResult:
        """The same from the frame's detections (``People2D``), for callers that detect themselves."""
        ids = self.tracker.update(found, timestamp)
        tracked = np.flatnonzero(ids >= 0)
        persons = [self._person(int(ids[d]), timestamp) for d in tracked]
        keypoints = [found.keypoints[d] for d in tracked]
        times = [timestamp] * len(persons)
        # everyone's networks in one pass per window length (push_many), the rest per person
        poses = push_many([p.lifter for p in persons], keypoints, times)
        roots = (push_many([p.trajectory for p in persons], keypoints, times)
                 if self.trajectory_model is not None else [None] * len(persons))
        people: list[LivePerson] = []
        for person, kp, pose, root in zip(persons, keypoints, poses, roots):
            if person.refiner is not None:
                pose = person.refiner.push(pose, kp, timestamp)
            else:
                pose = pose - pose[:1]
            pose = np.ascontiguousarray(pose, np.float32)
            pose[0] = 0.0
            root = None if root is None else root[0]
            person.last_time = timestamp
            person.frames += 1
            if root is not None and self.world is not None:
                self.world.add(person.id, pose + root)
            people.append(LivePerson(person.id, np.asarray(kp, np.float32), pose, root, None, person.frames))
        # forget the states of tracks the tracker has forgotten
        horizon = timestamp - max(self.tracker_config.max_missed, self.tracker_config.max_gap)
        for raw_id in [k for k, p in self._people.items() if p.last_time < horizon]:
            del self._people[raw_id]
        if self.world is not None:
            self.world.update(timestamp)
            for p in people:
                if p.root is not None:
                    p.joints_world = self.world.to_world(p.id, p.pose_3d, p.root)
        people = [p for p in people if p.frames >= self.options.min_frames]
        people.sort(key=lambda p: p.id)
        return LiveResult(number, float(timestamp), captured, people,
                          self.world.state if self.world is not None else None)
