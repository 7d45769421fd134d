"""Metrics: known values, invariances, and agreement with a direct reference computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from wildpose.lift.metrics import mpjpe, mpjve, n_mpjpe, p_mpjpe, procrustes_align


def _poses(n=5, j=17, seed=0):
    return np.random.default_rng(seed).normal(size=(n, j, 3)) * 0.3


def test_mpjpe_known_value():
    gt = np.zeros((2, 3, 3))
    pred = gt.copy()
    pred[..., 0] = 3.0
    pred[..., 1] = 4.0
    assert mpjpe(pred, gt) == pytest.approx(5.0)
    assert mpjpe(gt, gt) == 0.0


def test_p_mpjpe_removes_similarity_transform():
    gt = _poses()
    rot = Rotation.random(len(gt), random_state=1).as_matrix()
    pred = 1.7 * np.einsum("nij,nkj->nki", rot, gt) + np.array([0.3, -2.0, 5.0])
    assert mpjpe(pred, gt) > 0.1
    assert p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-9)


def test_p_mpjpe_does_not_reflect():
    gt = _poses(1)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, gt) > 0.05  # a reflection is not a rotation


def test_p_mpjpe_is_optimal_against_perturbed_rotations():
    gt, pred = _poses(1, seed=2), _poses(1, seed=3)
    best = p_mpjpe(pred, gt)
    aligned = procrustes_align(pred, gt)[0]
    sq = ((aligned - gt[0]) ** 2).sum()
    for k in range(20):
        r = Rotation.from_rotvec(np.random.default_rng(k).normal(size=3) * 0.05).as_matrix()
        c = aligned.mean(0)
        assert (((aligned - c) @ r.T + c - gt[0]) ** 2).sum() >= sq - 1e-12
    assert best <= mpjpe(pred, gt)


def test_n_mpjpe_removes_scale_only():
    gt = _poses()
    assert n_mpjpe(0.5 * gt, gt) == pytest.approx(0.0, abs=1e-12)
    rot = Rotation.from_euler("y", 30, degrees=True).as_matrix()
    assert n_mpjpe(gt @ rot.T, gt) > 0.01


def test_mpjve_constant_offset_is_zero_and_needs_two_frames():
    gt = _poses(10)
    assert mpjve(gt + 0.2, gt) == pytest.approx(0.0, abs=1e-12)
    assert mpjve(gt, gt[::-1].copy()) > 0
    with pytest.raises(ValueError):
        mpjve(gt[:1], gt[:1])


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shapes"):
        mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))
