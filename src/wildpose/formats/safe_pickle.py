"""Read (and write) the pickled object arrays inside the reference's ``.npz`` files without running code.

The reference (VideoPose3D) stores ragged data as NumPy object arrays, which ``np.save`` pickles. Loading
a pickle can call any importable function, so ``np.load(allow_pickle=True)`` on a file from elsewhere is
arbitrary code execution. This module reads those files with :class:`RestrictedUnpickler`, which resolves
only the handful of names a pickled array needs, and even those are replaced by inert stand-ins:

- NumPy's own unpickling (``ndarray.__setstate__`` after ``dtype.__setstate__``) is itself unsafe: the
  pickled dtype state carries the dtype's flags, and a pickle that clears the "object" flag of an object
  dtype makes NumPy build an object array from raw bytes, i.e. from attacker-chosen pointers. So no NumPy
  object is ever built from pickled state here: the stand-ins record what the pickle says, and we build
  the arrays ourselves (object arrays only from lists, other dtypes only by copying bytes).
- ``numpy.ndarray`` itself is never handed to the pickle as a callable (``ndarray(shape, object,
  buffer=...)`` is the same hole); it only marks the first argument of ``_reconstruct``.

`write_npz(..., allow_object=True)` writes object arrays with our own small pickle encoder, naming
``numpy.core.multiarray._reconstruct`` (readable by NumPy 1.x and 2.x alike; NumPy 2's own pickles name
``numpy._core``, which NumPy 1.x cannot import).
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from numpy.lib import format as npformat

from ..atomic import atomic_path
from ..errors import FormatError

log = logging.getLogger(__name__)

__all__ = ["RefusedGlobal", "RestrictedUnpickler", "safe_unpickle", "safe_load_npz", "pickle_array",
           "write_npz"]

# the .npy header limit NumPy itself uses; the reference's headers are under 200 bytes
_MAX_HEADER_SIZE = 10000
# dtype kinds a pickled array may have: booleans, numbers, strings and objects (no structured/void, no
# datetimes: the reference never writes them, and structured dtypes are where object fields can hide)
_PLAIN_KINDS = "biufcSUO"


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name
        super().__init__(f"refused pickled global {module}.{name}")


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` in a pickle: accepted only as ``_reconstruct``'s first argument."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        # ndarray(shape, dtype, buffer) would turn pickled bytes into object pointers
        raise pickle.UnpicklingError("refused call of numpy.ndarray")


_NDARRAY = _NdarrayMarker()


class _DtypeSpec:
    """What a pickled ``numpy.dtype(obj, align, copy)`` plus its ``__setstate__`` said; resolved by us."""

    __slots__ = ("obj", "state")

    def __init__(self, obj: Any):
        self.obj = obj
        self.state = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def resolve(self) -> np.dtype:
        obj = self.obj
        if isinstance(obj, bytes):
            obj = obj.decode("latin1")
        if not isinstance(obj, str) or not obj or len(obj) > 16:
            raise pickle.UnpicklingError(f"pickled dtype {obj!r} is not a plain type code")
        try:
            dtype = np.dtype(obj)
        except TypeError as exc:
            raise pickle.UnpicklingError(f"pickled dtype {obj!r}: {exc}") from None
        if dtype.kind not in _PLAIN_KINDS or dtype.names is not None or dtype.subdtype is not None:
            raise pickle.UnpicklingError(f"refused pickled dtype {dtype} (only plain numbers, strings, objects)")
        state = self.state
        if state is None:
            return dtype
        if not isinstance(state, tuple) or len(state) not in (8, 9):
            raise pickle.UnpicklingError("pickled dtype state is malformed")
        endian, subarray, names, fields, elsize = state[1:6]
        if subarray is not None or names is not None or fields is not None:
            raise pickle.UnpicklingError("refused structured/sub-array dtype in pickle")
        if not isinstance(elsize, int):
            raise pickle.UnpicklingError("pickled dtype state is malformed")
        if dtype.kind in "SU" and elsize > 0:
            # flexible types carry their size in the state (older pickles give only the kind in obj)
            dtype = np.dtype(f"{dtype.kind}{elsize // (4 if dtype.kind == 'U' else 1)}")
        elif elsize not in (-1, dtype.itemsize):
            raise pickle.UnpicklingError(f"pickled dtype {dtype} claims item size {elsize}")
        if isinstance(endian, bytes):
            endian = endian.decode("latin1")
        if endian not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"pickled dtype byte order {endian!r} is malformed")
        if endian in "<>" and dtype.byteorder != "|":
            dtype = dtype.newbyteorder(endian)
        # state[6:] (alignment, flags, metadata) is deliberately ignored: flags are what the attack forges
        return dtype


def _as_dtype(value: Any) -> np.dtype:
    if not isinstance(value, _DtypeSpec):
        raise pickle.UnpicklingError(f"expected a pickled dtype, got {type(value).__name__}")
    return value.resolve()


def _as_shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > 32 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value):
        raise pickle.UnpicklingError(f"pickled array shape {value!r} is malformed")
    return value


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):  # Python 2 pickles, decoded with encoding="latin1"
        return value.encode("latin1")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise pickle.UnpicklingError(f"pickled array data is {type(value).__name__}, expected bytes")


def _array_from(dtype: np.dtype, shape: tuple[int, ...], fortran: bool, data: Any) -> np.ndarray:
    """Build an array from validated parts: object arrays from a list, others by copying bytes."""
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    order = "F" if fortran else "C"
    if dtype.hasobject:
        if not isinstance(data, list):
            raise pickle.UnpicklingError("object array data must be a list (refused raw bytes for objects)")
        if len(data) != count:
            raise pickle.UnpicklingError(f"object array of shape {shape} pickled with {len(data)} items")
        flat = np.empty(count, dtype=object)
        for i, item in enumerate(data):
            flat[i] = item  # one object per cell, never broadcast a list
        return flat.reshape(shape, order=order)
    raw = _as_bytes(data)
    if len(raw) != count * dtype.itemsize:
        raise pickle.UnpicklingError(f"array {dtype} {shape} pickled with {len(raw)} bytes")
    if count == 0 or dtype.itemsize == 0:
        return np.zeros(shape, dtype=dtype, order=order)
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape, order=order).copy()


class _ArraySpec:
    """Result of ``_reconstruct(ndarray, ...)``: becomes an array when the pickle's BUILD gives its state."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise pickle.UnpicklingError("pickled array given a state twice")
        if not isinstance(state, tuple):
            raise pickle.UnpicklingError("pickled array state is malformed")
        if len(state) == 5:  # (version, shape, dtype, is_fortran, data)
            state = state[1:]
        if len(state) != 4:
            raise pickle.UnpicklingError("pickled array state is malformed")
        shape, dtype, fortran, data = state
        self.array = _array_from(_as_dtype(dtype), _as_shape(shape), bool(fortran), data)


class _Value:
    """A finished value (NumPy scalar, array from a buffer) that the pickle may not modify further."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("refused state for a finished value")


def _reconstruct(subtype: Any, shape: Any = None, typecode: Any = None) -> _ArraySpec:
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("refused _reconstruct of anything but numpy.ndarray")
    return _ArraySpec()


def _dtype(obj: Any, align: Any = False, copy: Any = False) -> _DtypeSpec:
    return _DtypeSpec(obj)


def _scalar(dtype: Any, data: Any = None) -> _Value:
    dt = _as_dtype(dtype)
    if dt.hasobject:
        return _Value(data)  # what NumPy does: an object "scalar" is the object itself
    raw = _as_bytes(data)
    if len(raw) != dt.itemsize:
        raise pickle.UnpicklingError(f"scalar {dt} pickled with {len(raw)} bytes")
    return _Value(np.frombuffer(raw, dtype=dt, count=1)[0] if dt.itemsize else np.zeros((), dt)[()])


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any = "C") -> _Value:
    """Protocol-5 pickles of plain arrays."""
    dt = _as_dtype(dtype)
    if dt.hasobject:
        raise pickle.UnpicklingError("refused object array from a buffer")
    if isinstance(buffer, pickle.PickleBuffer):
        buffer = buffer.raw().tobytes()
    return _Value(_array_from(dt, _as_shape(shape), order == "F", buffer))


def _codecs_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    """Protocol-2 pickles of ``bytes`` from Python 3 write ``_codecs.encode(text, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError("refused _codecs.encode other than latin1")
    return text.encode("latin1")


_BUILTINS = {"list": list, "dict": dict, "tuple": tuple, "set": set, "frozenset": frozenset,
             "bytes": bytes, "complex": complex}

# (module, name) -> what the pickle gets. Both NumPy 1.x ("numpy.core") and 2.x ("numpy._core") spellings,
# and Python 2 module names ("__builtin__"), since the C unpickler hands find_class the raw names.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    **{(mod, "_reconstruct"): _reconstruct for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "scalar"): _scalar for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "_frombuffer"): _frombuffer for mod in ("numpy.core.numeric", "numpy._core.numeric")},
    ("_codecs", "encode"): _codecs_encode,
    **{(mod, name): obj for mod in ("builtins", "__builtin__") for name, obj in _BUILTINS.items()},
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the names plain NumPy arrays and Python containers need.

    Every other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ``functools.partial``,
    ``builtins.getattr``, ...) raises :class:`RefusedGlobal` before anything is called. The names that are
    allowed map to inert stand-ins; call :func:`safe_unpickle` rather than ``load()`` to get real arrays.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise RefusedGlobal(str(module), str(name)) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused persistent id")


def _finish(obj: Any, memo: dict[int, Any], depth: int = 0) -> Any:
    """Replace the stand-ins in an unpickled graph by real arrays/values; refuse anything unexpected."""
    if depth > 200:
        raise pickle.UnpicklingError("pickled data nested too deeply")
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, np.generic)):
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, _ArraySpec):
        if obj.array is None:
            raise pickle.UnpicklingError("pickled array has no state")
        arr = obj.array
        if not arr.dtype.hasobject:
            memo[key] = arr
            return arr
        done = np.empty(arr.shape, dtype=object, order="F" if arr.flags.f_contiguous else "C")
        memo[key] = done  # before the items: an array may (directly or not) contain itself
        for index in np.ndindex(arr.shape):
            done[index] = _finish(arr[index], memo, depth + 1)  # a full index assigns one object, never broadcasts
        return done
    if isinstance(obj, _Value):
        memo[key] = obj.value
        return obj.value
    if isinstance(obj, _DtypeSpec):
        memo[key] = obj.resolve()
        return memo[key]
    if type(obj) is list:
        out: list = []
        memo[key] = out
        out.extend(_finish(x, memo, depth + 1) for x in obj)
        return out
    if type(obj) is dict:
        out_d: dict = {}
        memo[key] = out_d
        for k, v in obj.items():
            out_d[_finish(k, memo, depth + 1)] = _finish(v, memo, depth + 1)
        return out_d
    if type(obj) is tuple:
        memo[key] = tuple(_finish(x, memo, depth + 1) for x in obj)
        return memo[key]
    if type(obj) in (set, frozenset):
        memo[key] = type(obj)(_finish(x, memo, depth + 1) for x in obj)
        return memo[key]
    raise pickle.UnpicklingError(f"refused pickled value of type {type(obj).__name__}")


def safe_unpickle(fp: io.BufferedIOBase | Any) -> Any:
    """Unpickle one object from ``fp`` with :class:`RestrictedUnpickler` and build real arrays.

    Returns plain Python containers (list, dict, tuple, set), numbers, strings, bytes and NumPy arrays
    (object arrays only holding those). Raises :class:`RefusedGlobal` or ``pickle.UnpicklingError`` (and,
    for truncated data, whatever the unpickler raises) on anything else.
    """
    # latin1: Python 2 pickles (Detectron ran on Python 2.7) store array bytes as str
    raw = RestrictedUnpickler(fp, encoding="latin1").load()
    return _finish(raw, {})


def _read_header(fp) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = npformat.read_magic(fp)
    if version == (1, 0):
        return npformat.read_array_header_1_0(fp, max_header_size=_MAX_HEADER_SIZE)
    if version == (2, 0):
        return npformat.read_array_header_2_0(fp, max_header_size=_MAX_HEADER_SIZE)
    # 3.0 (utf8 field names) has no public reader; it only differs from 2.0 in the header's encoding
    reader = getattr(npformat, "_read_array_header", None)
    if version == (3, 0) and reader is not None:
        return reader(fp, version, max_header_size=_MAX_HEADER_SIZE)
    raise ValueError(f"unsupported .npy format version {version}")


def safe_load_npz(path: str | os.PathLike) -> dict[str, Any]:
    """Load every array of an ``.npz``, unpickling object arrays with the restricted unpickler.

    Parameters
    ----------
    path
        An ``.npz`` file (a zip of ``.npy`` members), e.g. the reference's Detectron output or
        ``data_2d_custom_NAME.npz``.

    Returns
    -------
    dict
        Member name (without ``.npy``) -> ``np.ndarray``. Object arrays hold only lists, dicts, tuples,
        sets, numbers, strings, ``None`` and further arrays. Members not ending in ``.npy`` are skipped.

    Raises
    ------
    FormatError
        The file is missing, not a zip, truncated, a member is malformed, or a pickle names anything
        outside the allow-list ("refused pickled global os.system"); nothing from the file is ever called.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError("no such file" if not path.exists() else "not a file", path)
    out: dict[str, Any] = {}
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise FormatError("not an .npz file (not a zip archive)", path) from None
    except OSError as exc:
        raise FormatError(f"cannot read ({exc})", path) from None
    with zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                log.debug("%s: skipping member %s (not .npy)", path, info.filename)
                continue
            key = info.filename[:-4]
            try:
                out[key] = _load_member(zf, info)
            except RefusedGlobal as exc:
                raise FormatError(f"{exc} in {key!r} (nothing was run)", path) from None
            except FormatError:
                raise
            # a hostile or damaged member can make zipfile, zlib, the header parser or the unpickler raise
            # almost anything; all of them mean "this file is unreadable"
            except Exception as exc:  # noqa: BLE001
                raise FormatError(f"member {key!r} is unreadable ({type(exc).__name__}: {exc})", path) from None
    return out


def _load_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with zf.open(info) as fp:
        shape, fortran, dtype = _read_header(fp)
        if not dtype.hasobject:
            fp.close()
            with zf.open(info) as fp2:
                return npformat.read_array(fp2, allow_pickle=False, max_header_size=_MAX_HEADER_SIZE)
        value = safe_unpickle(fp)
    if not isinstance(value, np.ndarray) or value.shape != tuple(shape) or not value.dtype.hasobject:
        got = f"{type(value).__name__} {getattr(value, 'shape', '')}".strip()
        raise pickle.UnpicklingError(f"header says object array {tuple(shape)}, pickle holds {got}")
    return value


# --- writing ---------------------------------------------------------------------------------------------

def _encode(obj: Any, out: list[bytes]) -> None:
    """Append a protocol-3 pickle of ``obj`` (no memo: the data is a tree) to ``out``."""
    if obj is None:
        out.append(b"N")
    elif obj is True or obj is False:
        out.append(b"\x88" if obj else b"\x89")
    elif isinstance(obj, np.generic) and not isinstance(obj, np.void):
        _encode(obj.item(), out)
    elif isinstance(obj, int):
        if -(2 ** 31) <= obj < 2 ** 31:
            out.append(b"J" + struct.pack("<i", obj))
        else:
            raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
            out.append(b"\x8a" + struct.pack("<B", len(raw)) + raw)
    elif isinstance(obj, float):
        out.append(b"G" + struct.pack(">d", obj))
    elif isinstance(obj, str):
        raw = obj.encode("utf-8", "surrogatepass")
        out.append(b"X" + struct.pack("<I", len(raw)) + raw)
    elif isinstance(obj, bytes):
        out.append(b"B" + struct.pack("<I", len(obj)) + obj)
    elif isinstance(obj, tuple):
        out.append(b"(")
        for x in obj:
            _encode(x, out)
        out.append(b"t")
    elif isinstance(obj, list):
        out.append(b"](")
        for x in obj:
            _encode(x, out)
        out.append(b"e")
    elif isinstance(obj, dict):
        out.append(b"}(")
        for k, v in obj.items():
            _encode(k, out)
            _encode(v, out)
        out.append(b"u")
    elif isinstance(obj, np.dtype):
        if obj.kind not in _PLAIN_KINDS or obj.names is not None or obj.subdtype is not None:
            raise TypeError(f"cannot write dtype {obj}")
        _, args, state = obj.__reduce__()
        out.append(b"cnumpy\ndtype\n")
        _encode(args, out)
        out.append(b"R")
        _encode(state, out)
        out.append(b"b")
    elif isinstance(obj, np.ndarray):
        if type(obj) is not np.ndarray:
            obj = np.asarray(obj)
        if obj.dtype.kind not in _PLAIN_KINDS or obj.dtype.names is not None:
            raise TypeError(f"cannot write array of dtype {obj.dtype}")
        fortran = obj.flags.f_contiguous and not obj.flags.c_contiguous
        order = "F" if fortran else "C"
        data = obj.ravel(order=order).tolist() if obj.dtype.hasobject else obj.tobytes(order=order)
        # NumPy 1.x's module name: NumPy 2 still resolves it, while NumPy 1.x cannot import numpy._core
        out.append(b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n")
        _encode((0,), out)
        _encode(b"b", out)
        out.append(b"tR")
        _encode((1, tuple(int(n) for n in obj.shape), obj.dtype, bool(fortran), data), out)
        out.append(b"b")
    else:
        raise TypeError(f"cannot write {type(obj).__name__} into a reference file")


def pickle_array(array: np.ndarray) -> bytes:
    """Pickle an array (object arrays may hold lists, dicts, tuples, numbers, strings, None and arrays).

    The bytes are what ``np.save`` would write after the header, except that globals are spelled the
    NumPy 1.x way (``numpy.core.multiarray._reconstruct``) so that both NumPy generations can load them.
    """
    out = [b"\x80\x03"]
    _encode(np.asarray(array), out)
    out.append(b".")
    return b"".join(out)


def write_npz(path: str | os.PathLike, arrays: Mapping[str, Any], compress: bool = True,
              allow_object: bool = False) -> None:
    """Write ``arrays`` as an ``.npz`` atomically (what ``np.savez[_compressed]`` writes).

    Parameters
    ----------
    path
        Output file; written under a temporary name and renamed when complete. Any extension.
    arrays
        Member name -> array. Object arrays must be built by the caller (ragged lists do not convert).
    compress
        Deflate the members, as ``np.savez_compressed`` does.
    allow_object
        Pickle object arrays with :func:`pickle_array` (only for formats that require it, such as the
        reference's); otherwise an object array raises ``ValueError``.
    """
    prepared = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"array name {key!r} is not a non-empty string")
        arr = np.asanyarray(value)
        if arr.dtype.hasobject and not allow_object:
            raise ValueError(f"{key!r} is an object array; refusing to pickle it")
        prepared[key] = arr
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=compression, allowZip64=True) as zf:
            for key, arr in prepared.items():
                with zf.open(f"{key}.npy", "w", force_zip64=True) as fp:
                    if arr.dtype.hasobject:
                        npformat.write_array_header_1_0(fp, npformat.header_data_from_array_1_0(arr))
                        fp.write(pickle_array(arr))
                    else:
                        npformat.write_array(fp, arr, allow_pickle=False)
