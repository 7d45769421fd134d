"""`wildpose eval` and `wildpose train` end to end on real CMU mocap (and on a data_3d_h36m.npz built from it):
a few held-out segments through the shipped models, a handful of training steps on a tiny config.

Skips (with the reason) when the shared mocap folder or (for training) torch is absent.
"""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest

from wildpose.cli import main
from wildpose.lift.train.rigs import load_clip

from test_sources import ONE_PER_RIG, make_h36m_npz


def _torch():
    return pytest.importorskip("torch", reason="training needs torch (pip install wildpose[train])")


def _run(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_prints_scores_that_match_the_evaluation_functions(mocap_dir, tmp_path, capsys):
    from wildpose.lift.train.data import DEFAULT_SPLIT, load_split
    from wildpose.lift.train.evaluate import make_sequences, numpy_predictor, score
    from wildpose.lift.weights import load_lifter

    # the groups the shipped models were held out on (the split's later groups have clips under 2 segments)
    held_out = ["cmu:03", "cmu:05", "martial:?"]
    args = ["eval", "--mocap", str(mocap_dir), "--max-clips", "1", "--max-segments", "2", "--noisy",
            "--cache", str(tmp_path / "cache"), "--groups", *held_out]
    code, out, err = _run(capsys, args)
    assert code == 0, err
    lines = out.splitlines()
    assert "test split" in lines[0] and "2 segments" in lines[0]
    rows = {line[:14].strip(): line[14:].split() for line in lines[2:5]}  # the pose table
    for label in ("ground truth", "noisy", "MoveNet-like"):
        mpjpe, p_mpjpe, n_mpjpe, mpjve, baseline = (float(v) for v in rows[label][:5])
        assert 20 < mpjpe < baseline and p_mpjpe < mpjpe and mpjve > 0, (label, rows[label])
    assert "root (pelvis) position" in out
    depth = [line for line in lines if line.startswith("ground truth")][-1].split()
    assert float(depth[-5]) < 10.0  # mean depth error, % of the distance (the target)

    code, out, err = _run(capsys, args + ["--json"])
    res = json.loads(out)
    assert set(res["pose"]) == {"gt2d", "noisy2d", "movenet2d"} and set(res["trajectory"]) == {"gt2d", "noisy2d"}
    # the command reports what the evaluation module computes on the same clips
    model = load_lifter(None)
    assert set(held_out) <= set(DEFAULT_SPLIT["test"])
    clips = load_split(mocap_dir, held_out, 1, tmp_path / "cache")
    seqs = make_sequences(clips, model.fps, max_segments=2)
    direct = score(numpy_predictor(model, refine=True), seqs)
    assert res["refined"] is True
    assert res["pose"]["gt2d"]["mpjpe_mm"] == pytest.approx(direct["mpjpe_mm"], rel=1e-9)
    assert res["pose"]["gt2d"]["frames"] == direct["frames"]
    # the error split: each joint's error averages to the MPJPE (the pelvis is the origin: 0); the 2D pins
    # down where a joint is in the image, so after refinement most of what is left is depth
    per_joint = res["pose"]["gt2d"]["per_joint_mm"]
    assert len(per_joint) == 17 and per_joint["pelvis"] == 0.0
    assert np.mean(list(per_joint.values())) == pytest.approx(res["pose"]["gt2d"]["mpjpe_mm"], rel=1e-9)
    assert res["pose"]["gt2d"]["depth_mm"] > 2 * res["pose"]["gt2d"]["in_plane_mm"] > 0
    code, out, err = _run(capsys, args + ["--per-joint", "--no-trajectory"])
    wrist = next(line for line in out.splitlines() if line.startswith("right_wrist")).split()
    assert [float(v) for v in wrist[1:]] == pytest.approx(
        [res["pose"][k]["per_joint_mm"]["right_wrist"] for k in ("gt2d", "noisy2d", "movenet2d")], abs=0.051)
    # --no-refine scores the network alone: what the refinement changes is visible, not folded in
    code, out, err = _run(capsys, args + ["--json", "--no-refine", "--no-trajectory"])
    raw = json.loads(out)
    assert raw["refined"] is False
    assert raw["pose"]["gt2d"]["mpjpe_mm"] == pytest.approx(score(numpy_predictor(model), seqs)["mpjpe_mm"], rel=1e-9)
    assert raw["pose"]["gt2d"]["mpjpe_mm"] != pytest.approx(direct["mpjpe_mm"], abs=0.05)
    # --unknown-focal: the rays as `run` makes them without --focal (default field of view)
    from wildpose.lift.train.evaluate import with_default_focal

    code, out, err = _run(capsys, args + ["--json", "--unknown-focal", "--no-trajectory"])
    guessed = json.loads(out)
    assert guessed["unknown_focal"] is True
    expected = score(numpy_predictor(model, refine=True), with_default_focal(seqs))["mpjpe_mm"]
    assert guessed["pose"]["gt2d"]["mpjpe_mm"] == pytest.approx(expected, rel=1e-9)
    assert expected != pytest.approx(direct["mpjpe_mm"], abs=0.05)


def test_eval_by_group_scores_each_held_out_activity(mocap_dir, tmp_path, capsys):
    """--by-group gives one table per test group (walking, ballet, martial arts, acrobatics, subject 131's
    stylised walks), each the same as asking for that group alone; a group outside the split is refused (its
    clips may be training clips)."""
    base = ["eval", "--mocap", str(mocap_dir), "--max-clips", "1", "--max-segments", "1", "--no-trajectory",
            "--cache", str(tmp_path / "cache")]
    code, out, err = _run(capsys, base + ["--by-group", "--json"])
    assert code == 0, err
    res = json.loads(out)
    assert [r["groups"] for r in res] == [["cmu:03"], ["cmu:05"], ["martial:?"], ["cmu:90"], ["cmu:131"]]
    code, out, err = _run(capsys, base + ["--groups", "cmu:05", "--json"])
    alone = json.loads(out)
    assert alone["groups"] == ["cmu:05"]
    assert alone["pose"]["gt2d"]["mpjpe_mm"] == pytest.approx(res[1]["pose"]["gt2d"]["mpjpe_mm"], rel=1e-12)
    assert res[0]["pose"]["gt2d"]["mpjpe_mm"] != res[1]["pose"]["gt2d"]["mpjpe_mm"]
    code, out, err = _run(capsys, base + ["--by-group"])
    assert code == 0 and out.count("test split (") == 5
    code, out, err = _run(capsys, base + ["--groups", "salsa:60"])
    assert code == 1 and "not in the test split" in err and err.count("\n") == 1


def test_eval_on_a_reference_h36m_file(mocap_dir, tmp_path, capsys):
    path = tmp_path / "data_3d_h36m.npz"
    walk = load_clip(mocap_dir / ONE_PER_RIG["asf38"])
    make_h36m_npz(path, {"S1": {"Walking": walk}, "S11": {"Walking": walk}})
    code, out, err = _run(capsys, ["eval", "--h36m", str(path), "--json", "--no-trajectory"])
    assert code == 0, err
    res = json.loads(out)
    assert res["groups"] == ["h36m:S11"] and "trajectory" not in res
    s = res["pose"]["gt2d"]
    assert s["frames"] > 50 and s["mpjpe_mm"] < s["baseline_mpjpe_mm"]
    code, out, err = _run(capsys, ["eval", "--h36m", str(path), "--split", "val"])
    assert code == 1 and "no val clips" in err  # the standard H36M split has no validation subjects


def test_train_a_few_steps_from_a_tiny_config(mocap_dir, tmp_path, capsys):
    _torch()
    from wildpose.lift import load_lifter

    cfg = {"name": "tiny", "filter_widths": [3, 3], "channels": 32, "dropout": 0.1, "fps": 30.0, "batch_size": 16,
           "steps": 4, "lr": 0.002, "eval_every": 2, "val_windows": 32, "threads": 1, "max_clips": 1,
           "split": {"train": ["cmu:03"], "val": ["indian:94"], "test": ["cmu:05"]}}
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(cfg))
    code, out, err = _run(capsys, ["train", "--config", str(config), "--mocap", str(mocap_dir),
                                   "--runs", str(tmp_path / "runs"), "--ship", str(tmp_path / "ship" / "mine")])
    assert code == 0, err
    assert "4 steps" in out and "ship/mine.safetensors" in out
    with open(tmp_path / "runs" / "tiny" / "log.csv") as fh:
        log = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in log] == [2, 4]
    assert all(np.isfinite(float(r["train_loss_mm"])) and float(r["val_mpjpe_mm"]) > 0 for r in log)
    model = load_lifter(tmp_path / "ship" / "mine.safetensors")
    assert model.receptive_field == 9 and model.fps == 30.0
    assert model.config["provenance"]["command"].startswith("wildpose train --config")
    pred = model.predict(np.zeros((20, 17, 2), np.float32))
    assert pred.shape == (20, 17, 3) and np.isfinite(pred).all()


def test_train_overrides_reach_nested_keys_and_bad_ones_fail_in_one_line(mocap_dir, tmp_path, capsys):
    """--set picks the crop input space and the limb rotations (a nested key) of a tiny run; a key through a
    non-section or an unknown input space is one line on stderr, exit 1, nothing trained."""
    _torch()
    from wildpose.lift import load_lifter
    from wildpose.lift.train.__main__ import main as module_main

    cfg = {"name": "tiny", "filter_widths": [3], "channels": 16, "batch_size": 8, "steps": 2, "eval_every": 2,
           "val_windows": 16, "threads": 1, "max_clips": 1, "augment": {"mirror": 0.5},
           "split": {"train": ["cmu:03"], "val": ["indian:94"], "test": []}}
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(cfg))
    base = ["train", "--config", str(config), "--mocap", str(mocap_dir), "--runs", str(tmp_path / "runs")]
    code, out, err = _run(capsys, base + ["--set", 'input_normalisation="crop"',
                                          "--set", "augment.limb_rotation_sd=15"])
    assert code == 0, err
    model = load_lifter(tmp_path / "runs" / "tiny" / "best.safetensors")
    assert model.input_normalisation == "crop"
    assert "augment.limb_rotation_sd=15" in model.config["provenance"]["command"]
    # the model records its split: scoring it on a group it trained on is labelled as such
    assert model.config["provenance"]["split"]["train"] == ["cmu:03"]
    code, out, err = _run(capsys, ["eval", "--mocap", str(mocap_dir), "--model",
                                   str(tmp_path / "runs" / "tiny" / "best.safetensors"), "--groups", "cmu:03",
                                   "--max-clips", "1", "--max-segments", "1", "--no-trajectory"])
    assert code == 0, err
    assert out.splitlines()[1] == "NOT HELD OUT: the model trained on cmu:03"
    # a final model trained on train + validation ships its last weights, not the best on validation
    code, out, err = _run(capsys, base + ["--set", 'ship_weights="last"', "--set", "augment.mix_halves=0.5",
                                          "--set", "augment.mix_limbs=0.5",
                                          "--ship", str(tmp_path / "ship" / "final")])
    assert code == 0, err
    assert load_lifter(tmp_path / "ship" / "final.safetensors").receptive_field == 3
    shipped = (tmp_path / "ship" / "final.safetensors").read_bytes()
    assert shipped == (tmp_path / "runs" / "tiny" / "last.safetensors").read_bytes()
    for bad, message in ((["--set", "channels.x=1"], "'channels' is not a section"),
                         (["--set", 'ship_weights="first"'], "expected \"best\" or \"last\""),
                         (["--set", 'split.test=["cmu:03"]'], "trains on test groups ['cmu:03']"),
                         (["--set", 'split.train=["cmu:03","indian:94"]'], "also trained on"),
                         (["--set", "input_normalisation=pixels"], "input_normalisation 'pixels'"),
                         (["--set", "channels"], "expected KEY=VALUE")):
        runs = tmp_path / "bad"
        code, out, err = _run(capsys, base[:-1] + [str(runs)] + bad)
        assert code == 1 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
        assert not runs.exists()
    # the developers' module spelling is the same command
    assert module_main(["--config", str(config), "--mocap", str(mocap_dir), "--runs", str(tmp_path / "bad"),
                        "--set", "channels.x=1"]) == 1
    assert "'channels' is not a section" in capsys.readouterr().err


def test_train_on_h36m_data_records_its_licence(mocap_dir, tmp_path, capsys):
    _torch()
    from wildpose.lift import load_lifter

    path = tmp_path / "data_3d_h36m.npz"
    make_h36m_npz(path, {"S1": {"Walking": load_clip(mocap_dir / ONE_PER_RIG["asf38"])},
                         "S8": {"Salsa": load_clip(mocap_dir / ONE_PER_RIG["daz57"])}})
    cfg = {"name": "h36m_tiny", "filter_widths": [3, 3], "channels": 16, "batch_size": 8, "steps": 2,
           "eval_every": 2, "val_windows": 16, "threads": 1,
           "split": {"train": ["h36m:S1"], "val": ["h36m:S8"], "test": []}}
    config = tmp_path / "h36m.json"
    config.write_text(json.dumps(cfg))
    code, out, err = _run(capsys, ["train", "--config", str(config), "--h36m", str(path),
                                   "--runs", str(tmp_path / "runs")])
    assert code == 0, err
    model = load_lifter(tmp_path / "runs" / "h36m_tiny" / "best.safetensors")
    prov = model.config["provenance"]
    assert "Human3.6M" in prov["data"] and "non-commercial" in prov["licence"]
    # a split naming groups the data does not hold: one line, exit 1, nothing trained
    config.write_text(json.dumps({**cfg, "split": {"train": ["h36m:S5"], "val": ["h36m:S8"]}}))
    code, out, err = _run(capsys, ["train", "--config", str(config), "--h36m", str(path),
                                   "--runs", str(tmp_path / "runs2")])
    assert code == 1 and "no train clips" in err and not (tmp_path / "runs2").exists()


def test_train_without_torch_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed: import fails
    config = tmp_path / "c.json"
    config.write_text("{}")
    code, out, err = _run(capsys, ["train", "--config", str(config)])
    assert code == 1
    assert err == "error: wildpose train needs torch: pip install wildpose[train]\n"


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(mocap_dir, tmp_path, capsys):
    """A real SIGINT in the middle of a run leaves a checkpoint (exit 130 through the CLI's handling);
    `wildpose train --resume` then ends with the same weights, bit for bit, and the same log as a run never
    stopped. A resume with another config, or with nothing to resume, is one line and exit 1."""
    _torch()
    import os
    import signal

    from safetensors.numpy import load_file

    from wildpose.lift.train.commands import make_sources
    from wildpose.lift.train.loop import CHECKPOINT, train

    cfg = {"name": "tiny", "filter_widths": [3, 3], "channels": 16, "dropout": 0.1, "batch_size": 8, "steps": 12,
           "eval_every": 2, "checkpoint_every": 4, "val_windows": 16, "threads": 1, "max_clips": 1,
           "split": {"train": ["cmu:03"], "val": ["indian:94"], "test": []}}
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(cfg))
    base = ["train", "--config", str(config), "--mocap", str(mocap_dir), "--threads", "1"]
    code, out, err = _run(capsys, base + ["--runs", str(tmp_path / "whole")])
    assert code == 0, err

    def interrupt_at_step_6(step, steps):  # a real signal, as Ctrl-C sends it, between two steps' work
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)

    stopped = tmp_path / "stopped" / "tiny"
    with pytest.raises(KeyboardInterrupt):
        train(dict(cfg, cache_dir=str(tmp_path / "stopped" / "cache")), make_sources([str(mocap_dir)]), stopped,
              progress=interrupt_at_step_6)
    assert (stopped / CHECKPOINT).is_file() and not (stopped / "last.safetensors").exists()
    with open(stopped / "log.csv") as fh:
        assert [r["step"] for r in csv.DictReader(fh)] == ["2", "4", "6"]

    code, out, err = _run(capsys, base + ["--runs", str(tmp_path / "stopped"), "--resume",
                                          "--set", "channels=32"])
    assert code == 1 and "another config (differs in channels)" in err and err.count("\n") == 1, err
    code, out, err = _run(capsys, base + ["--runs", str(tmp_path / "stopped"), "--resume"])
    assert code == 0, err
    assert not (stopped / CHECKPOINT).exists()  # a complete run keeps no checkpoint
    whole, resumed = (load_file(str(d / "tiny" / "last.safetensors")) for d in (tmp_path / "whole", stopped.parent))
    assert whole.keys() == resumed.keys() and all(np.array_equal(whole[k], resumed[k]) for k in whole)

    def losses(run):
        with open(run / "tiny" / "log.csv") as fh:
            return [(r["step"], r["train_loss_mm"], r["val_mpjpe_mm"]) for r in csv.DictReader(fh)]

    assert losses(tmp_path / "whole") == losses(stopped.parent) and len(losses(stopped.parent)) == 6
    code, out, err = _run(capsys, base + ["--runs", str(tmp_path / "stopped"), "--resume"])
    assert code == 1 and "no checkpoint to resume from" in err and err.count("\n") == 1, err
