"""The `wildpose` command: argument parsing, progress bars and exit codes over the Python API; no logic of its own.

Exit codes (README, "Exit codes"): 0 every input succeeded (or was already up to date with --resume); 1 at least
one input failed (each failure is one line on stderr naming the file, and the other inputs are still processed);
2 the command line or a file it names as an option (--lifter) is wrong, so nothing was processed; 3 an internal
error outside any one input (a bug: please report it, with -v); 130 interrupted (Ctrl-C, SIGINT); 143 terminated
(SIGTERM). An interrupted or terminated run leaves no partial output: re-run it with --resume.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from . import __version__
from .detect2d.presets import DEFAULT_PRESET, PRESETS
from .errors import UsageError, WildposeError

if TYPE_CHECKING:
    from .pipeline import RunOptions

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system, a container stopping): unwound like Ctrl-C, so partial outputs are removed."""


@contextlib.contextmanager
def _sigterm_unwinds():
    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (the CLI called from a thread): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _progress_bar(desc: str, enabled: bool):
    """A tqdm bar driven by the library's progress(done, total) callback."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="frame", disable=not enabled, leave=False, dynamic_ncols=True)

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = max(total, done)
        bar.update(done - bar.n)

    return bar, update


def _for_each(paths: Sequence[Path], work: Callable[[Path], str | None], quiet: bool) -> int:
    """Run ``work`` on each path; one line per failure on stderr; the batch goes on past bad files."""
    failed = 0
    for done, path in enumerate(paths):
        try:
            line = work(path)
            if line and not quiet:
                print(line, flush=True)
        except WildposeError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr, flush=True)
        except KeyboardInterrupt as exc:
            how = "terminated" if isinstance(exc, Terminated) else "interrupted"
            print(f"error: {path}: {how}; {done - failed} of {len(paths)} inputs done before it (re-run with "
                  "--resume to go on)", file=sys.stderr, flush=True)
            return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        except Exception as exc:  # a bug, not bad input: still one line, and the batch goes on
            failed += 1
            logging.getLogger("wildpose").debug("traceback", exc_info=True)
            print(f"error: {path}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    if len(paths) > 1 and not quiet:
        print(f"{len(paths) - failed} of {len(paths)} inputs done" + (f", {failed} failed" if failed else ""))
    return EXIT_FAILED if failed else EXIT_OK


def _options(args) -> "RunOptions":
    from .pipeline import RunOptions

    detector_options = {}
    if getattr(args, "input_size", None):
        detector_options["input_size"] = args.input_size
    return RunOptions(start=getattr(args, "start", None), end=getattr(args, "end", None), detector_options=detector_options,
                      preset=getattr(args, "preset", None) or DEFAULT_PRESET,
                      max_people=getattr(args, "max_people", None), single=getattr(args, "single", False),
                      focal_length=_focal(args), fov=getattr(args, "fov", None),
                      distortion=getattr(args, "distortion", None), fisheye=getattr(args, "fisheye", None),
                      lifter=getattr(args, "lifter", None),
                      flip=not getattr(args, "no_flip", False), refine=not getattr(args, "no_refine", False),
                      render=getattr(args, "render", False),
                      export_vp3d=getattr(args, "export_vp3d", False),
                      export=getattr(args, "export", None) or (),
                      static_camera=getattr(args, "static_camera", False), fps=getattr(args, "fps", None),
                      link_max_gap=getattr(args, "link_max_gap", None))


def _focal(args) -> float | None:
    if getattr(args, "focal", None) is not None:
        return args.focal
    return None


def _camera(args, image_size):
    from .camera import CameraIntrinsics

    return CameraIntrinsics.parse_cli(image_size, focal=args.focal, fov=args.fov, distortion=args.distortion,
                                      fisheye=args.fisheye)


def _detector(args):
    from .pipeline import make_detector

    return make_detector(_options(args))


def cmd_run(args) -> int:
    from .atomic import remove_stale_partials
    from .lift import load_lifter
    from .pipeline import find_videos, output_dirs, run_video

    options = _options(args)
    videos = find_videos(args.inputs, args.glob)
    if not videos:
        print("error: no input videos found", file=sys.stderr)
        return EXIT_FAILED
    out_dirs = dict(zip(videos, output_dirs(videos, args.output)))
    for path, out_dir in out_dirs.items():
        if out_dir.name != path.stem and not args.quiet:
            print(f"note: {path}: another input shares the name {path.stem!r}: its output is {out_dir}/",
                  file=sys.stderr)
    for stale in remove_stale_partials(args.output):
        logging.getLogger("wildpose").info("removed %s, left by a run that was killed", stale)
    if args.ray is not None:
        return _run_on_ray(args, options, videos, [out_dirs[v] for v in videos])
    detector, model = _detector(args), load_lifter(options.lifter)

    def work(path: Path) -> str:
        bar, update = _progress_bar(path.name, not args.quiet and sys.stderr.isatty())
        rbar, rupdate = _progress_bar(f"{path.name} render", not args.quiet and sys.stderr.isatty())
        try:
            s = run_video(path, args.output, options, detector=detector, model=model, progress=update,
                          render_progress=rupdate, out_dir=out_dirs[path], resume=args.resume)
        finally:
            bar.close()
            rbar.close()
        return _summary_line(path, s)

    return _for_each(videos, work, args.quiet)


def _summary_line(path, s) -> str:
    """The line `run` prints for a finished (or skipped) input."""
    if s.skipped:
        return f"{path}: up to date -> {s.out_dir}/ (skipped)"
    repaired = []
    if s.damaged_frames:
        repaired.append(f"{s.damaged_frames} damaged frame{'s' if s.damaged_frames > 1 else ''} left out")
    if s.retimed_frames:
        repaired.append(f"{s.retimed_frames} frames timed by the frame rate")
    return (f"{path}: {s.frames} frame{'' if s.frames == 1 else 's'}, {s.people} {'person' if s.people == 1 else 'people'}, "
            f"{s.fps:.1f} frames/s -> {s.out_dir}/ ({', '.join(s.files)})"
            + (f"; {', '.join(repaired)}" if repaired else ""))


def _run_on_ray(args, options, videos: list[Path], out_dirs: list[Path]) -> int:
    """`run --ray`: the batch on a Ray cluster, one aggregated progress bar, the local run's lines and exit codes."""
    from tqdm import tqdm

    from .distributed.ray_runner import RayConfig, run_batch

    config = RayConfig(address=args.ray or None, workers=args.workers, threads=args.threads or 1,
                       segment_seconds=args.segment_seconds or RayConfig.segment_seconds,
                       log_to_driver=args.verbose)
    bar = tqdm(desc="videos 0/%d" % len(videos), unit="frame", disable=args.quiet or not sys.stderr.isatty(),
               leave=False, dynamic_ncols=True)
    failed = [0]

    def on_outcome(outcome) -> None:
        if outcome.error is not None:
            failed[0] += 1
            bar.write(f"error: {outcome.error}", file=sys.stderr)
        elif not args.quiet:
            bar.write(_summary_line(outcome.path, outcome.summary), file=sys.stdout)

    def progress(p) -> None:
        bar.set_description(f"videos {p.videos_done}/{p.videos_total}, {len(p.busy)} tasks running", refresh=False)
        if p.frames_total and bar.total != max(p.frames_total, p.frames_done):
            bar.total = max(p.frames_total, p.frames_done)
        bar.update(p.frames_done - bar.n)

    try:
        outcomes = run_batch(videos, args.output, options, config, out_dirs=out_dirs, resume=args.resume,
                             on_outcome=on_outcome, progress=progress)
    except KeyboardInterrupt as exc:
        bar.close()
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"error: {how}; the tasks were stopped (re-run with --resume to go on)", file=sys.stderr, flush=True)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    bar.close()
    if len(videos) > 1 and not args.quiet:
        print(f"{len(outcomes) - failed[0]} of {len(videos)} inputs done" + (f", {failed[0]} failed" if failed[0] else ""))
    return EXIT_FAILED if failed[0] else EXIT_OK


def cmd_detect(args) -> int:
    from .formats.keypoints import save_tracks
    from .formats.reference import write_detectron_npz
    from .pipeline import detect_video, find_videos, track_video

    options = _options(args)
    videos = find_videos(args.inputs, args.glob)
    names: dict[str, Path] = {}
    for path in videos:  # the file name is the reference dataset's entry: two inputs may not share one
        other = names.setdefault(path.name.casefold(), path)
        if other is not path:
            raise UsageError(f"{other} and {path} would both write {Path(args.output) / (path.name + '.npz')}: "
                             "rename one, or run them into different output folders")
    detector = _detector(args)

    def work(path: Path) -> str:
        t0 = time.perf_counter()
        bar, update = _progress_bar(path.name, not args.quiet and sys.stderr.isatty())
        try:
            people, timestamps, info = detect_video(path, detector, start=args.start, end=args.end, progress=update,
                                                    fps=options.fps)
        finally:
            bar.close()
        # named like the reference's infer_video_d2.py output (<video file name>.npz), so that the dataset's
        # entry is the video's file name, as the reference's --viz-subject expects
        out = Path(args.output) / f"{path.name}.npz"
        if args.format == "detectron":
            write_detectron_npz(out, people, info.width, info.height)
            what = f"{sum(len(p) for p in people)} detections"
        else:
            tracks = track_video(people, timestamps, options, path, info.image_size)
            save_tracks(tracks, info.fps, info.image_size, out)
            what = f"{len(tracks)} tracks"
        return f"{path}: {len(people)} frames, {what}, {len(people) / (time.perf_counter() - t0):.1f} frames/s -> {out}"

    return _for_each(videos, work, args.quiet)


def _read_2d(path: Path, reference_fps: float = 50.0):
    """Any 2D file we accept -> list of (name, Tracks, fps, image_size).

    The reference's files do not store a frame rate; ``reference_fps`` is used for them (its default, 50, is
    the reference's own assumption).
    """
    import numpy as np

    from .formats.keypoints import load_tracks
    from .formats.reference import read_custom_dataset, read_detectron_npz

    from .errors import FormatError

    name = path.name[:-4] if path.name.endswith(".npz") else path.stem
    try:
        tracks, fps, size = load_tracks(path)
        return [(name, tracks, fps, size)]
    except FormatError:
        pass
    names = _npz_names(path)
    if "positions_2d" in names:  # the reference's data_2d_custom_NAME.npz: one single-person track per video
        positions, metadata = read_custom_dataset(path)
        out = []
        for name, xy in positions.items():
            meta = metadata.get("video_metadata", {}).get(name, {})
            size = (int(meta.get("w", 0)), int(meta.get("h", 0)))
            if min(size) <= 0:
                raise FormatError(f"no image size for video {name!r} in metadata", path)
            out.append((name, _one_track(xy, reference_fps), reference_fps, size))
        return out
    if "keypoints" in names and "boxes" in names:  # the reference's Detectron output: per-frame detections
        from .formats.reference import fill_single_track

        people, metadata = read_detectron_npz(path)
        xy = fill_single_track(people)
        return [(name, _one_track(xy, reference_fps), reference_fps, (int(metadata["w"]), int(metadata["h"])))]
    raise FormatError("not a 2D keypoints file wildpose knows (wildpose detect, Detectron npz or custom dataset)",
                      path)


def _one_track(xy, fps: float):
    """The reference's one person per video, (T, 17, 2) pixels on every frame -> Tracks (score 1)."""
    import numpy as np

    from .types import Tracks

    T = len(xy)
    kp = np.concatenate([np.asarray(xy, np.float32), np.ones((T, 17, 1), np.float32)], -1)
    return Tracks(np.array([1]), np.array([T]), np.arange(T), np.arange(T) / fps, kp, np.zeros(T, bool))


def _npz_names(path: Path) -> list[str]:
    import zipfile

    from .errors import FormatError

    try:
        with zipfile.ZipFile(path) as z:
            return [n[:-4] if n.endswith(".npy") else n for n in z.namelist()]
    except FileNotFoundError:
        raise FormatError("no such file", path) from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise FormatError(f"not an .npz file ({exc})", path) from None


def cmd_lift(args) -> int:
    from .formats.result import save_result
    from .lift import load_lifter
    from .pipeline import lift_tracks
    from .types import Result

    model = load_lifter(args.lifter)

    def work(path: Path) -> str:
        lines = []
        for name, tracks, fps, size in _read_2d(path, args.fps or 50.0):
            poses = lift_tracks(tracks, size, fps, _camera(args, size), model=model, flip=not args.no_flip,
                                path=path, refine=not args.no_refine)
            result = Result.from_tracks(tracks, poses, fps, size)
            out = Path(args.output) / Path(name).stem / "poses.npz"  # walk.mp4 -> walk/, as `run` names it
            save_result(result, out)
            lines.append(f"{path}: {name}: {len(tracks)} tracks, {tracks.num_frames} frames -> {out}")
        return "\n".join(lines)

    return _for_each([Path(p) for p in args.inputs], work, args.quiet)


def cmd_dataset(args) -> int:
    import numpy as np

    from .errors import FormatError
    from .formats.reference import write_custom_dataset

    positions, metadata = {}, {}
    paths = [Path(p) for p in args.inputs]
    expanded = []
    for p in paths:
        expanded.extend(sorted(p.glob("*.npz")) if p.is_dir() else [p])

    def work(path: Path) -> str:
        for name, tracks, fps, size in _read_2d(path, args.fps or 50.0):
            if tracks.num_rows == 0:
                raise FormatError(f"video {name!r} has no keypoints", path)
            p = tracks.main_track  # the reference keeps one person per video
            idx = tracks.frames(p)
            # the track's span, every frame of it (a file with holes in a track: filled with the nearest row)
            kp = tracks.keypoints_2d[tracks.nearest_rows(p, np.arange(idx[0], idx[-1] + 1)), :, :2]
            positions[name] = np.ascontiguousarray(kp, np.float32)
            metadata[name] = {"w": int(size[0]), "h": int(size[1])}
        return f"{path}: added {name}"

    code = _for_each(expanded, work, args.quiet)
    if not positions:
        if code == EXIT_OK:  # (where inputs failed, their lines said why)
            print("error: no 2D keypoints to write", file=sys.stderr)
        return EXIT_FAILED
    out = Path(args.output)
    write_custom_dataset(out, positions, metadata)
    if not args.quiet:
        print(f"wrote {out} ({len(positions)} videos)")
    return code


def cmd_render(args) -> int:
    from .formats.result import load_result
    from .render import render_video

    def work(_: Path) -> str:
        result_path = Path(args.result)
        if result_path.is_dir():
            result_path = result_path / "poses.npz"
        result = load_result(result_path)
        out = Path(args.output)
        bar, update = _progress_bar("render", not args.quiet and sys.stderr.isatty())
        try:
            n = render_video(args.video, result, out, start=args.start, end=args.end, progress=update)
        finally:
            bar.close()
        return f"{args.video}: rendered {n} frames -> {out}"

    return _for_each([Path(args.video)], work, args.quiet)


def _results(inputs: Sequence[str], output: str | None) -> list[tuple[Path, Path, str]]:
    """Result folders (or their poses.npz) -> (poses.npz, folder to write into, file stem) each. The stem is the
    result folder's name (the video's stem, as ``run`` names it); two inputs that would write the same files are
    refused before anything is written."""
    from .errors import UsageError

    found, seen = [], {}
    for item in inputs:
        path = Path(item)
        npz = path / "poses.npz" if path.is_dir() else path
        folder = npz.parent
        stem = folder.name if npz.name == "poses.npz" else npz.stem
        out = Path(output) if output else folder
        key = (out.resolve(), stem)
        if key in seen:
            raise UsageError(f"{item} and {seen[key]} would both write {out / stem}.*: give them different -o folders")
        seen[key] = item
        found.append((npz, out, stem))
    return found


def cmd_export(args) -> int:
    from .export import export_result, parse_formats
    from .formats.result import load_result

    formats = parse_formats(args.format)
    jobs = {npz: (out, stem) for npz, out, stem in _results(args.inputs, args.output)}

    def work(npz: Path) -> str:
        out, stem = jobs[npz]
        files = export_result(load_result(npz), out, formats, stem=stem)
        return f"{npz}: -> {out}/ ({', '.join(p.name for p in files) or 'nothing: no tracks'})"

    return _for_each(list(jobs), work, args.quiet)


def cmd_plot(args) -> int:
    from .formats.result import load_result
    from .plots import plot_result

    jobs = {npz: (out, stem) for npz, out, stem in _results(args.inputs, args.output)}

    def work(npz: Path) -> str:
        out, stem = jobs[npz]
        files = plot_result(load_result(npz), out, stem, max_tracks=args.max_tracks)
        return f"{npz}: -> {out}/ ({', '.join(p.name for p in files)})"

    return _for_each(list(jobs), work, args.quiet)


def cmd_view(args) -> int:
    from .viewer import view_result_dir

    def work(folder: Path) -> str:
        page = view_result_dir(folder, args.output, video=args.video)
        return f"{folder}: -> {page} (open it in a browser; it needs no network)"

    return _for_each([Path(args.result)], work, args.quiet)


def cmd_convert(args) -> int:
    from .lift.convert import convert_checkpoint

    def work(path: Path) -> str:
        convert_checkpoint(path, args.output, fps=args.fps)
        return f"{path}: converted -> {args.output}"

    return _for_each([Path(args.checkpoint)], work, args.quiet)


def cmd_train(args) -> int:
    from .lift.train.commands import (TORCH_MISSING, command_line, make_sources, parse_overrides, torch_available,
                                      train_from_config)

    if not torch_available():
        print(f"error: {TORCH_MISSING}", file=sys.stderr)
        return EXIT_FAILED
    try:
        sources = None
        if args.mocap or args.h36m or args.mapping:
            sources = make_sources(args.mocap, args.h36m, args.mapping)
        summary = train_from_config(args.config, sources, name=args.name, runs=args.runs, steps=args.steps,
                                    seconds=args.seconds, threads=args.threads, ship=args.ship,
                                    overrides=parse_overrides(args.set), command=command_line(args),
                                    resume=args.resume)
    except (WildposeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        best = (f"MPJPE {summary['best_val_mpjpe_mm']:.1f} mm" if "best_val_mpjpe_mm" in summary
                else f"loss {summary.get('best_val_loss', float('nan')):.3g}")
        print(f"{args.config}: {summary['steps']} steps in {summary['seconds']:.0f} s, best validation {best} -> "
              f"{summary.get('shipped', summary['weights'])} (log: {summary['run_dir']}/log.csv)")
    return EXIT_OK


def cmd_ensemble(args) -> int:
    from .lift.weights import combine_lifters

    def work(out: Path) -> str:
        path = combine_lifters(args.models, out, {"command": "wildpose ensemble " + " ".join(
            [*args.models, "-o", str(out)])})
        return f"{out}: the mean of {len(args.models)} lifters -> {path}"

    if len(args.models) < 2:
        print("error: ensemble: give two models or more", file=sys.stderr)
        return EXIT_FAILED
    return _for_each([Path(args.output)], work, args.quiet)


def cmd_eval(args) -> int:
    import json

    from .lift.train.commands import evaluate_models, format_scores, make_sources, split_groups

    try:
        sources = make_sources(args.mocap, args.h36m, args.mapping)
        if args.by_group:  # one evaluation per group: the listed ones, else every group of the split
            selections = [[g] for g in (args.groups or split_groups(sources, args.split))]
        else:
            selections = [args.groups]
        results = [evaluate_models(sources, args.split, args.noisy, args.model,
                                   False if args.no_trajectory else args.trajectory, args.max_clips,
                                   args.max_segments, args.cache, groups=groups, refine=not args.no_refine,
                                   unknown_focal=args.unknown_focal)
                   for groups in selections]
    except WildposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(results if args.by_group else results[0], indent=2))
    else:
        print("\n\n".join(format_scores(res, args.per_joint) for res in results))
    return EXIT_OK


def cmd_live(args) -> int:
    from .live import FAST, LiveOptions, run_live

    if args.distortion or args.fisheye:
        print("error: live takes a pinhole camera only (--focal or --fov), not --distortion/--fisheye",
              file=sys.stderr)
        return EXIT_USAGE
    fast = FAST if args.fast else {}
    options = LiveOptions(lifter=args.lifter, flip=not args.no_flip, refine=not args.no_refine,
                          input_size=args.input_size or fast.get("input_size"),
                          crop_pass=fast.get("crop_pass", True), focal_length=args.focal, fov=args.fov,
                          min_frames=args.min_frames)
    try:
        summary = run_live(args.source, options, output=args.output, realtime=args.realtime, queue_size=args.queue,
                           drop=False if args.no_drop else None, max_latency=args.max_latency,
                           reconnects=args.reconnects, render=args.render, serve_port=args.serve,
                           max_frames=args.max_frames)
    except WildposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        print(summary.line(), file=sys.stderr)
    if summary.interrupted:
        return 130
    return EXIT_FAILED if summary.error and summary.frames == 0 else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wildpose", description="Videos of people in, tracked 3D human motion out (offline, CPU).",
        epilog="Exit codes: 0 every input done, 1 some input failed (one line each on stderr), 2 bad command line "
               "or option file, 3 internal error, 130 interrupted, 143 terminated.")
    parser.add_argument("--version", action="version", version=f"wildpose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what each stage does")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, outputs: str):
        p.add_argument("-o", "--output", required=True, help=outputs)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")

    def videos(p):
        p.add_argument("inputs", nargs="+", help="video files, images, or folders (a folder of only images is one "
                                                 "sequence, in name order)")
        p.add_argument("--glob", help="pattern for files inside folders (default: every file)")
        p.add_argument("--fps", type=_positive_float, help="frame rate of images and image folders (default 30)")
        p.add_argument("--start", type=float, help="seconds: process from here")
        p.add_argument("--end", type=float, help="seconds: process up to here")
        p.add_argument("--input-size", type=int, help="MoveNet input's longer side in pixels (multiple of 32)")
        p.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULT_PRESET,
                       help="2D speed against quality: 'balanced' (the default) searches the whole frame on key frames "
                            "and follows people in between; 'accurate' searches every frame (about 1.5x slower on one "
                            "person, 3x in a crowd); 'fast' searches less often and looks at people smaller "
                            "(docs/DETECTION.md)")
        p.add_argument("--max-people", type=int, help="keep the N people seen in the most frames")
        p.add_argument("--single", action="store_true",
                       help="the reference's behaviour: one person, the top-scoring one in each frame")
        p.add_argument("--link-max-gap", type=float, metavar="SECONDS",
                       help="join a person's track pieces across gaps up to this long (default 3; 0: off, the "
                            "online tracker's ids; off by default with --lifter causal); docs/TRACKING.md")

    def lifting(p):
        camera = p.add_mutually_exclusive_group()
        camera.add_argument("--focal", type=float,
                            help="focal length in pixels, if known (default: 60 degree field of view)")
        camera.add_argument("--fov", type=float, help="or: horizontal field of view in degrees across the longer side")
        lens = p.add_mutually_exclusive_group()
        lens.add_argument("--distortion", metavar="K1,K2,P1,P2[,K3[,K4,K5,K6]]",
                          help="the lens's OpenCV coefficients, e.g. --distortion=-0.3,0.1,0,0 "
                               "(needs --focal or --fov)")
        lens.add_argument("--fisheye", metavar="K1,K2,K3,K4",
                          help="the lens's OpenCV fisheye coefficients, e.g. --fisheye=0.05,-0.01,0,0 (needs --focal)")
        p.add_argument("--lifter", help="a lifter .safetensors, or 'causal' for the shipped causal (streaming) "
                                        "lifter (default: the shipped symmetric model)")
        p.add_argument("--no-flip", action="store_true", help="skip test-time flip averaging (faster, less accurate)")
        p.add_argument("--no-refine", action="store_true",
                       help="keep the network's raw poses: skip pulling them onto the keypoints' rays and steady "
                            "bone lengths (less accurate on held-out mocap; docs/MODEL.md)")

    p = sub.add_parser("run", help="videos -> tracked 3D people (poses.npz), optional render and reference export")
    common(p, "output folder: one subfolder per video")
    videos(p)
    lifting(p)
    p.add_argument("--resume", action="store_true",
                   help="skip inputs whose output folder is complete and was made from the same input and options "
                        "(its manifest.json); redo the rest")
    p.add_argument("--static-camera", action="store_true",
                   help="the camera does not turn: skip estimating its pan/tilt/roll from the background")
    p.add_argument("--render", action="store_true", help="also write render.mp4 (2D and 3D side by side)")
    p.add_argument("--export-vp3d", action="store_true",
                   help="also write <stem>.npy: the reference's (T, 17, 3) export of the main person")
    p.add_argument("--export", metavar="FORMATS",
                   help="also write these formats beside poses.npz, comma separated: bvh, gltf, c3d, trc, json, csv "
                        "or all (as `wildpose export`)")
    ray = p.add_argument_group("distributed (optional extra wildpose[ray]; docs/SCALING.md)")
    ray.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                     help="run the batch on Ray: one task per video, long videos split into segments; without "
                          "ADDRESS, a Ray instance on this machine (else e.g. auto, HOST:6379, ray://HOST:10001)")
    ray.add_argument("--workers", type=int, metavar="N",
                     help="with --ray and no ADDRESS: tasks at once (default: cores / threads)")
    ray.add_argument("--threads", type=int, metavar="N", help="with --ray: threads (CPUs) per task (default 1)")
    ray.add_argument("--segment-seconds", type=_positive_float, metavar="SECONDS",
                     help="with --ray: split videos longer than this into segments processed in parallel "
                          "(default 120)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("live", help="a camera, network stream or file -> 3D people as JSON lines, in real time "
                                    "(causal; docs/LIVE.md)")
    p.add_argument("source", help="/dev/videoN (v4l2), a URL FFmpeg reads (rtsp://, http://, tcp://, udp://) or a file")
    p.add_argument("-o", "--output", help="JSON lines file (complete when the run ends, Ctrl-C included; "
                                          "default: stdout)")
    p.add_argument("--realtime", action="store_true", help="a file: play it at its own frame rate, as a camera would")
    p.add_argument("--max-latency", type=float, metavar="SECONDS",
                   help="drop frames older than this when processing reaches them")
    p.add_argument("--queue", type=int, default=4, metavar="FRAMES",
                   help="frames held between decoding and processing; when full the oldest is dropped (default 4)")
    p.add_argument("--no-drop", action="store_true",
                   help="never drop: wait for processing instead (a network sender is slowed by TCP)")
    p.add_argument("--reconnects", type=int, default=3, help="network streams: reopen this often (default 3)")
    p.add_argument("--input-size", type=int, help="MoveNet input's longer side in pixels (multiple of 32; "
                                                  "smaller is faster)")
    p.add_argument("--fast", action="store_true",
                   help="the faster preset: MoveNet at 192 pixels without its crop pass (small people found less "
                        "well; docs/LIVE.md)")
    p.add_argument("--min-frames", type=int, default=1, help="report a person from their N-th frame (default 1)")
    p.add_argument("--max-frames", type=int, help="stop after N processed frames")
    p.add_argument("--render", metavar="FILE", help="also write the side-by-side render of the processed frames")
    p.add_argument("--serve", type=int, nargs="?", const=8765, metavar="PORT",
                   help="live 3D view on http://127.0.0.1:PORT/ (default 8765)")
    lifting(p)
    p.set_defaults(func=cmd_live, lifter="causal")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")

    p = sub.add_parser("export", help="result folders -> BVH, glTF, C3D, TRC, JSON, CSV (docs/OUTPUTS.md)")
    p.add_argument("inputs", nargs="+", help="result folders (written by run or lift) or their poses.npz")
    p.add_argument("-f", "--format", required=True, metavar="FORMATS",
                   help="comma separated: bvh, gltf, c3d, trc, json, csv, or all")
    p.add_argument("-o", "--output", help="folder to write into (default: each result's own folder)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summaries")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("view", help="a result folder -> one self-contained HTML page playing its people in 3D")
    p.add_argument("result", help="a result folder (written by run or lift)")
    p.add_argument("-o", "--output", help="the .html to write (default: RESULT/view.html)")
    p.add_argument("--video", help="the source video, played beside the 3D in sync (embedded when small, else "
                                   "linked by a path relative to the page)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("plot", help="result folders -> PNG figures: joint angles, trajectories, presence, quality")
    p.add_argument("inputs", nargs="+", help="result folders or their poses.npz")
    p.add_argument("-o", "--output", help="folder to write into (default: each result's own folder)")
    p.add_argument("--max-tracks", type=int, default=6,
                   help="tracks in the angle and quality figures: the N longest (default 6)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summaries")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("detect", help="videos -> 2D keypoints, one .npz per video")
    common(p, "output folder")
    videos(p)
    p.add_argument("--format", choices=("wildpose", "detectron"), default="wildpose",
                   help="wildpose: tracked people (no pickle); detectron: the reference's per-frame detections")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("dataset", help="2D .npz files -> the reference's data_2d_custom_NAME.npz")
    common(p, "the data_2d_custom_NAME.npz to write")
    p.add_argument("inputs", nargs="+", help="2D files (wildpose detect or Detectron .npz) or folders of them")
    p.add_argument("--fps", type=float, help="frame rate of Detectron inputs (they do not store it; default 50)")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("lift", help="2D .npz (wildpose detect, Detectron or custom dataset) -> poses.npz")
    common(p, "output folder: one subfolder per video")
    p.add_argument("inputs", nargs="+", help="2D .npz files")
    p.add_argument("--fps", type=float, help="frame rate of reference-format inputs (they do not store it; default 50)")
    lifting(p)
    p.set_defaults(func=cmd_lift)

    p = sub.add_parser("render", help="draw a result over its video, with a 3D view beside it")
    common(p, "the .mp4 to write")
    p.add_argument("result", help="a result folder or its poses.npz")
    p.add_argument("video", help="the video the result came from")
    p.add_argument("--start", type=float, help="seconds (as given to run)")
    p.add_argument("--end", type=float, help="seconds (as given to run)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("convert-checkpoint", help="the reference's .bin checkpoint -> our .safetensors (needs torch)")
    p.add_argument("checkpoint")
    p.add_argument("output", help="the .safetensors to write (a .json config is written beside it)")
    p.add_argument("--fps", type=float, default=50.0, help="frame rate the checkpoint was trained at (default 50)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_convert)

    def data(p):
        p.add_argument("--mocap", action="append", metavar="DIR",
                       help="a folder of BVH files (repeatable; default: the config's, else the shared CMU mocap)")
        p.add_argument("--h36m", action="append", metavar="NPZ",
                       help="the reference's data_3d_h36m.npz (subjects become groups h36m:S1 ...)")
        p.add_argument("--mapping", action="append", metavar="MAP.json",
                       help="joint-name mapping for the BVH files, or a shipped one: daz57, cc141, asf38, deepmimic15, "
                            "max31 (repeatable: each file takes the first that fits; default: detect the shared rigs)")

    p = sub.add_parser("train", help="train a lifter (or trajectory model) from a config (needs torch)")
    p.add_argument("--config", required=True, help="training config, e.g. configs/lifter.json")
    data(p)
    p.add_argument("--name", help="run name (default: the config's); output in RUNS/NAME/")
    p.add_argument("--runs", default="runs", help="folder for runs (default: ./runs)")
    p.add_argument("--steps", type=int, help="replace the config's step count")
    p.add_argument("--seconds", type=float, help="train for this wall time instead")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="replace a config key, e.g. --set channels=128 --set augment.limb_rotation_sd=15")
    p.add_argument("--ship", metavar="PATH", help="also copy the best weights to PATH.safetensors + PATH.json")
    p.add_argument("--resume", action="store_true",
                   help="continue RUNS/NAME from its checkpoint (written every 1000 steps and on Ctrl-C); "
                        "give the same config and options")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("ensemble", help="several lifters of one architecture -> one model averaging them")
    p.add_argument("models", nargs="+", help="lifter .safetensors files (their .json beside them)")
    p.add_argument("-o", "--output", required=True, help="the .safetensors to write (and its .json)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("eval", help="held-out 3D error of a lifter (and trajectory model) on mocap")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--noisy", action="store_true", help="also score with noisy and MoveNet-like 2D")
    p.add_argument("--model", help="a lifter .safetensors (default: the shipped one)")
    p.add_argument("--no-refine", action="store_true",
                   help="score the network's raw poses, without the test-time refinement `run` applies")
    p.add_argument("--unknown-focal", action="store_true",
                   help="normalise the 2D with the default field of view, not each camera's focal length "
                        "(as `run` without --focal/--fov)")
    traj = p.add_mutually_exclusive_group()
    traj.add_argument("--trajectory", help="a trajectory model .safetensors (default: the shipped one)")
    traj.add_argument("--no-trajectory", action="store_true", help="skip the root-position scores")
    data(p)
    p.add_argument("--groups", nargs="+", metavar="GROUP",
                   help="only these subject groups of the split, e.g. cmu:05 'martial:?' (default: all of it)")
    p.add_argument("--by-group", action="store_true",
                   help="one table (or JSON entry) per group; with --groups, per listed group")
    p.add_argument("--max-clips", type=int, help="only the first N clips (a quick check)")
    p.add_argument("--max-segments", type=int, help="only the first N 10-second segments per condition")
    p.add_argument("--cache", metavar="DIR", help="cache the mapped mocap here (faster reruns)")
    p.add_argument("--per-joint", action="store_true",
                   help="also each joint's MPJPE (the JSON always has them, as per_joint_mm)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "fisheye"):  # commands that lift: check the camera options before any file is read
        try:
            _camera(args, (1, 1))
        except ValueError as exc:
            parser.error(str(exc))
    # only commands with --ray (run) check this: train and eval have a --threads of their own
    if hasattr(args, "ray") and args.ray is None and any(getattr(args, k, None) is not None
                                                  for k in ("workers", "threads", "segment_seconds")):
        parser.error("--workers, --threads and --segment-seconds go with --ray")
    for name in ("workers", "threads"):
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            parser.error(f"--{name}: expected a whole number >= 1, got {getattr(args, name)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        with _sigterm_unwinds():
            return args.func(args)
    except UsageError as exc:  # a bad option value found by the library (an unknown export format, ...)
        parser.error(str(exc))
    except WildposeError as exc:  # a file named by an option (--lifter) is wrong: nothing was processed
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print("error: terminated" if isinstance(exc, Terminated) else "error: interrupted", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except Exception as exc:  # a bug outside any one input: one line (the traceback with -v)
        logging.getLogger("wildpose").debug("traceback", exc_info=True)
        print(f"error: internal error: {type(exc).__name__}: {exc} (please report it; -v shows the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
