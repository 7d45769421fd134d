"""Every odd input gets its documented answer (docs/RELIABILITY.md): the corpus of tests/badcorpus.py through one
real `wildpose run` batch, odd destinations (read-only, full disk, two runs on one output), hostile files given
to every command that reads them, and a batch killed at random points then resumed."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import badcorpus
from wildpose.atomic import _umask
from wildpose.cli import main
from wildpose.formats.result import load_result
from wildpose.manifest import read_manifest, verify_files

WILDPOSE = [sys.executable, "-m", "wildpose.cli"]


def _leftovers(folder: Path) -> list[str]:
    """Temporary names (``.x.partial.*``, ``.x.old.*``) anywhere under ``folder``."""
    return [str(p) for p in folder.rglob(".*") if ".partial." in p.name or ".old." in p.name]


def _complete(folder: Path) -> bool:
    """A finished output folder: a manifest whose files are all there with the recorded hashes, and a loadable result."""
    if read_manifest(folder) is None or verify_files(folder):
        return False
    load_result(folder / "poses.npz")
    return True


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, walk_video, crowd_video):
    folder = tmp_path_factory.mktemp("corpus")
    return badcorpus.make_corpus(folder, walk_video, crowd_video)


@pytest.fixture(scope="module")
def corpus_run(corpus, tmp_path_factory):
    """The whole corpus as one batch, in a subprocess (as a user runs it), the missing file included."""
    out = tmp_path_factory.mktemp("corpus_out")
    done = subprocess.run([*WILDPOSE, "run", *(str(c.path) for c in corpus), "-o", str(out)],
                          capture_output=True, text=True, timeout=900)
    return done, out


def test_the_corpus_batch_gives_each_input_its_documented_answer(corpus, corpus_run):
    done, out = corpus_run
    assert done.returncode == 1, done.stderr  # some inputs fail (and only those)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    for case in corpus:
        mine = [line for line in errors if str(case.path) in line]
        if case.expect is None:
            assert not mine, mine
            summary = [line for line in done.stdout.splitlines() if line.startswith(f"{case.path}:")]
            assert len(summary) == 1, f"{case.path.name}: {done.stdout}"
            if case.frames is not None:
                assert f": {case.frames} frame" in summary[0], summary[0]
            assert case.note in summary[0]
        else:
            assert len(mine) == 1, f"{case.path.name}: {mine}\n{done.stderr}"
            assert re.search(case.expect, mine[0]), mine[0]
    assert len(errors) == sum(c.expect is not None for c in corpus)  # one line per failure, no more
    bad = sum(c.expect is not None for c in corpus)
    assert f"{len(corpus) - bad} of {len(corpus)} inputs done, {bad} failed" in done.stdout


def test_the_corpus_outputs_are_complete_and_only_the_good_inputs_have_one(corpus, corpus_run):
    _, out = corpus_run
    good = [c for c in corpus if c.expect is None]
    folders = sorted(p.name for p in out.iterdir())
    assert folders == sorted(c.path.stem for c in good)  # unicode and spaces kept; nothing for a failed input
    assert not _leftovers(out)
    for case in good:
        assert _complete(out / case.path.stem), case.path.name
        assert oct((out / case.path.stem).stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def test_phone_videos_are_turned_upright(corpus, corpus_run):
    """The same 25 frames stored turned 90/180/270 degrees (display matrix): the same displayed size and the same
    keypoints as the unturned copy, to within the detector's noise."""
    _, out = corpus_run
    upright = load_result(out / "my clip – ünïcode 漢字 (1)" / "poses.npz")
    for cw in (90, 180, 270):
        turned = load_result(out / f"phone_rotated_{cw}" / "poses.npz")
        assert tuple(turned.image_size) == tuple(upright.image_size) == (480, 360)
        a, b = upright.keypoints_2d[..., :2], turned.keypoints_2d[..., :2]
        both = (upright.keypoints_2d[..., 2] > 0.3) & (turned.keypoints_2d[..., 2] > 0.3)
        assert both.sum() > 200
        assert np.median(np.linalg.norm(a - b, axis=-1)[both]) < 3.0, cw


def test_timing_repairs(corpus, corpus_run):
    """Variable frame rate keeps its own times; an AVI without timestamps is timed by index and rate."""
    _, out = corpus_run
    vfr = load_result(out / "variable_rate" / "poses.npz")
    assert vfr.fps > 0 and len(vfr.timestamps) == 25
    avi = load_result(out / "no_timestamps" / "poses.npz")
    np.testing.assert_allclose(np.diff(avi.timestamps), 1 / 25, atol=1e-6)
    covered = load_result(out / "covered_1.6s" / "poses.npz")
    assert len(covered.track_ids) == 1  # hidden for 1.6 s: still one person


# ------------------------------------------------------------------------------------------- destinations


@pytest.fixture(scope="module")
def clips(tmp_path_factory, walk_video):
    """Three short real clips (2 s of the walk each, different parts) for the batch and destination tests."""
    folder = tmp_path_factory.mktemp("clips")
    frames = badcorpus._walk_frames(walk_video, 60, 260)
    paths = []
    for i, name in enumerate(["first", "second", "third"]):
        paths.append(badcorpus._encode(folder / f"{name}.mp4", frames[i * 60:i * 60 + 50]))
    return paths


@contextlib.contextmanager
def _small_filesystem(folder: Path, options: str):
    """A tmpfs mounted at ``folder`` (root only); yields False where mounting is not possible here."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield False
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def _limit_file_size(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def _check_failed_destination(done, clips, out: Path, cause: str):
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == len(clips), done.stderr
    for clip, line in zip(clips, errors):
        assert str(clip) in line and str(out) in line and re.search(cause, line, re.I), line
    assert "Traceback" not in done.stderr


def test_read_only_destination(clips, tmp_path):
    out = tmp_path / "ro"
    if os.geteuid() == 0:
        with _small_filesystem(out, "ro,size=1m") as mounted:
            if not mounted:
                pytest.skip("running as root without the right to mount a read-only tmpfs: cannot make a "
                            "folder root may not write to")
            done = subprocess.run([*WILDPOSE, "run", *map(str, clips), "-o", str(out / "results")],
                                  capture_output=True, text=True, timeout=300)
            _check_failed_destination(done, clips, out, r"read-only|permission")
            assert not any(out.iterdir())
    else:
        out.mkdir()
        out.chmod(0o555)
        try:
            done = subprocess.run([*WILDPOSE, "run", *map(str, clips), "-o", str(out / "results")],
                                  capture_output=True, text=True, timeout=300)
            _check_failed_destination(done, clips, out, r"permission")
            assert not any(out.iterdir())
        finally:
            out.chmod(0o755)


def test_full_disk(clips, tmp_path):
    """A destination with 64 kB free (a tmpfs), or where none can be mounted, a file size limit of 16 kB: every
    input fails with the cause, nothing half-written stays behind."""
    out = tmp_path / "full"
    with _small_filesystem(out, "size=64k") as mounted:
        if mounted:
            (out / "filler").write_bytes(b"\0" * 40_000)  # what is left is too little for a result folder
            done = subprocess.run([*WILDPOSE, "run", *map(str, clips), "-o", str(out)],
                                  capture_output=True, text=True, timeout=300)
            _check_failed_destination(done, clips, out, r"no space left")
        else:
            done = subprocess.run([*WILDPOSE, "run", *map(str, clips), "-o", str(out)], capture_output=True,
                                  text=True, timeout=300, preexec_fn=_limit_file_size(16_000))
            _check_failed_destination(done, clips, out, r"too large")
        assert sorted(p.name for p in out.iterdir()) == (["filler"] if mounted else [])


def test_two_runs_writing_the_same_output_at_once(clips, tmp_path):
    """The same video to the same folder from two processes at once: both succeed, the folder is one complete
    output, nothing temporary is left."""
    out = tmp_path / "same"
    runs = [subprocess.Popen([*WILDPOSE, "run", str(clips[0]), "-o", str(out), "-q"], stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["first"]
    assert _complete(out / "first")


# ----------------------------------------------------------------------------------------------- hostile files


class _CreateFile:
    """Unpickling this would create ``path``: the proof that a reader ran code from a file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _hostile_npz(path: Path, marker: Path) -> Path:
    payload = np.empty(2, dtype=object)
    payload[0], payload[1] = _CreateFile(marker), np.zeros((1, 17, 3))
    np.savez(path, keypoints=payload, boxes=payload, segments=payload, metadata=payload, positions_2d=payload,
             poses_3d=payload)
    return path


def _hostile_checkpoint(path: Path, marker: Path) -> Path:
    import torch

    torch.save({"model_pos": {"layer": _CreateFile(marker)}}, path)
    return path


def _escaping_npz(path: Path) -> Path:
    """A zip whose member names climb out (``../``) or are absolute, with valid arrays inside."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4, 17, 2), np.float32))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../../escaped.npy", buffer.getvalue())
        archive.writestr("/tmp/wildpose_escaped_absolute.npy", buffer.getvalue())
    return path


def test_hostile_files_run_nothing_in_any_command(tmp_path, capfd, walk_video):
    marker = tmp_path / "pwned"
    evil = _hostile_npz(tmp_path / "evil.npz", marker)
    (tmp_path / "deep" / "down").mkdir(parents=True)
    escaping = _escaping_npz(tmp_path / "deep" / "down" / "escape.npz")
    commands = [
        ["lift", str(evil), "-o", str(tmp_path / "lifted")],
        ["dataset", str(evil), "-o", str(tmp_path / "data_2d_custom_x.npz")],
        ["export", str(evil), "-f", "all", "-o", str(tmp_path / "exported")],
        ["plot", str(evil), "-o", str(tmp_path / "plots")],
        ["render", str(evil), str(walk_video), "-o", str(tmp_path / "render.mp4")],
        ["view", str(evil), "-o", str(tmp_path / "view.html")],
        ["lift", str(escaping), "-o", str(tmp_path / "lifted2")],
        ["export", str(escaping), "-f", "trc", "-o", str(tmp_path / "exported2")],
    ]
    for argv in commands:
        code = main([*argv, "-q"])
        err = capfd.readouterr().err.strip().splitlines()
        assert code == 1, argv
        assert len(err) == 1 and Path(argv[1]).name in err[0] and "Traceback" not in err[0], (argv, err)
    assert not marker.exists()
    assert not (tmp_path / "escaped.npy").exists() and not (tmp_path / "deep" / "escaped.npy").exists()
    assert not Path("/tmp/wildpose_escaped_absolute.npy").exists()
    for name in ["lifted", "data_2d_custom_x.npz", "exported", "plots", "render.mp4", "view.html", "lifted2",
                 "exported2"]:
        assert not (tmp_path / name).exists() or not any((tmp_path / name).iterdir()), name


def test_hostile_checkpoint_is_refused(tmp_path, capfd):
    pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    evil = _hostile_checkpoint(tmp_path / "evil.bin", marker)
    code = main(["convert-checkpoint", str(evil), str(tmp_path / "mine.safetensors"), "-q"])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "evil.bin" in err[0], err
    assert not marker.exists() and not (tmp_path / "mine.safetensors").exists()


@pytest.mark.parametrize("damage", ["bad json", "bad safetensors", "missing json"])
def test_malformed_lifter_is_a_usage_error(clips, tmp_path, capfd, damage):
    from wildpose.lift.weights import default_model_path

    shipped = default_model_path()
    lifter = tmp_path / "mine.safetensors"
    lifter.write_bytes(shipped.read_bytes() if damage != "bad safetensors" else b"\x08\0\0\0\0\0\0\0{bad json")
    if damage != "missing json":
        config = shipped.with_suffix(".json").read_text()
        lifter.with_suffix(".json").write_text(config[: len(config) // 2] if damage == "bad json" else config)
    code = main(["run", str(clips[0]), "-o", str(tmp_path / "o"), "--lifter", str(lifter), "-q"])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "mine." in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


# ------------------------------------------------------------------------------------------ killed, then resumed


def _wait_for(condition, process, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the run ended before the point it was to be killed at"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_killed_batches_resume_to_complete_outputs(clips, tmp_path):
    """SIGINT after the first output and SIGKILL while another is half-written, at a random moment; then `--resume`
    finishes the batch: the first output skipped, every output complete, no temporary folder left."""
    out = tmp_path / "batch"
    # with the render and the slowest 2D preset, an output's temporary folder exists long enough (its frames are
    # written into it) for a kill to land while it is there on a fast machine too
    argv = [*WILDPOSE, "run", *map(str, clips), "-o", str(out), "--render", "--preset", "accurate"]
    rng = np.random.default_rng()

    # Ctrl-C once the first output is there, after a random extra moment: exit 130, nothing partial left behind
    # SIGINT as a terminal's Ctrl-C delivers it, also where pytest itself runs in the background (a shell starts
    # background jobs with SIGINT ignored, and a process inherits that)
    run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(lambda: (out / "first" / "manifest.json").exists(), run)
    time.sleep(rng.uniform(0, 0.3))
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert not _leftovers(out) and _complete(out / "first")
    first_made = (out / "first" / "manifest.json").stat().st_mtime_ns

    # resumed, then SIGKILL while an output is being assembled: its temporary folder stays (a killed process
    # cannot clean up)
    run = subprocess.Popen([*argv, "--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: any(".partial." in p.name for p in out.iterdir()), run)
    time.sleep(rng.uniform(0, 0.1))
    run.kill()
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL

    done = subprocess.run([*argv, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not _leftovers(out)
    assert sorted(p.name for p in out.iterdir()) == ["first", "second", "third"]
    assert all(_complete(out / name) for name in ["first", "second", "third"])
    assert f"{clips[0]}: up to date" in done.stdout  # made from the same input and options: not redone
    assert (out / "first" / "manifest.json").stat().st_mtime_ns == first_made

    # a changed option redoes them all; a damaged output file is redone
    (out / "second" / "poses.npz").write_bytes(b"damaged")
    done = subprocess.run([*argv, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and f"{clips[0]}: up to date" in done.stdout
    assert f"{clips[1]}: up to date" not in done.stdout and _complete(out / "second")
    done = subprocess.run([*argv, "--resume", "--no-refine"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "up to date" not in done.stdout


def test_written_files_follow_the_umask(tmp_path):
    """Files get the mode any file the user makes gets, also where a library replaces the temporary file with its
    own (safetensors writes 0600 files)."""
    from wildpose.lift.weights import _read_tensors, default_model_path, read_config, save_lifter

    shipped = default_model_path()
    previous = os.umask(0o027)
    try:
        path = save_lifter(tmp_path / "mine.safetensors", _read_tensors(shipped), read_config(shipped))
    finally:
        os.umask(previous)
    for written in (path, path.with_suffix(".json")):
        assert oct(written.stat().st_mode & 0o777) == oct(0o640), written.name
