"""The temporal convolutional lifter (Pavllo et al., CVPR 2019) as plain numpy inference.

The network is a stack of 1D convolutions over time: an expanding convolution (J_in*2 -> C, width w0),
then one residual block per further width w_i (a dilated convolution of width w_i whose dilation is the
product of the earlier widths, then a 1x1 convolution; each followed by batch norm and ReLU), then a 1x1
"shrink" convolution to J_out*3. All convolutions are "valid" (no padding): the input is padded once, at
the ends of the whole track, so that every output frame sees a full receptive field.

At load, batch norm is folded into the convolution before it (the reference's convolutions have no bias):
``W' = W * g / sqrt(v + eps)`` and ``b' = beta - m * g / sqrt(v + eps)``. A convolution of width w and
dilation d becomes one matrix product over w time-shifted copies of the input stacked along channels:
``(T_out, w*C_in) @ (w*C_in, C_out)``, which is what BLAS is fastest at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from wildpose import skeleton

# how each output layout mirrors: H36M swaps left and right joints; a root trajectory has one joint
_OUTPUT_FLIPS = {("h36m", 17): skeleton.H36M_FLIP, ("root", 1): np.array([0])}

FORMAT_NAME = "wildpose-lifter"
FORMAT_VERSION = 1
NORMALISATIONS = ("screen", "focal", "crop")
DEFAULT_BN_EPS = 1e-5
# the reference's largest model sees 243 frames; 100,000 (about an hour at 30 fps) bounds what a config may ask
MAX_RECEPTIVE_FIELD = 100_000
# largest temporary (the stacked-taps matrix of one layer) per chunk: bounds memory on long tracks; chunks
# of 1,000-3,000 frames ran fastest on a 2-core EPYC (bigger ones fall out of cache, smaller ones repeat
# more of the field - 1 overlap)
_CHUNK_BYTES = 32 * 2**20


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a lifter config (the JSON next to the weights) and return a normalised copy.

    Raises
    ------
    ValueError
        naming the offending key, when a key is missing or has a wrong type or value.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"config: expected a JSON object, got {type(config).__name__}")
    cfg = dict(config)
    if cfg.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise ValueError(f"format: expected {FORMAT_NAME!r}, got {cfg.get('format')!r}")
    if cfg.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise ValueError(f"version: this wildpose reads version {FORMAT_VERSION}, got {cfg.get('version')!r}")
    cfg["format"], cfg["version"] = FORMAT_NAME, FORMAT_VERSION

    for key in ("filter_widths", "channels", "in_joints", "out_joints", "input_normalisation", "fps"):
        if key not in cfg:
            raise ValueError(f"{key}: missing from the config")

    widths = cfg["filter_widths"]
    if (not isinstance(widths, (list, tuple)) or not widths
            or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 and w % 2 == 1 for w in widths)):
        raise ValueError(f"filter_widths: expected a non-empty list of odd positive integers, got {widths!r}")
    cfg["filter_widths"] = [int(w) for w in widths]
    field = math.prod(cfg["filter_widths"])
    if field > MAX_RECEPTIVE_FIELD:  # the input is padded by the field: a tiny file could ask for terabytes
        raise ValueError(f"filter_widths: a receptive field of {_short(field)} frames, more than the "
                         f"{MAX_RECEPTIVE_FIELD} any lifter needs")
    for key in ("channels", "in_joints", "out_joints"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key}: expected a positive integer, got {value!r}")
    causal = cfg.get("causal", False)
    if not isinstance(causal, bool):
        raise ValueError(f"causal: expected true or false, got {causal!r}")
    cfg["causal"] = causal
    members = cfg.get("members", 1)
    if not isinstance(members, int) or isinstance(members, bool) or members < 1:
        raise ValueError(f"members: expected a positive integer (networks averaged), got {members!r}")
    cfg["members"] = members
    if cfg["input_normalisation"] not in NORMALISATIONS:
        raise ValueError(f"input_normalisation: expected one of {NORMALISATIONS}, got {cfg['input_normalisation']!r}")
    for key, default in (("fps", None), ("bn_eps", DEFAULT_BN_EPS)):
        value = cfg.get(key, default)
        # JSON integers have no size limit: one too large for a float is out of range, not an OverflowError
        number = float(value) if isinstance(value, float) or (isinstance(value, int) and abs(value) < 2**1000) \
            else math.nan
        if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
            raise ValueError(f"{key}: expected a positive number, got {_short(value)}")
        cfg[key] = number
    for key, default in (("in_layout", "coco"), ("out_layout", "h36m")):
        value = cfg.get(key, default)
        if not isinstance(value, str):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        cfg[key] = value
    return cfg


def _short(value: Any) -> str:
    """repr for an error message, cut short: a config value can be a number of thousands of digits."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def member_prefixes(config: Mapping[str, Any]) -> list[str]:
    """Tensor-name prefixes of the member networks: ``[""]`` for one network (the reference's naming),
    ``["members.0.", "members.1.", ...]`` for an ensemble."""
    n = int(config.get("members", 1))
    return [""] if n == 1 else [f"members.{i}." for i in range(n)]


def expected_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape for a (validated) config, in the reference's state-dict naming (each name
    behind its member's prefix in an ensemble, see :func:`member_prefixes`)."""
    one = _network_shapes(config)
    return {prefix + name: shape for prefix in member_prefixes(config) for name, shape in one.items()}


def _network_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    widths, c = config["filter_widths"], config["channels"]
    shapes: dict[str, tuple[int, ...]] = {"expand_conv.weight": (c, config["in_joints"] * 2, widths[0])}
    bn_names = ["expand_bn"]
    for i, w in enumerate(widths[1:]):
        shapes[f"layers_conv.{2 * i}.weight"] = (c, c, w)
        shapes[f"layers_conv.{2 * i + 1}.weight"] = (c, c, 1)
        bn_names += [f"layers_bn.{2 * i}", f"layers_bn.{2 * i + 1}"]
    for name in bn_names:
        for part in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{part}"] = (c,)
    shapes["shrink.weight"] = (config["out_joints"] * 3, c, 1)
    shapes["shrink.bias"] = (config["out_joints"] * 3,)
    return shapes


def check_tensors(config: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> None:
    """Raise ValueError if ``tensors`` lack a tensor, have an unknown one, or a shape differs from the config.

    ``*.num_batches_tracked`` (a training counter in torch state dicts) is ignored.
    """
    names = {k for k in tensors if not k.endswith(".num_batches_tracked")}
    one, members = _network_shapes(config), int(config.get("members", 1))
    if members * len(one) > len(names):
        # some are missing. A config may claim a million members: list the names of only as many networks as
        # the file could hold, plus one, and count the rest
        prefixes = [""] if members == 1 else [f"members.{i}." for i in range(min(members, len(names) // len(one) + 1))]
        missing = sorted({p + n for p in prefixes for n in one} - names)
        count = members * len(one) - sum(_is_member_tensor(n, one, members) for n in names)
        raise ValueError(f"tensors missing for this config: {', '.join(missing[:6])}"
                         + (f" and {count - 6} more" if count > 6 else ""))
    shapes = expected_shapes(config)
    missing = sorted(set(shapes) - names)
    if missing:
        raise ValueError(f"tensors missing for this config: {', '.join(missing[:6])}"
                         + (f" and {len(missing) - 6} more" if len(missing) > 6 else ""))
    unknown = sorted(names - set(shapes))
    if unknown:
        raise ValueError(f"tensors not in this config (filter_widths {config['filter_widths']}): "
                         f"{', '.join(unknown[:6])}")
    for name, shape in shapes.items():
        got = tuple(np.shape(tensors[name]))
        if got != shape:
            raise ValueError(f"tensor {name}: shape {got} does not match the config, which needs {shape}")
        if not np.all(np.isfinite(tensors[name])):
            raise ValueError(f"tensor {name}: contains NaN or infinity")


def _is_member_tensor(name: str, one: Mapping[str, Any], members: int) -> bool:
    """Whether ``name`` is one of the tensors of a config of ``members`` networks with tensors ``one``."""
    if members == 1:
        return name in one
    head, _, rest = name.partition(".")
    index, _, rest = rest.partition(".")
    return head == "members" and index.isdigit() and int(index) < members and rest in one


class _Layer:
    """One convolution with batch norm folded in: taps stacked into one (w*C_in, C_out) matrix."""

    __slots__ = ("matrix", "bias", "width", "dilation", "relu")

    def __init__(self, weight: np.ndarray, bias: np.ndarray, dilation: int, relu: bool):
        c_out, c_in, width = weight.shape
        # row k*C_in + c of the matrix multiplies channel c of the input shifted by k*dilation frames
        self.matrix = np.ascontiguousarray(weight.transpose(2, 1, 0).reshape(width * c_in, c_out), np.float32)
        self.bias = np.ascontiguousarray(bias, np.float32)
        self.width, self.dilation, self.relu = width, dilation, relu

    @property
    def span(self) -> int:
        return (self.width - 1) * self.dilation

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, L, C_in) -> (B, L - span, C_out), float32."""
        b, length, c_in = x.shape
        out_len = length - self.span
        if self.width == 1:
            cols = x.reshape(b * length, c_in)
        else:
            cols = np.empty((b, out_len, self.width, c_in), np.float32)
            for k in range(self.width):
                cols[:, :, k, :] = x[:, k * self.dilation:k * self.dilation + out_len, :]
            cols = cols.reshape(b * out_len, self.width * c_in)
        out = cols @ self.matrix
        out += self.bias
        if self.relu:
            np.maximum(out, 0.0, out=out)
        return out.reshape(b, out_len, -1)


class _Network:
    """One member network, batch norm folded: the expanding layer, the residual blocks, the shrink layer."""

    def __init__(self, config: Mapping[str, Any], tensors: Mapping[str, np.ndarray], prefix: str = ""):
        eps, widths = config["bn_eps"], config["filter_widths"]
        t = {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}
        w, b = _fold(t["expand_conv.weight"], t, "expand_bn", eps)
        self.expand = _Layer(w, b, 1, relu=True)
        self.blocks: list[tuple[_Layer, _Layer]] = []
        dilation = widths[0]
        for i, width in enumerate(widths[1:]):
            w, b = _fold(t[f"layers_conv.{2 * i}.weight"], t, f"layers_bn.{2 * i}", eps)
            wide = _Layer(w, b, dilation, relu=True)
            w, b = _fold(t[f"layers_conv.{2 * i + 1}.weight"], t, f"layers_bn.{2 * i + 1}", eps)
            self.blocks.append((wide, _Layer(w, b, 1, relu=True)))
            dilation *= width
        self.shrink = _Layer(np.asarray(t["shrink.weight"], np.float64), np.asarray(t["shrink.bias"], np.float64),
                             1, relu=False)

    def layers(self) -> list[_Layer]:
        return [self.expand, *(layer for block in self.blocks for layer in block), self.shrink]

    def __call__(self, x: np.ndarray, causal: bool) -> np.ndarray:
        """(B, L, J_in*2) float32, already padded -> (B, L - field + 1, J_out*3)."""
        x = self.expand(x)
        for wide, pointwise in self.blocks:
            half = wide.span // 2
            # the skip path keeps the frames the block's output is aligned with: the centre of each
            # window, or (causal) its last frame, so no output depends on a later input
            skip = x[:, wide.span:] if causal else x[:, half:x.shape[1] - half]
            y = pointwise(wide(x))
            y += skip
            x = y
        return self.shrink(x)


def _fold(weight: np.ndarray, tensors: Mapping[str, np.ndarray], bn: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Fold eval-mode batch norm ``bn`` into a bias-free convolution ``weight`` (C_out, C_in, w); float64."""
    gamma = np.asarray(tensors[f"{bn}.weight"], np.float64)
    beta = np.asarray(tensors[f"{bn}.bias"], np.float64)
    mean = np.asarray(tensors[f"{bn}.running_mean"], np.float64)
    var = np.asarray(tensors[f"{bn}.running_var"], np.float64)
    scale = gamma / np.sqrt(var + eps)
    return np.asarray(weight, np.float64) * scale[:, None, None], beta - mean * scale


class TemporalModel:
    """The lifter, ready to run: 2D keypoint tracks (normalised) -> 3D poses (metres, root-relative).

    Parameters
    ----------
    config : mapping
        The model's JSON config (see docs/ARCHITECTURE.md, "The lifter's files"); validated here.
    tensors : mapping of str to ndarray
        Weights in the reference's state-dict naming, batch norm not folded (folded here, in float64).

    Raises
    ------
    ValueError
        if the config is invalid or the tensors do not match it.
    """

    def __init__(self, config: Mapping[str, Any], tensors: Mapping[str, np.ndarray]):
        self.config = validate_config(config)
        check_tensors(self.config, tensors)
        self._networks = [_Network(self.config, tensors, prefix) for prefix in member_prefixes(self.config)]

    # -- properties -------------------------------------------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        """Frames each output frame sees: the product of the filter widths."""
        return math.prod(self.config["filter_widths"])

    @property
    def causal(self) -> bool:
        return self.config["causal"]

    @property
    def fps(self) -> float:
        """Frame rate (frames/s) the model was trained at; lift() resamples to it."""
        return self.config["fps"]

    @property
    def input_normalisation(self) -> str:
        return self.config["input_normalisation"]

    @property
    def in_joints(self) -> int:
        return self.config["in_joints"]

    @property
    def out_joints(self) -> int:
        return self.config["out_joints"]

    @property
    def flops_per_frame(self) -> int:
        """Multiply-adds x 2 per output frame of one pass (no flip), ignoring the padding overhead."""
        return sum(2 * layer.matrix.size for layer in self._layers())

    @property
    def members(self) -> int:
        """Networks whose outputs are averaged (1 unless the file is an ensemble)."""
        return len(self._networks)

    def _layers(self) -> list[_Layer]:
        return [layer for net in self._networks for layer in net.layers()]

    def __repr__(self) -> str:
        cfg = self.config
        ens = f", members={self.members}" if self.members > 1 else ""
        return (f"TemporalModel(filter_widths={cfg['filter_widths']}, channels={cfg['channels']}, "
                f"causal={cfg['causal']}, fps={cfg['fps']:g}, input_normalisation={cfg['input_normalisation']!r}"
                f"{ens})")

    # -- inference --------------------------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network (the mean of the member networks) on already-padded input:
        (B, L, J_in*2) -> (B, L - field + 1, J_out*3), float32."""
        x = np.ascontiguousarray(x, np.float32)
        out = self._networks[0](x, self.causal)
        for net in self._networks[1:]:
            out += net(x, self.causal)
        if self.members > 1:
            out *= np.float32(1.0 / self.members)
        return out

    def default_chunk_frames(self, batch: int = 1) -> int:
        """Output frames per chunk: the largest temporary near 32 MiB, and at least 4 receptive fields."""
        per_frame = batch * 4 * max(max(self.config["filter_widths"]) * self.config["channels"],
                                    self.in_joints * 2 * self.config["filter_widths"][0])
        return max(256, 4 * self.receptive_field, _CHUNK_BYTES // per_frame)

    def predict(self, inputs: np.ndarray, flip: bool = False, chunk_frames: int | None = None) -> np.ndarray:
        """Lift a whole track: normalised 2D keypoints -> 3D poses, one output frame per input frame.

        The track is padded with its edge values, (field - 1) / 2 frames at each end (causal models:
        field - 1 at the start), and run in chunks of ``chunk_frames`` output frames that overlap by
        field - 1 input frames, which gives the same result as one pass with bounded memory.

        Parameters
        ----------
        inputs : ndarray, (T, J_in, 2)
            Keypoints in the model's input space (see ``input_normalisation`` and lift/normalize.py), T >= 1.
        flip : bool
            Test-time augmentation: also run on the mirror image (x negated, COCO left/right keypoints
            swapped), un-mirror that output (x negated, Human3.6M left/right joints swapped) and average.
            All normalisations ("screen", "focal", "crop") are centred on the image's middle column (or
            the person's root) and mirror-equivariant, so mirroring the image is exactly negating x.
            Needs in_layout "coco" and out_layout "h36m".
        chunk_frames : int, optional
            Output frames per chunk; default: see ``default_chunk_frames`` (about 100 MiB in all at most).

        Returns
        -------
        ndarray, (T, J_out, 3) float32
            Metres, camera axes (x right, y down, z forward; for "crop", the axes of each frame's virtual
            camera: ``normalize.crop_restore`` turns them back), relative to the root the model was
            trained for (its joint 0 is predicted too, close to 0).
        """
        x = np.asarray(inputs)
        if x.ndim != 3 or x.shape[1:] != (self.in_joints, 2) or x.shape[0] < 1:
            raise ValueError(f"inputs: expected shape (T >= 1, {self.in_joints}, 2), got {x.shape}")
        x = x.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise ValueError("inputs: contains NaN or infinity (fill gaps before lifting)")
        if chunk_frames is not None and chunk_frames < 1:
            raise ValueError(f"chunk_frames: expected a positive integer, got {chunk_frames}")
        if flip:
            out_flip = _OUTPUT_FLIPS.get((self.config["out_layout"], self.out_joints))
            if self.config["in_layout"] != "coco" or self.in_joints != 17 or out_flip is None:
                raise ValueError("flip: needs a model with 17 COCO keypoints in and 17 Human3.6M joints or the root "
                                 f"out, this one is {self.config['in_layout']} -> {self.config['out_layout']}")
            mirrored = x[:, skeleton.COCO_FLIP]
            mirrored[..., 0] *= -1.0
            batch = np.stack([x, mirrored])
        else:
            batch = x[None]

        n_frames, field = x.shape[0], self.receptive_field
        before = field - 1 if self.causal else (field - 1) // 2
        padded = np.pad(batch.reshape(batch.shape[0], n_frames, -1),
                        ((0, 0), (before, field - 1 - before), (0, 0)), mode="edge")
        chunk = chunk_frames or self.default_chunk_frames(batch.shape[0])
        out = np.empty((batch.shape[0], n_frames, self.out_joints * 3), np.float32)
        for start in range(0, n_frames, chunk):
            stop = min(start + chunk, n_frames)
            out[:, start:stop] = self.forward(padded[:, start:stop + field - 1])
        out = out.reshape(batch.shape[0], n_frames, self.out_joints, 3)
        if not flip:
            return out[0]
        unmirrored = out[1][:, out_flip]
        unmirrored[..., 0] *= -1.0
        return ((out[0] + unmirrored) * np.float32(0.5)).astype(np.float32)
