"""The lifter's inference side: numpy network vs an independent torch re-creation, model files, conversion,
flip/causal/chunking properties, temporal resampling in lift()."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from wildpose import skeleton
from wildpose.errors import FormatError, ModelError, WildposeError
from wildpose.lift import TemporalModel, lift, load_lifter, save_lifter
from wildpose.lift.model import expected_shapes
from wildpose.lift.weights import default_model_path

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # torch is the optional "train" extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed (pip install wildpose[train])")


# -- helpers ---------------------------------------------------------------------------------------------------
def make_config(widths, channels, causal=False, fps=50.0, normalisation="screen"):
    return {"filter_widths": list(widths), "channels": channels, "causal": causal, "in_joints": 17,
            "in_layout": "coco", "out_joints": 17, "out_layout": "h36m", "input_normalisation": normalisation,
            "fps": fps, "bn_eps": 1e-5, "provenance": {"note": "random weights for tests"}}


def random_tensors(config, seed=0):
    """Reference-named tensors with batch-norm statistics far from identity, so folding is exercised."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in expected_shapes(config).items():
        if name.endswith("running_var"):
            tensors[name] = rng.uniform(0.5, 2.0, shape)
        elif name.endswith("running_mean"):
            tensors[name] = rng.normal(0.0, 0.3, shape)
        elif "_bn" in name and name.endswith(".weight"):
            tensors[name] = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 3:
            tensors[name] = rng.normal(0.0, 1.0 / math.sqrt(shape[1] * shape[2]), shape)
        else:
            tensors[name] = rng.normal(0.0, 0.1, shape)
    return {k: v.astype(np.float32) for k, v in tensors.items()}


def random_track(n_frames, seed=1):
    """A smooth 2D track in the model's input space: (T, 17, 2)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)[:, None, None] / 50.0
    return (rng.normal(0, 0.3, (1, 17, 2)) + 0.2 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0, (1, 17, 2)) * t
                                                           + rng.uniform(0, 6, (1, 17, 2)))).astype(np.float32)


def torch_reference(tensors, widths, causal, inputs):
    """The network written from the paper's description with torch conv1d + eval-mode batch_norm, float64."""
    sd = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in tensors.items()}
    n_frames = inputs.shape[0]
    field = math.prod(widths)
    x = torch.from_numpy(inputs.astype(np.float64)).reshape(1, n_frames, -1).permute(0, 2, 1)
    left = field - 1 if causal else (field - 1) // 2
    x = F.pad(x, (left, field - 1 - left), mode="replicate")

    def bn(h, name):
        return F.batch_norm(h, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"],
                            sd[f"{name}.bias"], training=False, eps=1e-5)

    h = F.relu(bn(F.conv1d(x, sd["expand_conv.weight"]), "expand_bn"))
    dilation = widths[0]
    for i, width in enumerate(widths[1:]):
        pad = (width - 1) * dilation // 2
        residual = h[:, :, 2 * pad:] if causal else h[:, :, pad:h.shape[2] - pad]
        y = F.relu(bn(F.conv1d(h, sd[f"layers_conv.{2 * i}.weight"], dilation=dilation), f"layers_bn.{2 * i}"))
        h = residual + F.relu(bn(F.conv1d(y, sd[f"layers_conv.{2 * i + 1}.weight"]), f"layers_bn.{2 * i + 1}"))
        dilation *= width
    out = F.conv1d(h, sd["shrink.weight"], sd["shrink.bias"])
    return out.permute(0, 2, 1).reshape(n_frames, -1, 3).numpy()


def mirror_2d(x):
    m = x[:, skeleton.COCO_FLIP].copy()
    m[..., 0] *= -1
    return m


def mirror_3d(y):
    m = y[:, skeleton.H36M_FLIP].copy()
    m[..., 0] *= -1
    return m


@pytest.fixture(scope="module")
def small_model():
    cfg = make_config([3, 3, 3], 64)
    return TemporalModel(cfg, random_tensors(cfg, seed=3))


@pytest.fixture()
def saved_model(tmp_path):
    cfg = make_config([3, 3, 3], 32)
    path = save_lifter(tmp_path / "tiny", random_tensors(cfg, seed=5), cfg)
    return path, path.with_suffix(".json")


# -- the network -----------------------------------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("widths, channels, n_frames", [
    ([3, 3, 3], 64, 120), ([3, 3, 3, 3], 64, 200), ([1, 1, 1], 32, 40), ([5, 3], 48, 60), ([3], 16, 10),
    ([3, 3, 3, 3, 3], 64, 300),
])
@pytest.mark.parametrize("causal", [False, True])
def test_matches_torch(widths, channels, n_frames, causal):
    cfg = make_config(widths, channels, causal)
    tensors = random_tensors(cfg, seed=sum(widths) + channels)
    inputs = random_track(n_frames)
    got = TemporalModel(cfg, tensors).predict(inputs)
    want = torch_reference(tensors, widths, causal, inputs)
    assert got.shape == (n_frames, 17, 3) and got.dtype == np.float32
    assert np.abs(want).max() > 0.1  # the comparison is not between near-zero outputs
    assert np.abs(got - want).max() < 1e-4


def test_receptive_field_and_short_tracks(small_model):
    assert small_model.receptive_field == 27
    for n in (1, 2, 26, 27, 28):  # shorter than the receptive field: edge padding alone fills the window
        out = small_model.predict(random_track(n))
        assert out.shape == (n, 17, 3) and np.all(np.isfinite(out))
    # a constant track is its own edge padding: every frame gets the same pose
    still = np.repeat(random_track(1), 40, axis=0)
    out = small_model.predict(still)
    np.testing.assert_allclose(out, np.repeat(out[:1], 40, axis=0), atol=1e-6)


def test_flip_average_is_mirror_equivariant(small_model):
    x = random_track(90)
    plain, plain_mirrored = small_model.predict(x), small_model.predict(mirror_2d(x))
    both = small_model.predict(x, flip=True)
    np.testing.assert_allclose(both, (plain + mirror_3d(plain_mirrored)) / 2, atol=1e-6)
    # the averaged model treats a mirrored video as the mirror image of the original
    np.testing.assert_allclose(small_model.predict(mirror_2d(x), flip=True), mirror_3d(both), atol=1e-5)
    # which a single pass of a random network does not do
    assert np.abs(plain_mirrored - mirror_3d(plain)).max() > 1e-2


def test_causal_outputs_ignore_the_future():
    cfg = make_config([3, 3, 3], 32, causal=True)
    model = TemporalModel(cfg, random_tensors(cfg))
    x = random_track(100)
    changed = x.copy()
    changed[60:] += 0.5
    a, b = model.predict(x), model.predict(changed)
    np.testing.assert_array_equal(a[:60], b[:60])
    assert np.abs(a[60:] - b[60:]).max() > 1e-3
    # the symmetric model with the same weights looks (field - 1) / 2 = 13 frames ahead
    symmetric = TemporalModel({**cfg, "causal": False}, random_tensors(cfg))
    a, b = symmetric.predict(x), symmetric.predict(changed)
    np.testing.assert_array_equal(a[:47], b[:47])
    assert np.abs(a[47:60] - b[47:60]).max() > 1e-3


@pytest.mark.parametrize("causal", [False, True])
def test_chunked_equals_one_pass(causal):
    cfg = make_config([3, 3, 3, 3], 32, causal=causal)
    model = TemporalModel(cfg, random_tensors(cfg))
    x = random_track(500)
    whole = model.predict(x, chunk_frames=10_000)
    for chunk in (1, 7, 81, 499):
        np.testing.assert_allclose(model.predict(x, chunk_frames=chunk), whole, rtol=0, atol=1e-5)
    np.testing.assert_allclose(model.predict(x, flip=True, chunk_frames=33),
                               model.predict(x, flip=True, chunk_frames=10_000), rtol=0, atol=1e-5)


def test_bad_inputs_and_configs(small_model):
    with pytest.raises(ValueError, match="inputs"):
        small_model.predict(np.zeros((10, 16, 2)))
    x = random_track(10)
    x[3, 4, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        small_model.predict(x)
    cfg = make_config([3, 3, 3], 16)
    tensors = random_tensors(cfg)
    with pytest.raises(ValueError, match="filter_widths"):
        TemporalModel({**cfg, "filter_widths": [3, 2]}, tensors)
    with pytest.raises(ValueError, match="layers_conv.0.weight"):
        TemporalModel({**cfg, "filter_widths": [3, 5, 3]}, tensors)
    with pytest.raises(ValueError, match="input_normalisation"):
        TemporalModel({**cfg, "input_normalisation": "pixels"}, tensors)
    with pytest.raises(ValueError, match="missing"):
        TemporalModel(cfg, {k: v for k, v in tensors.items() if k != "shrink.bias"})


# -- model files -----------------------------------------------------------------------------------------------
def test_save_load_round_trip(saved_model, tmp_path):
    weights, config_path = saved_model
    config = json.loads(config_path.read_text())
    assert config["format"] == "wildpose-lifter" and config["version"] == 1 and len(config["sha256"]) == 64
    assert not list(tmp_path.glob(".*partial*"))  # no temporaries left behind
    x = random_track(50)
    cfg = make_config([3, 3, 3], 32)
    want = TemporalModel(cfg, random_tensors(cfg, seed=5)).predict(x)
    for path in (weights, config_path, tmp_path / "tiny"):  # any of the two files or the stem
        np.testing.assert_array_equal(load_lifter(path).predict(x), want)


def test_model_errors_name_the_file(saved_model, tmp_path):
    weights, config_path = saved_model
    with pytest.raises(ModelError, match="missing") as err:
        load_lifter(tmp_path / "absent.safetensors")
    assert err.value.path.endswith("absent.safetensors")

    good_config = config_path.read_text()
    config_path.write_text(good_config[:-20])
    with pytest.raises(ModelError, match="JSON") as err:
        load_lifter(weights)
    assert err.value.path == str(config_path)

    config = json.loads(good_config)
    config_path.write_text(json.dumps({**config, "channels": 64}))  # shapes no longer match
    with pytest.raises(ModelError, match="shape") as err:
        load_lifter(weights)
    assert err.value.path == str(weights)

    config_path.write_text(json.dumps({**config, "fps": -3}))
    with pytest.raises(ModelError, match="fps"):
        load_lifter(weights)

    config_path.write_text(good_config)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256") as err:
        load_lifter(weights)
    assert err.value.path == str(weights) and "tiny.safetensors" in str(err.value)

    # corrupt but with a matching checksum: safetensors itself refuses it
    weights.write_bytes(b"not a safetensors file")
    import hashlib
    config_path.write_text(json.dumps({**config, "sha256": hashlib.sha256(b"not a safetensors file").hexdigest()}))
    with pytest.raises(ModelError, match="safetensors") as err:
        load_lifter(weights)
    assert err.value.path == str(weights)

    config_path.unlink()
    with pytest.raises(ModelError, match="config missing") as err:
        load_lifter(weights)
    assert err.value.path == str(config_path)


def test_ensemble_file_averages_its_members(tmp_path):
    """`wildpose ensemble`: one file whose output is the mean of the members' (flip included); members of
    another architecture or a broken member are refused naming the file, with nothing written."""
    from wildpose.lift.weights import combine_lifters

    cfg = make_config([3, 3, 3], 32, normalisation="crop")
    members = []
    for seed in (1, 2, 3):
        save_lifter(tmp_path / f"m{seed}", random_tensors(cfg, seed=seed), cfg)
        members.append(load_lifter(tmp_path / f"m{seed}"))
    combine_lifters([tmp_path / "m1.safetensors", tmp_path / "m2.safetensors"], tmp_path / "pair")
    # an ensemble of an ensemble and a network is flattened to three members
    combine_lifters([tmp_path / "pair.safetensors", tmp_path / "m3.safetensors"], tmp_path / "three")
    model = load_lifter(tmp_path / "three")
    assert model.members == 3 and json.loads((tmp_path / "three.json").read_text())["members"] == 3
    x = random_track(80) * 0.3
    for flip in (False, True):
        want = np.mean([m.predict(x, flip=flip) for m in members], axis=0)
        np.testing.assert_allclose(model.predict(x, flip=flip), want, atol=1e-5)
    assert model.flops_per_frame == 3 * members[0].flops_per_frame
    provenance = json.loads((tmp_path / "three.json").read_text())["provenance"]["members"]
    assert [m["file"] for m in provenance] == [str(tmp_path / "pair.safetensors"), str(tmp_path / "m3.safetensors")]
    # the ensemble trained on whatever any member trained on: `wildpose eval` flags those groups
    for seed, train in ((4, ["a", "b"]), (5, ["b", "c"])):
        save_lifter(tmp_path / f"s{seed}", random_tensors(cfg, seed=seed),
                    {**cfg, "provenance": {"data": "x", "split": {"train": train, "test": ["c", "d"]}}})
    combine_lifters([tmp_path / "s4.safetensors", tmp_path / "s5.safetensors"], tmp_path / "both")
    both = json.loads((tmp_path / "both.json").read_text())["provenance"]
    assert both["split"] == {"train": ["a", "b", "c"], "test": ["d"]} and both["data"] == "x"

    other = make_config([3, 3, 3], 32, causal=True, normalisation="crop")
    save_lifter(tmp_path / "causal", random_tensors(other), other)
    with pytest.raises(ModelError, match="causal") as err:
        combine_lifters([tmp_path / "m1.safetensors", tmp_path / "causal.safetensors"], tmp_path / "bad")
    assert err.value.path == str(tmp_path / "causal.safetensors")
    (tmp_path / "m2.safetensors").write_bytes(b"broken")
    with pytest.raises(ModelError, match="sha256"):
        combine_lifters([tmp_path / "m1.safetensors", tmp_path / "m2.safetensors"], tmp_path / "bad")
    assert not list(tmp_path.glob("bad*"))


def test_save_refuses_inconsistent_tensors(tmp_path):
    cfg = make_config([3, 3, 3], 16)
    with pytest.raises(ValueError, match="shape"):
        save_lifter(tmp_path / "m", random_tensors(make_config([3, 3, 3], 8)), cfg)
    assert list(tmp_path.iterdir()) == []


# -- reference checkpoints -------------------------------------------------------------------------------------
class _CreatesFile:
    """A pickle payload that creates a file when unpickled, i.e. if the loader executed code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@needs_torch
def test_convert_reference_checkpoint(tmp_path):
    from wildpose.lift.convert import convert_checkpoint

    widths = [3, 3, 3, 3]
    tensors = random_tensors(make_config(widths, 48), seed=11)
    state = {k: torch.from_numpy(v) for k, v in tensors.items()}
    for bn in ("expand_bn", *(f"layers_bn.{i}" for i in range(6))):
        state[f"{bn}.num_batches_tracked"] = torch.tensor(1000)
    ckpt = tmp_path / "pretrained_h36m_detectron_coco.bin"
    torch.save({"epoch": 80, "lr": 1e-4, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
                "model_pos": state}, ckpt)
    out = convert_checkpoint(ckpt, tmp_path / "converted")
    config = json.loads(out.with_suffix(".json").read_text())
    assert config["filter_widths"] == widths and config["channels"] == 48
    assert (config["in_joints"], config["out_joints"], config["in_layout"], config["out_layout"]) == \
        (17, 17, "coco", "h36m")
    assert config["input_normalisation"] == "screen" and config["fps"] == 50.0 and config["causal"] is False
    assert config["provenance"]["source"] == ckpt.name and "CC BY-NC" in config["provenance"]["licence"]
    x = random_track(150)
    got = load_lifter(out).predict(x)
    assert np.abs(got - torch_reference(tensors, widths, False, x)).max() < 1e-4

    bare = tmp_path / "bare.pt"  # a bare state dict is accepted too
    torch.save(state, bare)
    np.testing.assert_array_equal(load_lifter(convert_checkpoint(bare, tmp_path / "bare", causal=True)).predict(x),
                                  TemporalModel({**config, "causal": True}, tensors).predict(x))


@needs_torch
def test_convert_refuses_code_and_non_checkpoints(tmp_path):
    from wildpose.lift.convert import convert_checkpoint

    marker = tmp_path / "executed"
    for name, write in (("evil_torch.bin", lambda p: torch.save({"model_pos": _CreatesFile(marker)}, p)),
                        ("evil_pickle.bin", lambda p: p.write_bytes(pickle.dumps({"model_pos": _CreatesFile(marker)}, protocol=2)))):
        write(tmp_path / name)
        assert not marker.exists()
        with pytest.raises(FormatError) as err:
            convert_checkpoint(tmp_path / name, tmp_path / "out")
        assert not marker.exists(), "loading the checkpoint executed code"
        assert err.value.path == str(tmp_path / name)

    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(FormatError, match="torch checkpoint"):
        convert_checkpoint(tmp_path / "notes.txt", tmp_path / "out")
    torch.save({"epoch": 3, "something_else": torch.zeros(3)}, tmp_path / "other.bin")
    with pytest.raises(FormatError, match="model_pos"):
        convert_checkpoint(tmp_path / "other.bin", tmp_path / "out")
    with pytest.raises(FormatError, match="no such"):
        convert_checkpoint(tmp_path / "absent.bin", tmp_path / "out")
    assert not list(tmp_path.glob("out*"))


def test_convert_without_torch_says_what_to_install(tmp_path, monkeypatch):
    import sys

    from wildpose.lift.convert import convert_checkpoint

    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(WildposeError, match=r"pip install wildpose\[train\]"):
        convert_checkpoint(tmp_path / "x.bin", tmp_path / "out")


# -- lift(): normalisation, resampling, root -------------------------------------------------------------------
def pixel_track(times, image_size=(640, 480)):
    """A standing COCO-17 person (pixels) sliding right at a constant 80 px/s."""
    pose = np.array([[320, 100], [328, 92], [312, 92], [338, 96], [302, 96], [350, 140], [290, 140],
                     [360, 190], [280, 190], [364, 240], [276, 240], [340, 250], [300, 250], [342, 320],
                     [298, 320], [344, 390], [296, 390]], np.float32)
    return pose[None] + np.stack([80.0 * np.asarray(times), 0 * np.asarray(times)], -1)[:, None, :]


def test_lift_resamples_to_the_model_rate(saved_model):
    model = load_lifter(saved_model[0])  # 50 fps, 27 frames
    duration = 4.0
    by_rate = {}
    for fps in (24.0, 30.0, 50.0, 60.0):
        times = np.arange(int(duration * fps)) / fps
        poses = lift(pixel_track(times), (640, 480), fps, model=model)
        assert poses.shape == (len(times), 17, 3) and poses.dtype == np.float32
        assert np.all(poses[:, 0] == 0) and np.abs(poses[:, 1:]).max() > 1e-3
        by_rate[fps] = poses
    # every sixth of a second is a frame at all four rates; away from the last half field (0.26 s), the grid
    # the model ran on is the same, so the poses agree
    common = np.arange(0, 3.5, 1 / 6)
    ref = by_rate[60.0][np.round(common * 60).astype(int)]
    for fps in (24.0, 30.0):
        np.testing.assert_allclose(by_rate[fps][np.round(common * fps).astype(int)], ref, atol=1e-5)
    # and at 50 fps frames (times on the model's grid) the 60 fps input gives the 50 fps answer
    on_grid = np.arange(0, 3.5, 0.1)
    np.testing.assert_allclose(by_rate[50.0][np.round(on_grid * 50).astype(int)],
                               by_rate[60.0][np.round(on_grid * 60).astype(int)], atol=1e-5)


def test_lift_timestamps_and_validation(saved_model):
    model = load_lifter(saved_model[0])
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.02, 0.05, 80))  # variable frame rate
    kp = np.concatenate([pixel_track(times), rng.uniform(0, 1, (80, 17, 1))], -1)  # scores are ignored
    poses = lift(kp, (640, 480), 30.0, model=model, timestamps=times)
    assert poses.shape == (80, 17, 3)
    np.testing.assert_array_equal(poses, lift(kp[..., :2], (640, 480), 30.0, model=model, timestamps=times))
    # the default timestamps are arange(T) / fps
    np.testing.assert_array_equal(lift(kp, (640, 480), 25.0, model=model, flip=False),
                                  lift(kp, (640, 480), 25.0, model=model, flip=False,
                                       timestamps=np.arange(80) / 25.0))

    bad = kp.copy()
    bad[10, 3, 1] = np.nan
    with pytest.raises(ValueError, match="keypoints_2d"):
        lift(bad, (640, 480), 30.0, model=model)
    with pytest.raises(ValueError, match="keypoints_2d"):
        lift(kp[:, :15], (640, 480), 30.0, model=model)
    with pytest.raises(ValueError, match="timestamps"):
        lift(kp, (640, 480), 30.0, model=model, timestamps=times[::-1])
    with pytest.raises(ValueError, match="fps"):
        lift(kp, (640, 480), 0.0, model=model)
    with pytest.raises(ValueError, match="image_size"):
        lift(kp, (0, 480), 30.0, model=model)


def test_lift_mirrored_video_gives_mirrored_poses(tmp_path):
    """Flip averaging + centred normalisation: a horizontally mirrored video lifts to the mirrored poses."""
    for normalisation in ("screen", "focal", "crop"):
        cfg = make_config([3, 3, 3], 32, fps=30.0, normalisation=normalisation)
        model = TemporalModel(cfg, random_tensors(cfg, seed=8))
        times = np.arange(60) / 30.0
        kp = pixel_track(times)
        mirrored = kp[:, skeleton.COCO_FLIP].copy()
        mirrored[..., 0] = 640 - mirrored[..., 0]
        np.testing.assert_allclose(lift(mirrored, (640, 480), 30.0, model=model),
                                   mirror_3d(lift(kp, (640, 480), 30.0, model=model)), atol=1e-5)


# -- the "crop" input space (lift/normalize.py) -------------------------------------------------------------------
def body_points(seed=0):
    """A COCO-17 body (metres, its own axes: y down), its hips' midpoint at the origin."""
    rng = np.random.default_rng(seed)
    pose = np.array([[0, -1.6, 0], [.03, -1.63, .02], [-.03, -1.63, .02], [.08, -1.6, -.05], [-.08, -1.6, -.05],
                     [.2, -1.4, 0], [-.2, -1.4, 0], [.3, -1.1, .1], [-.3, -1.1, -.1], [.35, -.85, .2],
                     [-.35, -.85, -.2], [.11, -.9, 0], [-.11, -.9, 0], [.12, -.45, .1], [-.12, -.45, -.05],
                     [.13, 0, 0], [-.13, 0, .05]])
    pose = pose + rng.normal(0, 0.02, pose.shape)
    return pose - pose[[11, 12]].mean(axis=0)


def view_from(pose_virtual, root_direction, distance, focal, size):
    """Pixels of a body placed ``distance`` metres along ``root_direction`` (camera axes), facing the camera
    the way ``pose_virtual`` faces a camera looking straight at it."""
    from wildpose.lift.normalize import crop_rotations

    direction = np.asarray(root_direction, np.float64) / np.linalg.norm(root_direction)
    rot = crop_rotations(direction[:2] / direction[2])
    cam = pose_virtual @ rot + distance * direction  # rot's rows are the virtual axes: R^T x for each point
    return cam[:, :2] / cam[:, 2:] * focal + np.array(size) / 2.0, rot


def test_crop_inputs_do_not_depend_on_where_the_person_is_or_the_lens():
    """The same view of a body (a camera looking at it from the same distance) gives the same "crop" input
    wherever it is in the frame and whatever the focal length; only the distance changes it, a little
    (perspective), and the returned rotations are those virtual cameras."""
    from wildpose.lift.normalize import crop_normalize, crop_restore, normalize_keypoints

    pose = body_points()
    size = (1920, 1080)
    inputs = []
    for direction, focal in [((0, 0, 1), 1000.0), ((0.6, -0.3, 1), 1000.0), ((-0.9, 0.4, 1), 700.0),
                             ((0.2, 0.45, 1), 2500.0)]:
        px, rot = view_from(pose, direction, 6.0, focal, size)
        uv, rot_found = crop_normalize(normalize_keypoints(px, size, "focal", focal))
        # ~1e-4: the image of the hips' 3D midpoint is not quite the midpoint of their images (perspective)
        np.testing.assert_allclose(rot_found, rot, atol=1e-3)
        inputs.append(uv)
        # the target a lifter is trained on in this space comes back to camera axes
        cam = pose @ rot + 6.0 * np.asarray(direction) / np.linalg.norm(direction)
        np.testing.assert_allclose(crop_restore(pose[None], rot[None])[0], cam - cam[[11, 12]].mean(0), atol=1e-5)
    for uv in inputs[1:]:
        np.testing.assert_allclose(uv, inputs[0], atol=1e-3)
    assert np.allclose(np.sqrt((inputs[0] ** 2).sum(-1).mean()), 1.0)
    # in the focal space the same views differ by far more than the whole body's size
    near, _ = view_from(pose, (0, 0, 1), 3.0, 1000.0, size)
    far, _ = view_from(pose, (0, 0, 1), 30.0, 1000.0, size)
    uv_near = crop_normalize(normalize_keypoints(near, size, "focal", 1000.0))[0]
    uv_far = crop_normalize(normalize_keypoints(far, size, "focal", 1000.0))[0]
    assert 1e-3 < np.abs(uv_near - uv_far).max() < 0.1  # perspective, not size


def test_lift_crop_model_returns_camera_axes(tmp_path):
    """A "crop" model sees the same input for the same view anywhere in the frame, so lift() must return
    that pose turned into each position's camera axes."""
    from wildpose.lift.normalize import crop_rotations

    cfg = make_config([3, 3, 3], 32, fps=30.0, normalisation="crop")
    model = TemporalModel(cfg, random_tensors(cfg, seed=9))
    pose = body_points(1)
    size, focal = (1280, 720), 900.0
    centre, _ = view_from(pose, (0, 0, 1), 5.0, focal, size)
    side, rot = view_from(pose, (0.5, 0.2, 1), 5.0, focal, size)
    lifted_centre = lift(np.repeat(centre[None], 20, 0), size, 30.0, focal_length=focal, model=model)
    lifted_side = lift(np.repeat(side[None], 20, 0), size, 30.0, focal_length=focal, model=model)
    assert np.abs(lifted_centre).max() > 1e-3
    # float32 rays through a random network: equal to ~1e-3 m, where the rotation moves joints by decimetres
    np.testing.assert_allclose(lifted_side, lifted_centre @ rot, atol=2e-3)
    assert np.abs(lifted_side - lifted_centre).max() > 0.1


def test_shipped_model_if_present():
    path = default_model_path()
    if not path.exists():
        pytest.skip(f"{path} not shipped yet (written by the training side)")
    model = load_lifter()
    assert model.in_joints == 17 and model.out_joints == 17
    times = np.arange(90) / 30.0
    poses = lift(pixel_track(times), (640, 480), 30.0)
    assert poses.shape == (90, 17, 3) and np.all(np.isfinite(poses)) and np.all(poses[:, 0] == 0)
    # a standing person, camera axes with y down: ankles below the pelvis, head above it, metres
    names = skeleton.H36M_NAMES
    ankles = poses[:, [names.index("left_ankle"), names.index("right_ankle")], 1]
    head = poses[:, names.index("head"), 1]
    assert np.all(ankles > 0.4) and np.all(head < -0.3)
    assert 1.2 < np.median(ankles.mean(1) - head) < 2.2


def test_shipped_causal_model_by_name():
    """`--lifter causal` / load_lifter("causal") is the shipped streaming model: no look-ahead."""
    from wildpose.lift.weights import default_model_path, shipped_models

    if not default_model_path().with_name("lifter_causal.safetensors").exists():
        pytest.skip("no shipped causal lifter in this installation")
    assert "causal" in shipped_models()
    model = load_lifter("causal")
    assert model.causal and not load_lifter().causal
