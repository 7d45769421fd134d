"""The training data: which clips, which split, loaded once into flat arrays for vectorised window sampling.

Split by subject (never by clip). The motion-prediction subset carries no subject ids and its takes duplicate
clips of CMU subjects 1 (jumping_1 = 01_01 by frame count), 2, 6 (basketball_1 = 06_02) and 7 (walking), so
that folder and subjects 1, 2, 6, 7 are all in the training split. A CMU subject has one group ("cmu:NN") in
every folder, so a subject whose takes appear in two folders (acrobatics 08-49 and the motion-prediction subset)
is in one split only; the groups of the two newest folders are listed in ``DEFAULT_SPLIT`` (docs/MODEL.md).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildpose.lift.train.rigs import Clip, load_clip

log = logging.getLogger(__name__)

DEFAULT_SPLIT = {
    "train": ["mp:*", "cmu:01", "cmu:02", "cmu:06", "cmu:07", "salsa:60", "salsa:61",
              # cmu_acrobatics/: subjects whose takes are also in the motion-prediction subset (10_05, 10_06,
              # 11_01, 13_11, 13_19, 13_39, 16_35 and 49_02 have its joint angles frame for frame; 08 and 09 per
              # the shared README) stay with it; then parkour (127), breakdance and flips (85), bars (43) and
              # getting up (139)
              "cmu:08", "cmu:09", "cmu:10", "cmu:11", "cmu:13", "cmu:16", "cmu:49",
              "cmu:127", "cmu:85", "cmu:43", "cmu:139"],
    "val": ["indian:94", "cmu:88", "cmu:140"],  # + acrobatics and falls (88), getting up from the floor (140)
    # + acrobatics and falls (90) and subject 131's stylised start-walk-stop and hops (cmu_subject_131/). Scores
    # comparable with those reported before these were added: `wildpose eval --groups cmu:03 cmu:05 martial:?`
    "test": ["cmu:03", "cmu:05", "martial:?", "cmu:90", "cmu:131"],
}
BASE_FPS = 60.0  # everything is stored at 60 fps (120 fps clips decimated) before sampling at the model rate


def clip_subject(path: Path) -> str:
    """Subject group of a mocap file: 'cmu:05', 'salsa:60', 'indian:94', 'martial:?', 'mp:*'.

    Salsa takes are couples: files 01-15 are CMU subject 60, 16-30 the partner, subject 61, in the same takes
    (frame counts pair up). Indian dance is CMU subject 94. The martial folder names no subject.
    """
    parts = path.parts
    if "cmu_motion_prediction_subset" in parts:
        return "mp:*"
    if "cmu_subjects_01_07" in parts:
        return f"cmu:{path.stem.split('_')[0][-2:]}"
    if "cmu_acrobatics" in parts:  # one folder per CMU subject
        return f"cmu:{int(path.parent.name):02d}"
    if "cmu_subject_131" in parts:
        return "cmu:131"
    folder = path.parent.name
    if folder == "salsa":
        return "salsa:60" if int(path.stem) <= 15 else "salsa:61"
    if folder == "indian":
        return "indian:94"
    return f"{folder}:?"


def list_clips(mocap_dir: str | os.PathLike) -> list[tuple[Path, str]]:
    """All BVH files under the shared mocap folder with their subject group, sorted."""
    root = Path(mocap_dir)
    out = []
    for p in sorted(root.rglob("*.bvh")):
        if p.name == "standard.bvh":  # the DAZ rest skeleton, no motion
            continue
        out.append((p, clip_subject(p)))
    return out


@dataclass
class ClipSet:
    """Clips concatenated: h36m (N, 17, 3), coco (N, 17, 3) metres at BASE_FPS; starts/lengths per clip."""

    h36m: np.ndarray
    coco: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    names: list[str]
    subjects: list[str]

    @property
    def n_frames(self) -> int:
        return int(self.lengths.sum())

    def clip(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s, n = self.starts[i], self.lengths[i]
        return self.h36m[s:s + n], self.coco[s:s + n]


def _to_base_fps(clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    n = clip.h36m.shape[0]
    t = np.arange(0.0, (n - 1) / clip.fps + 1e-9, 1.0 / BASE_FPS) * clip.fps
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    a = (t - i0)[:, None, None].astype(np.float32)
    return ((1 - a) * clip.h36m[i0] + a * clip.h36m[i1], (1 - a) * clip.coco[i0] + a * clip.coco[i1])


def loader_tag(extra: str = "") -> str:
    """A short hash of the code that turns BVH files into joints, of the shipped mappings (the rigs.MAPPED_RIGS
    are defined by theirs) and of ``extra`` (e.g. mapping files): cached clips live under it, so a change to a
    joint definition never mixes old and new data in one run."""
    from wildpose.lift.train import bvh, rigs, sources

    digest = hashlib.sha1(extra.encode())
    for module in (bvh, rigs, sources):
        digest.update(Path(module.__file__).read_bytes())
    for mapping in sorted(sources.MAPPINGS_DIR.glob("*.json")):
        digest.update(mapping.name.encode() + mapping.read_bytes())
    digest.update(inspect.getsource(_to_base_fps).encode())
    return digest.hexdigest()[:10]


def cache_name(path: Path, root: str | os.PathLike) -> str:
    """Cache file name of a BVH file: its path under the root, plus its size and modification time."""
    st = path.stat()
    return f"{str(path.relative_to(root)).replace(os.sep, '__')}.{st.st_size}-{int(st.st_mtime)}.npz"


def write_cache(path: Path, h36m: np.ndarray, coco: np.ndarray) -> None:
    from wildpose.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, h36m=h36m, coco=coco)


def load_split(mocap_dir: str | os.PathLike, groups: list[str], max_clips: int | None = None,
               cache_dir: str | os.PathLike | None = None) -> ClipSet:
    """Load every clip whose subject group is in ``groups`` (optionally the first ``max_clips``).

    ``mocap_dir`` may also be a ``wildpose.lift.train.sources.Sources`` (several folders, BVH joint-name
    mappings, the reference's data_3d_h36m.npz): the training and evaluation code pass it through unchanged.
    """
    if hasattr(mocap_dir, "load_split"):
        return mocap_dir.load_split(groups, max_clips, cache_dir)
    items = [(p, s) for p, s in list_clips(mocap_dir) if s in groups]
    if max_clips is not None:
        items = items[:max_clips]
    h, c, lens, names, subs = [], [], [], [], []
    folder = Path(cache_dir) / f"rigs-{loader_tag()}" if cache_dir else None
    for p, s in items:
        cached = folder / cache_name(p, mocap_dir) if folder is not None else None
        if cached is not None and cached.is_file():
            with np.load(cached) as z:
                hh, cc = z["h36m"], z["coco"]
        else:
            hh, cc = _to_base_fps(load_clip(p, s))
            if cached is not None:
                write_cache(cached, hh, cc)
        h.append(hh)
        c.append(cc)
        lens.append(len(hh))
        names.append(str(p.relative_to(mocap_dir)))
        subs.append(s)
    lengths = np.array(lens)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    log.info("loaded %d clips, %d frames at %g fps from groups %s", len(items), lengths.sum(), BASE_FPS, groups)
    return ClipSet(np.concatenate(h).astype(np.float32), np.concatenate(c).astype(np.float32), starts, lengths,
                   names, subs)
