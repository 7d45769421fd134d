"""Fuzzing the readers of user files: whatever bytes a file holds, a reader returns or raises wildpose's own
error (WildposeError: FormatError, ModelError) in one line that names the file; never another exception type,
never a hang, never code from the file.

Readers: ``load_result`` (poses.npz), ``load_tracks`` (the 2D file), ``read_detectron_npz`` and
``read_custom_dataset`` (the reference's pickled npz files, through the restricted unpickler),
``load_vp3d_export`` (the reference's .npy), ``convert_checkpoint`` (the reference's torch checkpoints,
``torch.load(weights_only=True)``) and ``load_lifter`` (safetensors + JSON).

Each starts from a valid file written by wildpose's own writers and damages it three ways, all drawn by
hypothesis (derandomised, no example database: every run tries the same cases):

- bytes: bit flips, truncation, inserted, deleted and overwritten bytes anywhere in the file;
- members: the same done to one member of the archive, re-zipped with a correct CRC, so the damage reaches the
  .npy header parser, the unpickler and the safetensors header rather than stopping at the zip's checksum;
- content: a well-formed file whose arrays, pickled objects, tensors or JSON values are replaced, dropped or
  added (other dtypes and shapes, wrong nesting, keys that are not strings, numbers too large for a float).

Hostile files: pickles whose unpickling would create a marker file (in an npz, an npy, a torch checkpoint),
each first shown to create it when loaded the unsafe way; zip members named ``../x`` or by an absolute path.
Every call runs under a time bound (SIGALRM): a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from wildpose.camera import CameraIntrinsics
from wildpose.errors import WildposeError
from wildpose.formats import (load_result, load_vp3d_export, read_custom_dataset, read_detectron_npz, save_result,
                              save_vp3d_export, write_custom_dataset, write_detectron_npz)
from wildpose.formats.keypoints import load_tracks, save_tracks
from wildpose.formats.safe_pickle import write_npz
from wildpose.lift import load_lifter, save_lifter
from wildpose.lift.model import expected_shapes
from wildpose.types import Camera, People2D, Result

try:
    import torch
except ImportError:  # torch is the optional "train" extra
    torch = None

# noise from the damage itself: zip members given twice, torch reading a pickle protocol byte that a flip changed
pytestmark = [pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning"),
              pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")]

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed (pip install wildpose[train])")

# WILDPOSE_HYPOTHESIS_SCALE=20 runs twenty times the examples (a deeper search, by hand; CI runs 1)
SCALE = max(1, int(os.environ.get("WILDPOSE_HYPOTHESIS_SCALE", "1")))
PROFILE = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.function_scoped_fixture])
TIME_BOUND_S = 20.0  # per reader call; the slowest valid call takes milliseconds


class Hang(BaseException):
    """Raised by the time bound: a BaseException, so that readers' ``except Exception`` cannot swallow it."""


@contextlib.contextmanager
def time_bound(seconds: float = TIME_BOUND_S):
    def expire(signum, frame):
        raise Hang(f"the reader ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_reader(reader, path: Path, *names: Path):
    """Call ``reader(path)``: it returns, or raises a WildposeError whose one-line message names ``path`` (or one
    of ``names``, the other file of a pair). Any other exception propagates and fails the test."""
    names = names or (path,)
    with time_bound():
        try:
            return reader(path)
        except WildposeError as exc:
            message = str(exc)
            assert any(str(n) in message for n in names), f"the error does not name the file: {message}"
            assert "\n" not in message, f"the error is not one line: {message!r}"
            assert exc.path is not None
            return exc


# ------------------------------------------------------------------------------------------- damage
def _ops(size: int):
    """One damaging edit of a byte string of ``size`` bytes."""
    pos = st.integers(0, max(size - 1, 0))
    return st.one_of(
        st.tuples(st.just("flip"), pos, st.integers(0, 7)),
        st.tuples(st.just("truncate"), st.integers(0, size)),
        st.tuples(st.just("insert"), st.integers(0, size), st.binary(min_size=1, max_size=32)),
        st.tuples(st.just("delete"), pos, st.integers(1, 64)),
        st.tuples(st.just("overwrite"), pos, st.binary(min_size=1, max_size=8)),
        # the bytes that headers are made of: lengths, shape numbers, type codes
        st.tuples(st.just("overwrite"), pos, st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"9999999",
                                                              b"'|O'", b"-1", b"(", b")", b"\x7f\xff\xff\xff"])),
    )


def _apply(data: bytes, op) -> bytes:
    kind = op[0]
    if kind == "flip":
        if not data:
            return data
        pos = op[1] % len(data)
        return data[:pos] + bytes([data[pos] ^ (1 << op[2])]) + data[pos + 1:]
    if kind == "truncate":
        return data[:op[1]]
    if kind == "insert":
        return data[:op[1]] + op[2] + data[op[1]:]
    if kind == "delete":
        return data[:op[1]] + data[op[1] + op[2]:]
    if kind == "overwrite":
        return data[:op[1]] + op[2] + data[op[1] + len(op[2]):]
    raise AssertionError(kind)


@st.composite
def damaged(draw, data: bytes, max_edits: int = 4) -> bytes:
    for _ in range(draw(st.integers(1, max_edits))):
        data = _apply(data, draw(_ops(len(data))))
    return data


def _members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def _zip(members, compression=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, payload in members:
            zf.writestr(name, payload)
    return out.getvalue()


@st.composite
def damaged_member(draw, data: bytes) -> bytes:
    """A valid zip (correct CRCs) with one member damaged, or a member dropped, renamed or duplicated."""
    members = _members(data)
    i = draw(st.integers(0, len(members) - 1))
    name, payload = members[i]
    what = draw(st.sampled_from(["damage", "damage", "damage", "drop", "rename", "duplicate"]))
    if what == "damage":
        members[i] = (name, draw(damaged(payload)))
    elif what == "drop":
        del members[i]
    elif what == "rename":
        members[i] = (draw(st.sampled_from(["x", "a.npy", name + ".npy", name.upper(), "dir/" + name])), payload)
    else:
        members.append((name, draw(damaged(payload))))
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    return _zip(members, compression)


def _write(tmp: str, name: str, data: bytes) -> Path:
    path = Path(tmp) / name
    path.write_bytes(data)
    return path


# plain values for replacing content: what a pickle, a torch checkpoint or JSON could hold instead
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=8),
                     st.binary(max_size=8))
_small_arrays = hnp.arrays(st.one_of(hnp.scalar_dtypes(), hnp.unicode_string_dtypes(), st.just(np.dtype(bool))),
                           hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
# inside a pickle: the dtypes the reference's files (and so our encoder) can hold, no datetimes
_pickled_arrays = _small_arrays.filter(lambda a: a.dtype.kind in "biufcSU")
_values = st.recursive(st.one_of(_scalars, _pickled_arrays),
                       lambda inner: st.one_of(st.lists(inner, max_size=3),
                                               st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner,
                                                               max_size=3)),
                       max_leaves=8)


def _nodes(obj, path=()):
    """Paths to every value inside nested dicts, lists and object arrays (tuples are left whole)."""
    yield path
    if isinstance(obj, dict):
        for key in list(obj):
            yield from _nodes(obj[key], path + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _nodes(value, path + (i,))
    elif isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        for index in np.ndindex(obj.shape):
            yield from _nodes(obj[index], path + (index,))


def _replace(root, path, value):
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, list) and value is _DROP:
        del parent[path[-1]]
    elif isinstance(parent, dict) and value is _DROP:
        del parent[path[-1]]
    elif value is not _DROP:
        parent[path[-1]] = value


_DROP = object()


@st.composite
def edited(draw, tree: dict, values=_values, max_edits: int = 3) -> dict:
    """A copy of ``tree`` (member name -> array, or any nested dict/list) with values replaced or dropped and
    keys added."""
    import copy

    tree = copy.deepcopy(tree)
    for _ in range(draw(st.integers(1, max_edits))):
        paths = [p for p in _nodes(tree) if p]
        if not paths:
            break
        what = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if what == "add":  # a new key in any dict of the tree: not always a string
            dicts = [p for p in _nodes(tree) if isinstance(_get(tree, p), dict)]
            target = _get(tree, draw(st.sampled_from(dicts)))
            target[draw(st.one_of(st.text(min_size=1, max_size=6), st.integers(-5, 5)))] = draw(values)
        else:
            _replace(tree, draw(st.sampled_from(paths)), _DROP if what == "drop" else draw(values))
    return tree


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


# ------------------------------------------------------------------------------------------- seed files
def _result() -> Result:
    rng = np.random.default_rng(0)
    frames = [[0, 1, 2, 3, 5], [2, 3, 4]]
    N, T = 8, 6
    camera = Camera(CameraIntrinsics(500.0, 500.0, 320.0, 240.0, "opencv", (0.1, -0.05, 0.0, 0.0, 0.01)), True,
                    np.eye(3), [0.0, -1.6, 0.0], np.tile(np.eye(3), (T, 1, 1)), True, np.zeros(T, bool))
    return Result([1, 2], [5, 3], [t for f in frames for t in f], np.arange(T) / 30.0,
                  keypoints_2d=rng.uniform(0, 640, (N, 17, 3)), poses_3d=rng.normal(0, 0.3, (N, 17, 3)),
                  interpolated=np.array([0, 0, 0, 0, 1, 0, 0, 0], bool), fps=30.0, image_size=(640, 480),
                  trajectory=rng.normal(0, 1, (N, 3)), poses_world=rng.normal(0, 1, (N, 17, 3)), camera=camera,
                  extras={"note": np.array("made by test_fuzz"), "score": np.arange(3, dtype=np.float16)})


def _people() -> list[People2D]:
    rng = np.random.default_rng(1)
    out = []
    for n in (1, 0, 2, 1):
        kp = np.concatenate([rng.uniform(0, 640, (n, 17, 2)), rng.uniform(0, 1, (n, 17, 1))], -1)
        out.append(People2D(kp, np.c_[rng.uniform(0, 640, (n, 4)), rng.uniform(0, 1, n)]))
    return out


LIFTER_CONFIG = {"filter_widths": [3, 3], "channels": 8, "causal": False, "in_joints": 17, "in_layout": "coco",
                 "out_joints": 17, "out_layout": "h36m", "input_normalisation": "screen", "fps": 50.0,
                 "bn_eps": 1e-5, "provenance": {"note": "random weights for the fuzz tests"}}


def _lifter_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    out = {}
    for name, shape in expected_shapes({**LIFTER_CONFIG, "members": 1}).items():
        out[name] = (rng.uniform(0.5, 2.0, shape) if name.endswith("running_var") else rng.normal(0, 0.1, shape))
    return {k: v.astype(np.float32) for k, v in out.items()}


class Seeds(dict):
    def __repr__(self) -> str:  # hypothesis prints a failing case's arguments: not the files' bytes
        return f"<seed files {sorted(self)}>"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Seeds:
    """Valid files, as bytes, from wildpose's own writers (and torch's, for the checkpoint)."""
    d = tmp_path_factory.mktemp("seeds")
    result = _result()
    save_result(result, d / "poses.npz")
    save_result(result, d / "poses_stored.npz", compress=False)
    save_tracks(result.tracks(), 30.0, (640, 480), d / "keypoints.npz")
    write_detectron_npz(d / "detectron.npz", _people(), 640, 480)
    write_custom_dataset(d / "custom.npz", {"walk.mp4": result.keypoints_2d[:5, :, :2]},
                         {"walk.mp4": {"w": 640, "h": 480}})
    save_vp3d_export(result.poses_3d, d / "export.npy")
    save_lifter(d / "lifter", _lifter_tensors(), LIFTER_CONFIG)
    out = Seeds({p.name: p.read_bytes() for p in d.iterdir()})
    if torch is not None:
        state = {k: torch.from_numpy(v) for k, v in _lifter_tensors().items()}
        state["expand_bn.num_batches_tracked"] = torch.tensor(7)
        buffer = io.BytesIO()
        torch.save({"epoch": 3, "lr": 0.001, "model_pos": state}, buffer)
        out["checkpoint.bin"] = buffer.getvalue()
        legacy = io.BytesIO()
        torch.save({"model_pos": state}, legacy, _use_new_zipfile_serialization=False)
        out["legacy.bin"] = legacy.getvalue()
    return out


NPZ_READERS = {
    "poses.npz": load_result,
    "poses_stored.npz": load_result,
    "keypoints.npz": load_tracks,
    "detectron.npz": read_detectron_npz,
    "custom.npz": read_custom_dataset,
}


def test_seed_files_are_valid(seeds, tmp_path):
    """The fuzzers start from files the readers accept."""
    for name, reader in {**NPZ_READERS, "export.npy": load_vp3d_export}.items():
        value = check_reader(reader, _write(str(tmp_path), name, seeds[name]))
        assert not isinstance(value, WildposeError), value
    _write(str(tmp_path), "lifter.json", seeds["lifter.json"])
    model = check_reader(load_lifter, _write(str(tmp_path), "lifter.safetensors", seeds["lifter.safetensors"]))
    assert not isinstance(model, WildposeError), model
    if torch is not None:
        for name in ("checkpoint.bin", "legacy.bin"):
            converted = check_reader(_convert, _write(str(tmp_path), name, seeds[name]))
            assert not isinstance(converted, WildposeError), converted


# ------------------------------------------------------------------------------------------- npz and npy
@pytest.mark.parametrize("seed", list(NPZ_READERS) + ["export.npy"])
@settings(PROFILE, max_examples=SCALE * 60)
@given(data=st.data())
def test_damaged_bytes(seeds, seed, data):
    reader = NPZ_READERS.get(seed, load_vp3d_export)
    with tempfile.TemporaryDirectory() as tmp:
        check_reader(reader, _write(tmp, seed, data.draw(damaged(seeds[seed]))))


@pytest.mark.parametrize("seed", list(NPZ_READERS))
@settings(PROFILE, max_examples=SCALE * 60)
@given(data=st.data())
def test_damaged_members(seeds, seed, data):
    with tempfile.TemporaryDirectory() as tmp:
        check_reader(NPZ_READERS[seed], _write(tmp, seed, data.draw(damaged_member(seeds[seed]))))


@settings(PROFILE, max_examples=SCALE * 40)
@given(data=st.binary(max_size=2048), magic=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY",
                                                             b"\x93NUMPY\x01\x00", b"\x80\x04", b"{"]))
def test_random_bytes(data, magic):
    with tempfile.TemporaryDirectory() as tmp:
        for name, reader in {**NPZ_READERS, "export.npy": load_vp3d_export}.items():
            check_reader(reader, _write(tmp, name, magic + data))


def _arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.parametrize("seed", ["poses.npz", "keypoints.npz"])
@settings(PROFILE, max_examples=SCALE * 80)
@given(data=st.data())
def test_plain_npz_with_other_content(seeds, seed, data):
    """Well-formed npz files whose arrays have other dtypes and shapes, are missing, or are joined by others."""
    arrays = data.draw(edited(_arrays(seeds[seed]), values=_small_arrays))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / seed
        written = {str(k): np.asarray(v) for k, v in arrays.items() if str(k)}
        write_npz(path, written)
        loaded = check_reader(NPZ_READERS[seed], path)
    if not isinstance(loaded, WildposeError):  # accepted: nothing was cast that cannot be cast without loss
        for key, kinds in {"keypoints_2d": "f", "track_ids": "iu", "track_lengths": "iu", "frame_index": "iu",
                           "interpolated": "b", "image_size": "iu"}.items():
            assert written[key].dtype.kind in kinds, f"{key} of dtype {written[key].dtype} was accepted"


def _object_members(data: bytes) -> dict[str, np.ndarray]:
    from wildpose.formats.safe_pickle import safe_load_npz

    with tempfile.TemporaryDirectory() as tmp:
        return safe_load_npz(_write(tmp, "x.npz", data))


def _as_array(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    arr = np.empty((), dtype=object)
    arr[()] = value
    return arr


@pytest.mark.parametrize("seed", ["detectron.npz", "custom.npz"])
@settings(PROFILE, max_examples=SCALE * 80)
@given(data=st.data())
def test_reference_npz_with_other_content(seeds, seed, data):
    """The reference's pickled files with their nested lists, dicts and arrays replaced, dropped or added to."""
    members = data.draw(edited(_object_members(seeds[seed])))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / seed
        write_npz(path, {str(k): _as_array(v) for k, v in members.items() if str(k)}, allow_object=True)
        check_reader(NPZ_READERS[seed], path)


# ------------------------------------------------------------------------------------------- the lifter
def _lifter_pair(tmp: str, weights: bytes, config: bytes) -> Path:
    _write(tmp, "lifter.safetensors", weights)
    _write(tmp, "lifter.json", config)
    return Path(tmp) / "lifter.safetensors"


def _with_sha(config_text: bytes, weights: bytes) -> bytes:
    import hashlib

    config = json.loads(config_text)
    config["sha256"] = hashlib.sha256(weights).hexdigest()
    return json.dumps(config).encode()


def _check_lifter(path: Path):
    return check_reader(load_lifter, path, path, path.with_suffix(".json"))


@settings(PROFILE, max_examples=SCALE * 60)
@given(data=st.data(), fix_sha=st.booleans())
def test_lifter_damaged_weights(seeds, data, fix_sha):
    """Damaged safetensors: refused by the checksum, or (checksum made to match) by the safetensors parser or the
    tensor checks."""
    weights = data.draw(damaged(seeds["lifter.safetensors"]))
    config = _with_sha(seeds["lifter.json"], weights) if fix_sha else seeds["lifter.json"]
    with tempfile.TemporaryDirectory() as tmp:
        _check_lifter(_lifter_pair(tmp, weights, config))


def _safetensors_header(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**80, 2**80), st.sampled_from([10**400, -10**400]),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)


@settings(PROFILE, max_examples=SCALE * 60)
@given(data=st.data())
def test_lifter_safetensors_header_content(seeds, data):
    """A safetensors header (JSON) whose dtypes, shapes and offsets say something else, checksum matching."""
    header, body = _safetensors_header(seeds["lifter.safetensors"])
    header = data.draw(edited(header, values=_json_values))
    text = json.dumps(header).encode()
    weights = struct.pack("<Q", len(text)) + text + body
    with tempfile.TemporaryDirectory() as tmp:
        _check_lifter(_lifter_pair(tmp, weights, _with_sha(seeds["lifter.json"], weights)))


@settings(PROFILE, max_examples=SCALE * 80)
@given(data=st.data())
def test_lifter_config_content(seeds, data):
    """A config whose values are replaced by any JSON (numbers too large for a float included) or damaged text."""
    if data.draw(st.booleans()):
        config = data.draw(edited(json.loads(seeds["lifter.json"]), values=_json_values))
        text = json.dumps(config).encode()
    else:
        text = data.draw(damaged(seeds["lifter.json"]))
    with tempfile.TemporaryDirectory() as tmp:
        _check_lifter(_lifter_pair(tmp, seeds["lifter.safetensors"], text))


@pytest.mark.parametrize("change", [
    {"fps": 10**400}, {"bn_eps": -10**400}, {"channels": 10**400}, {"filter_widths": [10**400 + 1]},
    {"fps": float("nan")}, {"fps": float("inf")}, {"members": 10**6}, {"in_joints": 10**9},
])
def test_lifter_config_numbers_out_of_range(seeds, change, tmp_path):
    """Numbers JSON can hold but a float cannot, NaN and infinity (Python's json reads them), absurd sizes."""
    config = {**json.loads(seeds["lifter.json"]), **change}
    path = _lifter_pair(str(tmp_path), seeds["lifter.safetensors"], json.dumps(config).encode())
    assert isinstance(_check_lifter(path), WildposeError)


def test_lifter_with_a_receptive_field_of_days_is_refused(tmp_path):
    """A small, well-formed lifter file whose config asks for 3**11 frames of context: lifting would pad every
    track by as many frames (gigabytes for a file of kilobytes). Refused when loaded, naming the config."""
    import hashlib

    from safetensors.numpy import save_file

    config = {**LIFTER_CONFIG, "filter_widths": [3] * 11, "channels": 2, "format": "wildpose-lifter", "version": 1}
    rng = np.random.default_rng(3)
    tensors = {name: rng.uniform(0.5, 1.0, shape).astype(np.float32)
               for name, shape in expected_shapes({**config, "members": 1}).items()}
    save_file(tensors, str(tmp_path / "deep.safetensors"))
    config["sha256"] = hashlib.sha256((tmp_path / "deep.safetensors").read_bytes()).hexdigest()
    (tmp_path / "deep.json").write_text(json.dumps(config))
    error = _check_lifter(tmp_path / "deep.safetensors")
    assert isinstance(error, WildposeError) and "receptive field" in str(error)


@pytest.mark.parametrize("text", [
    b'{"format": "wildpose-lifter", "fps": ' + b"1" * 5000 + b"}",  # past Python's 4300-digit limit for int()
    b"[" * 100000 + b"]" * 100000,  # deeper than the JSON decoder's recursion
    b'{"format": "wildpose-lifter"' + b', "a": {' * 50000 + b"}" * 50000 + b"}",
    b"\xff\xfe{}", b"", b"null", b"[]", b'"wildpose-lifter"',
])
def test_lifter_config_hostile_json(seeds, text, tmp_path):
    path = _lifter_pair(str(tmp_path), seeds["lifter.safetensors"], text)
    assert isinstance(_check_lifter(path), WildposeError)


def test_every_reader_given_every_other_file(seeds, tmp_path):
    """A user passes the wrong file: each reader refuses the others' files with its own error."""
    readers = {**NPZ_READERS, "export.npy": load_vp3d_export,
               "lifter.safetensors": lambda p: load_lifter(p.with_name("the_lifter.safetensors")),
               **({"checkpoint.bin": _convert} if torch is not None else {})}
    for reader_seed, reader in readers.items():
        for name, data in seeds.items():
            if name == reader_seed or {name, reader_seed} <= {"poses.npz", "poses_stored.npz"}:
                continue
            folder = tmp_path / f"{reader_seed}-{name}"
            folder.mkdir()
            path = _write(str(folder), name, data)
            if reader_seed == "lifter.safetensors":  # the other file as the weights, and as the config
                _write(str(folder), "the_lifter.safetensors", data)
                _write(str(folder), "the_lifter.json", seeds["lifter.json"])
                check_reader(reader, path, folder / "the_lifter.safetensors", folder / "the_lifter.json")
                error = None
                if name != "lifter.json":
                    _write(str(folder), "the_lifter.safetensors", seeds["lifter.safetensors"])
                    _write(str(folder), "the_lifter.json", data)
                    error = check_reader(reader, path, folder / "the_lifter.safetensors", folder / "the_lifter.json")
                    assert isinstance(error, WildposeError), f"the lifter's config reader accepted {name}"
            else:
                error = check_reader(reader, path)
            # a poses.npz holds everything a 2D file holds: load_tracks reads it, as the CLI relies on; torch
            # reads safetensors files, and our lifter's tensors are a reference-named state dict
            accepted = {("keypoints.npz", "poses.npz"), ("keypoints.npz", "poses_stored.npz"),
                        ("checkpoint.bin", "lifter.safetensors"), ("checkpoint.bin", "legacy.bin")}
            if error is not None and (reader_seed, name) not in accepted:
                assert isinstance(error, WildposeError), f"{reader_seed}'s reader accepted {name}"


# ------------------------------------------------------------------------------------------- checkpoints
def _convert(path: Path):
    from wildpose.lift.convert import convert_checkpoint

    return convert_checkpoint(path, path.with_name("converted"))


@needs_torch
@pytest.mark.parametrize("seed", ["checkpoint.bin", "legacy.bin"])
@settings(PROFILE, max_examples=SCALE * 60)
@given(data=st.data())
def test_checkpoint_damaged(seeds, seed, data):
    raw = seeds[seed]
    damage = damaged_member(raw) if seed == "checkpoint.bin" and data.draw(st.booleans()) else damaged(raw)
    with tempfile.TemporaryDirectory() as tmp:
        check_reader(_convert, _write(tmp, seed, data.draw(damage)))


def _tensors_and_plain():
    """What a weights_only checkpoint may hold: tensors of any dtype and shape, numbers, strings, containers."""
    tensors = _small_arrays.filter(lambda a: a.dtype.kind in "biuf" and a.dtype.byteorder in "=|<").map(
        lambda a: torch.from_numpy(np.ascontiguousarray(a.astype(a.dtype.newbyteorder("=")))))
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**62, 2**62), st.floats(), st.text(max_size=8), tensors)
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner,
                                                     max_size=3)), max_leaves=6)


@needs_torch
@settings(PROFILE, max_examples=SCALE * 60)
@given(data=st.data())
def test_checkpoint_with_other_content(seeds, data):
    """Loadable checkpoints holding something else: tensors of other dtypes/shapes, keys that are not strings,
    lists where dicts belong."""
    checkpoint = torch.load(io.BytesIO(seeds["checkpoint.bin"]), weights_only=True)
    checkpoint = data.draw(edited(checkpoint, values=_tensors_and_plain()))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.bin"
        torch.save(checkpoint, path)
        check_reader(_convert, path)


# ------------------------------------------------------------------------------------------- hostile files
class _CreatesFile:
    """A pickle that, when loaded by an unrestricted unpickler, opens (creates) ``path`` for writing."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _hostile_npz(path: Path, marker: Path, key: str, others: dict) -> Path:
    payload = np.empty((), dtype=object)
    payload[()] = _CreatesFile(marker)
    np.savez(path, **{**others, key: payload})  # numpy's own pickler, as an attacker would write it
    return path


def _proves_live(path: Path, marker: Path, load) -> None:
    """The payload really runs code when loaded the unsafe way (so the test can fail)."""
    with contextlib.suppress(Exception):
        load(path)
    assert marker.exists(), "the hostile payload did not create its marker even when loaded unsafely"
    marker.unlink()


@pytest.mark.parametrize("seed, key", [
    ("poses.npz", "keypoints_2d"), ("poses.npz", "an_extra"), ("keypoints.npz", "timestamps"),
    ("detectron.npz", "boxes"), ("detectron.npz", "metadata"), ("custom.npz", "positions_2d"),
])
def test_hostile_pickle_in_npz_runs_nothing(seeds, seed, key, tmp_path):
    marker = tmp_path / "executed"
    others = _object_members(seeds[seed])
    path = _hostile_npz(tmp_path / seed, marker, key, {k: v for k, v in others.items() if k != key})

    def unsafe(p):
        with np.load(p, allow_pickle=True) as npz:
            npz[key].item()

    _proves_live(path, marker, unsafe)
    error = check_reader(NPZ_READERS[seed], path)
    assert isinstance(error, WildposeError), "a pickled member was accepted"
    assert not marker.exists(), "reading the file ran its pickle"


def test_hostile_pickle_in_npy_runs_nothing(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "export.npy"
    payload = np.empty((2,), dtype=object)
    payload[0] = _CreatesFile(marker)
    np.save(path, payload, allow_pickle=True)
    _proves_live(path, marker, lambda p: np.load(p, allow_pickle=True))
    assert isinstance(check_reader(load_vp3d_export, path), WildposeError)
    assert not marker.exists()
    # the same pickle as a member of an npz given to every npz reader
    npz = tmp_path / "poses.npz"
    with zipfile.ZipFile(npz, "w") as zf:
        zf.writestr("keypoints_2d.npy", path.read_bytes())
        zf.writestr("boxes.npy", path.read_bytes())
    for reader in set(NPZ_READERS.values()):
        assert isinstance(check_reader(reader, npz), WildposeError)
        assert not marker.exists()


@needs_torch
def test_hostile_checkpoint_runs_nothing(seeds, tmp_path):
    marker = tmp_path / "executed"
    state = torch.load(io.BytesIO(seeds["checkpoint.bin"]), weights_only=True)
    for i, (where, write) in enumerate([
        ("model_pos", lambda p: torch.save({**state, "model_pos": _CreatesFile(marker)}, p)),
        ("a tensor's place", lambda p: torch.save({"model_pos": {**state["model_pos"],
                                                                 "shrink.bias": _CreatesFile(marker)}}, p)),
        ("the top level", lambda p: torch.save(_CreatesFile(marker), p)),
        ("a legacy file", lambda p: torch.save({"model_pos": _CreatesFile(marker)}, p,
                                               _use_new_zipfile_serialization=False)),
    ]):
        path = tmp_path / f"evil{i}.bin"
        write(path)
        assert not marker.exists()
        _proves_live(path, marker, lambda p: torch.load(p, weights_only=False))
        error = check_reader(_convert, path)
        assert isinstance(error, WildposeError), f"a checkpoint with code in {where} was accepted"
        assert not marker.exists(), f"converting a checkpoint with code in {where} ran it"
    assert not list(tmp_path.glob("converted*"))


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_archive_members_cannot_write_outside(seeds, tmp_path, monkeypatch):
    """Zip members named ``../x``, ``a/../../x`` or by an absolute path: the readers read members in memory;
    nothing is written anywhere, inside or outside the folder."""
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    outside = tmp_path / "outside.npy"
    npy = io.BytesIO()
    np.save(npy, np.zeros((2, 17, 3), np.float32))
    names = ["../escaped.npy", "../../escaped2.npy", "a/../../escaped3.npy", str(outside), "/escaped4.npy",
             "..\\escaped5.npy"]
    for seed, reader in {**NPZ_READERS, "checkpoint.bin": _convert}.items():
        if seed not in seeds:
            continue
        members = _members(seeds[seed]) + [(name, npy.getvalue()) for name in names]
        path = work / f"traversal_{seed}"
        path.write_bytes(_zip(members))
        before = _listing(tmp_path)
        check_reader(reader, path)
        created = _listing(tmp_path) - before - {"deep/work/converted.safetensors", "deep/work/converted.json"}
        assert not created, f"{seed}: reading wrote {created}"
        assert not outside.exists() and not Path("/escaped4.npy").exists()
    assert not list(work.parent.parent.glob("escaped*"))


def _huge_header(payload: bytes) -> bytes:
    """An .npy (version 1) whose header claims 10**13 times the first dimension."""
    import re

    end = payload.index(b"\n") + 1
    head = re.sub(rb"'shape': \((\d+)", rb"'shape': (10000000000000", payload[10:end])
    return payload[:8] + struct.pack("<H", len(head)) + head + payload[end:]


@pytest.mark.parametrize("seed", ["poses.npz", "poses_stored.npz", "keypoints.npz", "detectron.npz", "export.npy"])
def test_header_claiming_huge_arrays(seeds, seed, tmp_path):
    """A .npy header that claims an array of petabytes: refused with the reader's error, not a MemoryError."""
    if seed == "export.npy":
        path = _write(str(tmp_path), seed, _huge_header(seeds[seed]))
        assert isinstance(check_reader(load_vp3d_export, path), WildposeError)
        return
    members = [(name, _huge_header(payload) if payload.startswith(b"\x93NUMPY") else payload)
               for name, payload in _members(seeds[seed])]
    path = _write(str(tmp_path), seed, _zip(members))
    assert isinstance(check_reader(NPZ_READERS[seed], path), WildposeError)
