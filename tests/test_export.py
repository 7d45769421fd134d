"""The row, C3D and TRC exporters, the plots and the export commands, on results of the real shared videos, read
back by independent clients: pandas, jsonschema, ezc3d and the `c3d` package, OpenSim itself."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from wildpose.cli import main
from wildpose.export import FORMATS, export_result, parse_formats
from wildpose.export.c3d import WORLD_TO_C3D, marker_names
from wildpose.export.rows import CSV_COLUMNS, CSV_DTYPES, SCHEMA_PATH
from wildpose.export.sampling import frame_times, is_uniform, resample, uniform_grid
from wildpose.formats.result import save_result
from wildpose.errors import UsageError
from wildpose.skeleton import H36M_NAMES


def _row_order(result):
    order, _ = result.by_frame()
    return order


@pytest.mark.parametrize("which", ["walk_result", "crowd_result"])
def test_csv_loads_in_pandas_with_the_documented_dtypes(which, request, tmp_path):
    import pandas as pd

    result = request.getfixturevalue(which)
    (path,) = export_result(result, tmp_path, "csv", stem="clip, one")  # a comma in the name is quoted
    table = pd.read_csv(path, dtype=CSV_DTYPES)
    assert tuple(table.columns) == CSV_COLUMNS
    assert len(table) == result.num_rows
    assert (table["video"] == "clip, one").all()
    order = _row_order(result)
    np.testing.assert_array_equal(table["frame"], result.frame_index[order])
    assert np.all(np.diff(table["frame"]) >= 0), "rows are in frame order"
    np.testing.assert_array_equal(table["track_id"], result.track_ids[result.row_track()][order])
    np.testing.assert_array_equal(table["interpolated"], result.interpolated[order])
    np.testing.assert_allclose(table["time"], result.timestamps[result.frame_index[order]], atol=1e-6)
    keypoints = table[[c for c in CSV_COLUMNS if c.endswith(("_x", "_y", "_score"))][:51]].to_numpy()
    np.testing.assert_allclose(keypoints.reshape(-1, 17, 3)[..., :2], result.keypoints_2d[order, :, :2], atol=0.006)
    np.testing.assert_allclose(keypoints.reshape(-1, 17, 3)[..., 2], result.keypoints_2d[order, :, 2], atol=6e-5)
    world = table[[f"world_{n}_{a}" for n in H36M_NAMES for a in "xyz"]].to_numpy().reshape(-1, 17, 3)
    np.testing.assert_allclose(world, result.poses_world[order], atol=6e-6)
    camera = table[[f"camera_{n}_{a}" for n in H36M_NAMES for a in "xyz"]].to_numpy().reshape(-1, 17, 3)
    np.testing.assert_allclose(camera, result.poses_3d_camera[order], atol=6e-6)


def test_json_validates_against_the_shipped_schema(crowd_result, tmp_path):
    import jsonschema

    (path,) = export_result(crowd_result, tmp_path, ["json"], stem="crowd")
    document = json.loads(path.read_text())
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validate(document, schema)
    assert document["fps"] == pytest.approx(crowd_result.fps)
    assert document["track_ids"] == crowd_result.track_ids.tolist()
    rows = document["rows"]
    assert len(rows) == crowd_result.num_rows
    order = _row_order(crowd_result)
    for i in (0, len(rows) // 2, len(rows) - 1):
        r = order[i]
        assert rows[i]["frame"] == crowd_result.frame_index[r]
        assert rows[i]["track_id"] == crowd_result.track_ids[crowd_result.row_track()[r]]
        np.testing.assert_allclose(rows[i]["joints_world"], crowd_result.poses_world[r], atol=6e-6)
        np.testing.assert_allclose(rows[i]["keypoints"], crowd_result.keypoints_2d[r], atol=6e-4)
    # a result without world coordinates (from `wildpose lift` of bare 2D, say) says null, and still validates
    bare = dataclasses.replace(crowd_result, poses_world=None, trajectory=None, camera=None)
    (path,) = export_result(bare, tmp_path, "json", stem="bare")
    document = json.loads(path.read_text())
    jsonschema.validate(document, schema)
    assert all(r["joints_world"] is None and r["joints_camera"] is None for r in document["rows"])
    # and the schema is not a formality: a row missing its joints is refused
    del document["rows"][0]["joints_world"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_c3d_read_back_by_ezc3d_and_by_the_c3d_package(crowd_result, tmp_path):
    import c3d as c3d_package
    import ezc3d

    result = crowd_result
    (path,) = export_result(result, tmp_path, "c3d", stem="crowd")
    c3d = ezc3d.c3d(str(path))
    point = c3d["parameters"]["POINT"]
    assert point["RATE"]["value"][0] == pytest.approx(result.fps)
    assert point["UNITS"]["value"] == ["mm"]
    labels = list(point["LABELS"]["value"]) + list(point.get("LABELS2", {"value": []})["value"])
    assert labels == marker_names(result.track_ids)
    assert len(labels) == 17 * len(result.track_ids) > 255  # the crowd needs the LABELS2 continuation
    points = c3d["data"]["points"]  # (4, markers, frames), mm, z up
    # this video drops a frame (one 2-period interval), so its frames are resampled on a uniform grid: the grid
    # samples that fall on a video frame (within 2 ms; its timestamps are rounded to 1 ms) carry that frame's pose
    grid = result.timestamps[0] + np.arange(points.shape[2]) / result.fps
    assert grid[-1] == pytest.approx(result.timestamps[-1], abs=2e-3)
    nearest = np.clip(np.searchsorted(result.timestamps, grid), 0, result.num_frames - 1)
    nearest = np.where(np.abs(result.timestamps[nearest - 1] - grid) < np.abs(result.timestamps[nearest] - grid),
                       nearest - 1, nearest)
    on_frame = np.abs(result.timestamps[nearest] - grid) < 2e-3
    assert on_frame.sum() == result.num_frames
    for p in range(len(result.track_ids)):
        expected = np.einsum("ij,kmj->imk", WORLD_TO_C3D, result.dense(result.poses_world, p)) * 1000
        got = points[:3, 17 * p:17 * (p + 1)][..., on_frame]
        present = np.zeros(result.num_frames, bool)
        present[result.frames(p)] = True
        np.testing.assert_allclose(got[..., present], expected[..., present], atol=1.0)
        assert np.isnan(got[..., ~present]).all(), "frames without the track are invalid points"
    # z up: every ankle near the floor, heads above them
    head = points[2, [17 * p + H36M_NAMES.index("head") for p in range(len(result.track_ids))]]
    assert np.nanmedian(head) > 1000
    # a second, independent reader: same rate, same first labels, invalid points flagged by a negative residual
    with open(path, "rb") as f:
        reader = c3d_package.Reader(f)
        assert reader.point_rate == pytest.approx(result.fps)
        assert [s.strip() for s in reader.point_labels] == labels[:255]
        frames = [points_ for _, points_, _ in reader.read_frames()]
    assert len(frames) == len(grid)
    p = int(np.argmin(result.track_lengths))  # a short track: absent from most frames
    present = np.zeros(result.num_frames, bool)
    present[result.frames(p)] = True
    residual = np.array([f[17 * p, 3] for f in frames])[on_frame]
    assert (residual[~present] < 0).all() and (residual[present] >= 0).all()
    t = result.frames(p)[0]
    np.testing.assert_allclose(np.array(frames)[on_frame][t][17 * p:17 * (p + 1), :3],
                               (WORLD_TO_C3D @ result.dense(result.poses_world, p)[t].T).T * 1000, atol=1.0)


def test_trc_loaded_by_opensim(walk_result, crowd_result, tmp_path):
    opensim = pytest.importorskip("opensim", reason="OpenSim (pip install opensim) reads TRC in this test")
    for result, stem in ((walk_result, "walk"), (crowd_result, "crowd")):
        files = export_result(result, tmp_path, "trc", stem=stem)
        assert [f.name for f in files] == [f"{stem}_track{int(t)}.trc" for t in result.track_ids]
        for p in (result.main_track, int(np.argmin(result.track_lengths))):
            table = opensim.TimeSeriesTableVec3(str(files[p]))
            assert list(table.getColumnLabels()) == list(H36M_NAMES)
            assert table.getTableMetaDataAsString("Units") == "mm"
            assert float(table.getTableMetaDataAsString("DataRate")) == pytest.approx(result.fps, rel=1e-5)
            frames = result.frames(p)
            assert table.getNumRows() == frames[-1] - frames[0] + 1
            times = np.array(table.getIndependentColumn())
            np.testing.assert_allclose(times, result.timestamps[frames[0]:frames[-1] + 1], atol=1e-6)
            got = np.array([[[table.getRowAtIndex(i)[j][k] for k in range(3)] for j in range(17)]
                            for i in range(table.getNumRows())])
            want = result.dense(result.poses_world, p)[frames[0]:frames[-1] + 1] * 1000
            np.testing.assert_allclose(got, want, atol=0.006)  # mm, y up as in the world


def test_variable_frame_rate_goes_on_a_uniform_grid(walk_result, tmp_path):
    import ezc3d

    rng = np.random.default_rng(3)
    # a phone's variable frame rate: intervals between 0.5 and 1.5 frame periods
    steps = rng.uniform(0.5, 1.5, walk_result.num_frames - 1) / walk_result.fps
    vfr = dataclasses.replace(walk_result, timestamps=np.concatenate([[0.2], 0.2 + np.cumsum(steps)]))
    assert is_uniform(walk_result.timestamps, walk_result.fps) and not is_uniform(vfr.timestamps, vfr.fps)
    times, own = frame_times(vfr, vfr.fps)
    assert not own and np.allclose(np.diff(times), 1 / vfr.fps) and times[0] == pytest.approx(0.2)
    (path,) = export_result(vfr, tmp_path, "c3d", stem="vfr")
    points = ezc3d.c3d(str(path))["data"]["points"]
    assert points.shape[2] == len(times)
    # each grid sample inside the track: the video frame it falls on (within a quarter period), else the linear
    # blend of the two frames around it
    world = vfr.dense(vfr.poses_world, 0)
    frames = vfr.frames(0)
    inside = np.flatnonzero((times >= vfr.timestamps[frames[0]]) & (times <= vfr.timestamps[frames[-1]]))
    blended = 0
    for k in inside:
        right = int(np.searchsorted(vfr.timestamps, times[k]))
        left = max(right - 1, 0)
        right = min(right, len(vfr.timestamps) - 1)
        gaps = np.abs(vfr.timestamps[[left, right]] - times[k])
        if gaps.min() <= 0.25 / vfr.fps:
            expected = world[[left, right][int(np.argmin(gaps))]]
        else:
            w = (times[k] - vfr.timestamps[left]) / (vfr.timestamps[right] - vfr.timestamps[left])
            expected = world[left] * (1 - w) + world[right] * w
            blended += 1
        np.testing.assert_allclose(points[:3, :17, k].T, expected @ WORLD_TO_C3D.T * 1000, atol=0.02)
    assert blended > len(inside) // 4, "the jitter puts many grid samples between frames"


def test_resample_keeps_gaps_and_edges():
    times = np.array([0.0, 1.0, 2.0, 3.0])
    values = np.array([0.0, 10.0, np.nan, 30.0])
    out = resample(times, values, np.array([-0.5, 0.0, 0.5, 1.5, 2.5, 3.0, 3.5]), snap=0.01)
    np.testing.assert_allclose(out, [np.nan, 0.0, 5.0, np.nan, np.nan, 30.0, np.nan])
    # a grid time a hair before a track's first sample takes that sample (timestamps rounded to 1 ms)
    out = resample(np.array([1.0, 1.033, 1.067]), np.array([np.nan, 2.0, 3.0]), np.array([1.0333, 1.0666]))
    np.testing.assert_allclose(out, [2.0, 3.0])
    np.testing.assert_allclose(uniform_grid(np.array([1.0, 1.04, 1.2]), 25.0), 1.0 + np.arange(6) / 25)


def test_plots_draw_every_figure(crowd_result, tmp_path):
    import matplotlib.image

    from wildpose.plots import joint_angles, plot_result

    files = plot_result(crowd_result, tmp_path, "crowd")
    assert [f.name for f in files] == ["crowd_angles.png", "crowd_trajectories.png", "crowd_presence.png",
                                       "crowd_quality.png"]
    for f in files:
        image = matplotlib.image.imread(f)
        assert image.shape[0] > 300 and image.shape[1] > 500
        assert image[..., :3].std() > 0.05, f"{f.name} looks blank"
    # angles: a straight leg is 0 degrees at the knee, a right angle 90; a standing trunk 0 at the hip
    pose = np.zeros((1, 17, 3))
    j = {n: i for i, n in enumerate(H36M_NAMES)}
    pose[0, j["spine"]] = [0, 0.3, 0]
    pose[0, j["left_hip"]], pose[0, j["left_knee"]], pose[0, j["left_ankle"]] = [0.1, 0, 0], [0.1, -0.4, 0], [0.1, -0.8, 0]
    pose[0, j["right_hip"]], pose[0, j["right_knee"]], pose[0, j["right_ankle"]] = [-0.1, 0, 0], [-0.1, -0.4, 0], [-0.1, -0.4, -0.4]
    angles = joint_angles(pose)
    assert angles["left knee"][0] == pytest.approx(0, abs=1e-6)
    assert angles["right knee"][0] == pytest.approx(90, abs=1e-6)
    assert angles["left hip"][0] == pytest.approx(0, abs=1e-6)


def test_export_and_plot_commands(walk_result, tmp_path, capfd):
    folder = tmp_path / "walk_single"
    save_result(walk_result, folder / "poses.npz")
    assert main(["export", str(folder), "--format", "csv,trc,c3d,json", "-q"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["poses.npz", "walk_single.c3d", "walk_single.csv",
                                                        "walk_single.json", "walk_single_track1.trc"]
    assert main(["view", str(folder), "-o", str(tmp_path / "page.html"), "-q"]) == 0
    assert (tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")  # the page itself: test_viewer.py
    assert main(["view", str(tmp_path / "no_such_result"), "-q"]) == 1
    assert main(["plot", str(folder / "poses.npz"), "-o", str(tmp_path / "figures"), "-q"]) == 0
    assert len(list((tmp_path / "figures").glob("walk_single_*.png"))) == 4
    # an unknown format is a usage error before anything is written
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(folder), "--format", "csv,fbx", "-o", str(tmp_path / "none")])
    assert exit_.value.code == 2 and not (tmp_path / "none").exists()
    assert "unknown export format 'fbx'" in capfd.readouterr().err
    # two results that would write the same files into one folder are refused, none is written
    other = tmp_path / "b" / "walk_single"
    save_result(walk_result, other / "poses.npz")
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(folder), str(other), "-f", "csv", "-o", str(tmp_path / "both")])
    assert exit_.value.code == 2 and not (tmp_path / "both").exists()
    # a bad result file fails in one line, and the batch goes on
    bad = tmp_path / "bad" / "poses.npz"
    bad.parent.mkdir()
    bad.write_bytes(b"not an npz")
    capfd.readouterr()
    assert main(["export", str(bad.parent), str(folder), "-f", "csv", "-o", str(tmp_path / "mixed")]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "Traceback" not in err[0]
    assert (tmp_path / "mixed" / "walk_single.csv").exists() and not (tmp_path / "mixed" / "bad.csv").exists()


def test_run_writes_the_exports_into_its_folder(walk_video, tmp_path):
    assert main(["run", str(walk_video), "--end", "3", "-o", str(tmp_path), "--export", "trc,csv", "-q"]) == 0
    names = sorted(p.name for p in (tmp_path / "walk_single").iterdir())
    # manifest.json records what made the folder, so that `--resume` can skip it later.
    assert names == ["manifest.json", "poses.npz", "walk_single.csv", "walk_single_track1.trc"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left"


def test_format_names():
    assert parse_formats("all") == list(FORMATS)
    assert parse_formats(" TRC,csv,trc ") == ["trc", "csv"]
    with pytest.raises(UsageError):
        parse_formats("bvh,obj")
