"""Tests for the adaptive ensemble: clustering, removal rule, cluster selection, descriptors, model directory.

Cheng et al. (2016), Algorithms 2 and 3 (`deepcolor.clustering`), the ensemble
model directory (`deepcolor.ensemble`), its training (`deepcolor.train`) and
its settings (`deepcolor.clustering.config.ClusterConfig`). Clustering is checked on
constructed, well-separated blobs with a fake per-layer training callback, so
every expected partition is known by construction.
"""

import inspect
import json
import math
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score

from deepcolor.clustering import (DESCRIPTORS, AdaptiveClustering, candidate_clusters, combine, gist_descriptor,
                                  histogram_distance, image_descriptors, kmeans_min_size, select_cluster,
                                  semantic_descriptor, well_colorized)
from deepcolor.color import yuv_to_rgb
from deepcolor.colorize import colorize_file
from deepcolor.clustering.config import ClusterConfig
from deepcolor.ensemble import Model, ModelError, _table_sha
from deepcolor.networks import ChromaNet
from deepcolor.train import sampled_psnr, train, train_ensemble

# =============================================================================
# Helpers
# =============================================================================


def _blobs(rng, sizes, centres, scale=0.2):
    """Gaussian blobs: X (sum sizes, D) float64 and the true blob label of each row."""
    centres = np.asarray(centres, np.float64)
    X = np.concatenate([c + scale * rng.standard_normal((n, len(c))) for n, c in zip(sizes, centres)])
    y = np.repeat(np.arange(len(sizes)), sizes)
    return X, y


def _assert_same_partition(labels, truth):
    """`labels` equals `truth` up to renumbering: ARI 1 and an explicit one-to-one map of labels."""
    labels, truth = np.asarray(labels), np.asarray(truth)
    assert adjusted_rand_score(truth, labels) == 1.0
    mapping = {}
    for t, l in zip(truth, labels):
        assert mapping.setdefault(t, l) == l, f"true blob {t} split over labels {mapping[t]} and {l}"
    assert len(set(mapping.values())) == len(mapping), f"two blobs share a label: {mapping}"


def _fake_fit_layer(psnr_by_layer, calls=None):
    """A `fit_layer` that 'trains' a dummy estimator per cluster and scores member i by psnr_by_layer[layer][i]."""

    def fit_layer(layer, members):
        if calls is not None:
            calls.append((layer, [np.array(m) for m in members]))
        table = np.asarray(psnr_by_layer[layer], np.float64)
        return [("net", layer, j) for j in range(len(members))], [table[m] for m in members]

    return fit_layer


def _constant_fit_layer(psnr=0.0):
    """A `fit_layer` that removes nothing (every image scored `psnr`, far below any useful threshold)."""

    def fit_layer(layer, members):
        return [object() for _ in members], [np.full(len(m), psnr) for m in members]

    return fit_layer


# Four blobs of 6 rows in 3-D, far apart (distance 20 between any two centres' axes).
FOUR_CENTRES = [[0, 0, 0], [20, 0, 0], [0, 20, 0], [0, 0, 20]]


# =============================================================================
# kmeans_min_size
# =============================================================================


def test_kmeans_min_size_recovers_separated_blobs(rng):
    X, truth = _blobs(rng, [9, 12, 10], [[0, 0], [15, 0], [0, 15]])
    labels, centers = kmeans_min_size(X, 3, 3)
    _assert_same_partition(labels, truth)
    assert centers.shape == (3, 2) and centers.dtype == np.float64
    for j in range(3):
        np.testing.assert_allclose(centers[j], X[labels == j].mean(axis=0), rtol=1e-12, atol=1e-12)


def test_kmeans_min_size_merges_small_cluster_into_nearest(rng):
    # Blobs A and B of 20 rows; a tiny far blob T of 2 rows, nearer to B than to A.
    X, truth = _blobs(rng, [20, 20, 2], [[0, 0], [10, 0], [40, 0]])
    labels, centers = kmeans_min_size(X, 3, 5)
    assert len(centers) == 2
    assert np.bincount(labels).min() >= 5
    # A alone; T merged into B
    _assert_same_partition(labels, np.where(truth == 2, 1, truth))
    for j in range(2):
        np.testing.assert_allclose(centers[j], X[labels == j].mean(axis=0), rtol=1e-12, atol=1e-12)


def test_kmeans_min_size_at_most_n_over_min_size_clusters(rng):
    X, _ = _blobs(rng, [3, 3, 3, 3], FOUR_CENTRES)
    labels, centers = kmeans_min_size(X, 10, 5)  # 12 rows, at least 5 per cluster: 2 clusters at most
    assert len(centers) <= 2
    assert np.bincount(labels).min() >= 5
    assert set(labels) == set(range(len(centers)))


def test_kmeans_min_size_identical_rows_one_cluster():
    X = np.ones((6, 3))
    labels, centers = kmeans_min_size(X, 3, 2)
    np.testing.assert_array_equal(labels, np.zeros(6, int))
    np.testing.assert_array_equal(centers, np.ones((1, 3)))


def test_kmeans_min_size_exception_empty():
    with pytest.raises(ValueError, match="cannot cluster an empty set"):
        kmeans_min_size(np.zeros((0, 3)), 2, 2)


# =============================================================================
# The removal rule
# =============================================================================


def test_well_colorized_boundary_included():
    psnr = np.array([25.0, 25.999, 26.0, 26.001, 40.0, -np.inf, np.inf])
    np.testing.assert_array_equal(well_colorized(psnr, -26.0), [False, False, True, True, True, False, True])


def test_well_colorized_is_minus_psnr_at_most_epsilon(rng):
    psnr = rng.uniform(10, 40, size=200)
    for eps in (-30.0, -26.0, -20.0, 5.0):
        np.testing.assert_array_equal(well_colorized(psnr, eps), -psnr <= eps)
    assert well_colorized(10.0, 5.0)  # a positive epsilon removes any PSNR >= -5
    assert not well_colorized(10.0, -10.5)


# =============================================================================
# AdaptiveClustering
# =============================================================================


def test_adaptive_clustering_layer0_recovers_blobs(rng):
    X, truth = _blobs(rng, [8, 10, 9], [[0, 0, 0, 0], [12, 0, 0, 0], [0, 0, 12, 0]])
    est = AdaptiveClustering(n_clusters=3, mu=4, epsilon=-26.0, max_layers=1).fit(X, _constant_fit_layer())
    assert est.n_layers_ == 1
    _assert_same_partition(est.labels_[0], truth)
    np.testing.assert_array_equal(est.cluster_layers_, [0, 0, 0])


@pytest.fixture
def four_blobs(rng):
    """24 rows: 4 blobs of 6, and per-layer PSNRs that remove blobs 2, 3, then 0, then one row of blob 1."""
    X, truth = _blobs(rng, [6, 6, 6, 6], FOUR_CENTRES)
    psnr0 = np.where(truth >= 2, 30.0, 20.0)
    psnr0[np.flatnonzero(truth == 2)[0]] = 26.0  # the boundary: removed
    psnr0[np.flatnonzero(truth == 0)[0]] = 25.999  # just below: kept
    psnr1 = np.where(truth == 0, 30.0, 20.0)
    psnr2 = np.full(len(X), 20.0)
    psnr2[np.flatnonzero(truth == 1)[0]] = 27.0
    return X, truth, [psnr0, psnr1, psnr2, np.full(len(X), 99.0)]


def test_adaptive_clustering_next_layer_holds_images_not_removed(four_blobs):
    X, truth, psnrs = four_blobs
    calls = []
    AdaptiveClustering(n_clusters=4, mu=6, epsilon=-26.0, max_layers=5).fit(X, _fake_fit_layer(psnrs, calls))
    layer0 = np.sort(np.concatenate(calls[0][1]))
    layer1 = np.sort(np.concatenate(calls[1][1]))
    np.testing.assert_array_equal(layer0, np.arange(24))
    np.testing.assert_array_equal(layer1, layer0[~well_colorized(psnrs[0][layer0], -26.0)])
    np.testing.assert_array_equal(layer1, np.flatnonzero(truth <= 1))


def test_adaptive_clustering_layer_has_left_over_mu_clusters(four_blobs):
    X, truth, psnrs = four_blobs
    calls = []
    est = AdaptiveClustering(n_clusters=4, mu=6, epsilon=-26.0, max_layers=5).fit(X, _fake_fit_layer(psnrs, calls))
    assert [layer for layer, _ in calls] == [0, 1, 2]
    assert [len(members) for _, members in calls] == [4, 12 // 6, 6 // 6]
    # layer 1: blobs 0 and 1, one cluster each; layer 2: blob 1
    _assert_same_partition(est.labels_[1][truth <= 1], truth[truth <= 1])
    np.testing.assert_array_equal(np.flatnonzero(est.labels_[2] >= 0), np.flatnonzero(truth == 1))
    np.testing.assert_array_equal(est.cluster_layers_, [0, 0, 0, 0, 1, 1, 2])


def test_adaptive_clustering_stops_below_mu_images(four_blobs):
    X, truth, psnrs = four_blobs
    # after layer 2 only 5 < mu = 6 images are left: no layer 3 although max_layers allows it
    est = AdaptiveClustering(n_clusters=4, mu=6, epsilon=-26.0, max_layers=5).fit(X, _fake_fit_layer(psnrs))
    assert est.n_layers_ == 3
    assert est.labels_.shape == est.psnr_.shape == (3, 24)


def test_adaptive_clustering_max_layers_bounds_depth(four_blobs):
    X, truth, psnrs = four_blobs
    est = AdaptiveClustering(n_clusters=4, mu=6, epsilon=-26.0, max_layers=2).fit(X, _fake_fit_layer(psnrs))
    assert est.n_layers_ == 2
    assert len(est.estimators_) == len(est.cluster_members_) == len(est.cluster_centers_) == 6
    # nothing ever removed: the layers repeat until max_layers
    est = AdaptiveClustering(n_clusters=2, mu=3, epsilon=-26.0, max_layers=3).fit(X, _constant_fit_layer())
    assert est.n_layers_ == 3
    assert est.labels_.shape == (3, 24) and np.all(est.labels_ >= 0)
    np.testing.assert_array_equal(np.unique(est.cluster_layers_), [0, 1, 2])
    assert np.all(np.diff(est.cluster_layers_) >= 0)


def test_adaptive_clustering_attributes_consistent(four_blobs):
    X, truth, psnrs = four_blobs
    est = AdaptiveClustering(n_clusters=4, mu=6, epsilon=-26.0, max_layers=5).fit(X, _fake_fit_layer(psnrs))
    for layer in range(est.n_layers_):
        present = est.labels_[layer] >= 0
        np.testing.assert_array_equal(np.isnan(est.psnr_[layer]), ~present)
        np.testing.assert_array_equal(est.labels_[layer][~present], -1)
        np.testing.assert_array_equal(est.psnr_[layer][present], psnrs[layer][present])
    for c, members in enumerate(est.cluster_members_):
        layer = est.cluster_layers_[c]
        np.testing.assert_array_equal(np.flatnonzero(est.labels_[layer] == c), np.sort(members))
        np.testing.assert_allclose(est.cluster_centers_[c], X[members].mean(axis=0), rtol=1e-12, atol=1e-12)
        assert est.estimators_[c][1] == layer
    # every image is in exactly one cluster of each layer it takes part in
    assert sum(len(m) for m in est.cluster_members_) == int((est.labels_ >= 0).sum())


def test_adaptive_clustering_every_cluster_at_least_mu(rng):
    # a big blob and a tiny far blob of fewer than mu rows: the tiny one joins its nearest cluster
    X, truth = _blobs(rng, [12, 12, 3], [[0, 0], [10, 0], [30, 0]])
    est = AdaptiveClustering(n_clusters=3, mu=5, epsilon=-26.0, max_layers=1).fit(X, _constant_fit_layer())
    assert min(len(m) for m in est.cluster_members_) >= 5
    assert len(est.cluster_members_) == 2
    _assert_same_partition(est.labels_[0], np.where(truth == 2, 1, truth))


def test_adaptive_clustering_predict_nearest_of_layer(four_blobs):
    X, truth, psnrs = four_blobs
    est = AdaptiveClustering(n_clusters=4, mu=6, epsilon=-26.0, max_layers=5).fit(X, _fake_fit_layer(psnrs))
    np.testing.assert_array_equal(est.predict(X, layer=0), est.labels_[0])
    got = est.predict(X, layer=1)
    assert set(got) <= set(np.flatnonzero(est.cluster_layers_ == 1))
    np.testing.assert_array_equal(got[truth <= 1], est.labels_[1][truth <= 1])


def test_adaptive_clustering_exception_predict_missing_layer(four_blobs):
    X, truth, psnrs = four_blobs
    est = AdaptiveClustering(n_clusters=4, mu=6, epsilon=-26.0, max_layers=1).fit(X, _fake_fit_layer(psnrs))
    with pytest.raises(ValueError, match=r"no layer 3: the model has 1 layer"):
        est.predict(X, layer=3)


@pytest.mark.parametrize("params, message", [
    ({"n_clusters": 0}, "n_clusters must be a positive int"),
    ({"n_clusters": True}, "n_clusters must be a positive int"),
    ({"max_layers": 2.0}, "max_layers must be a positive int"),
    ({"mu": 0}, "mu must be a positive int"),
    ({"mu": 1}, "mu must be at least 2"),
    ({"epsilon": float("nan")}, "epsilon must be a finite number"),
    ({"epsilon": -math.inf}, "epsilon must be a finite number"),
    ({"epsilon": "x"}, "epsilon must be a finite number"),
    ({"epsilon": None}, "epsilon must be a finite number"),
])
def test_adaptive_clustering_exception_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveClustering(**params).fit(np.arange(10.0).reshape(5, 2), _constant_fit_layer())


@pytest.mark.parametrize("X", [np.arange(5.0), np.zeros((1, 3))])
def test_adaptive_clustering_exception_x_shape(X):
    with pytest.raises(ValueError, match=r"X must be \(N, D\) with N >= 2"):
        AdaptiveClustering(n_clusters=2, mu=2).fit(X, _constant_fit_layer())


def test_adaptive_clustering_exception_fit_layer_count(four_blobs):
    X = four_blobs[0]

    def short(layer, members):
        return [object()] * (len(members) - 1), [np.zeros(len(m)) for m in members]

    with pytest.raises(ValueError, match=r"fit_layer returned 3 estimators and 4 scores for 4 clusters"):
        AdaptiveClustering(n_clusters=4, mu=6).fit(X, short)


def test_adaptive_clustering_exception_fit_layer_score_shape(four_blobs):
    X = four_blobs[0]

    def bad(layer, members):
        return [object() for _ in members], [np.zeros(len(m) + 1) for m in members]

    with pytest.raises(ValueError, match=r"fit_layer scored \(7,\) images of a cluster of 6"):
        AdaptiveClustering(n_clusters=4, mu=6).fit(X, bad)


# =============================================================================
# The selector
# =============================================================================

# Target at the origin; clusters A, B, C at distances 1, 2, 5 by global descriptor.
# A's images hold other things (histogram far); B and C hold the target's (equal histograms).
CENTRES = np.array([[1.0, 0.0], [0.0, 2.0], [-5.0, 0.0]])
TARGET_HIST = np.array([0.7, 0.3, 0.0])
HISTS = np.array([[0.1, 0.1, 0.8], [0.7, 0.3, 0.0], [0.7, 0.3, 0.0]])
LAYERS = np.array([0, 1, 0])


def test_candidate_clusters_nearest_first():
    got = candidate_clusters(np.zeros(2), CENTRES, LAYERS, 3, search="all")
    np.testing.assert_array_equal(got, [0, 1, 2])
    got = candidate_clusters(np.array([0.0, 3.0]), CENTRES, LAYERS, 3, search="all")  # distances 3.16, 1, 5.83
    np.testing.assert_array_equal(got, [1, 0, 2])
    got = candidate_clusters(np.array([-4.0, 0.0]), CENTRES, LAYERS, 3, search="all")  # distances 5, 4.47, 1
    np.testing.assert_array_equal(got, [2, 1, 0])
    np.testing.assert_array_equal(candidate_clusters(np.zeros(2), CENTRES, LAYERS, 2, search="all"), [0, 1])
    np.testing.assert_array_equal(candidate_clusters(np.zeros(2), CENTRES, LAYERS, 10, search="all"), [0, 1, 2])


def test_candidate_clusters_top_ignores_lower_layers():
    np.testing.assert_array_equal(candidate_clusters(np.zeros(2), CENTRES, LAYERS, 3, search="top"), [0, 2])
    # the nearest is in layer 1: "top" skips it
    np.testing.assert_array_equal(candidate_clusters(np.array([0.0, 2.0]), CENTRES, LAYERS, 1, search="top"), [0])


def test_select_cluster_one_candidate_is_global_nearest():
    chosen, candidates = select_cluster(np.zeros(2), TARGET_HIST, CENTRES, HISTS, LAYERS, n_candidates=1,
                                        search="all")
    assert chosen == 0
    np.testing.assert_array_equal(candidates, [0])


@pytest.mark.parametrize("distance", ["chi2", "hellinger", "l1"])
def test_select_cluster_semantic_match_among_candidates(distance):
    chosen, candidates = select_cluster(np.zeros(2), TARGET_HIST, CENTRES, HISTS, LAYERS, 2, distance, "all")
    assert chosen == 1
    np.testing.assert_array_equal(candidates, [0, 1])
    # B and C match equally: the nearer by global descriptor wins
    chosen, candidates = select_cluster(np.zeros(2), TARGET_HIST, CENTRES, HISTS, LAYERS, 3, distance, "all")
    assert chosen == 1
    np.testing.assert_array_equal(candidates, [0, 1, 2])


def test_select_cluster_top_ignores_lower_layers():
    chosen, candidates = select_cluster(np.zeros(2), TARGET_HIST, CENTRES, HISTS, LAYERS, 2, search="top")
    assert chosen == 2
    np.testing.assert_array_equal(candidates, [0, 2])


def test_histogram_distance_golden_values():
    h = np.array([0.5, 0.5, 0.0])
    g = np.array([[0.25, 0.75, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    # chi2: sum (a - b)^2 / (a + b), a zero bin in both counts 0
    chi2 = [0.25**2 / 0.75 + 0.25**2 / 1.25, 0.0, 0.5 + 0.5 + 1.0]
    hellinger = [math.sqrt((math.sqrt(0.5) - 0.5) ** 2 + (math.sqrt(0.5) - math.sqrt(0.75)) ** 2), 0.0,
                 math.sqrt(0.5 + 0.5 + 1.0)]
    l1 = [0.5, 0.0, 2.0]
    np.testing.assert_allclose(histogram_distance(h, g, "chi2"), chi2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(histogram_distance(h, g, "hellinger"), hellinger, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(histogram_distance(h, g, "l1"), l1, rtol=1e-12, atol=1e-15)
    assert histogram_distance(h, g).shape == (3,)
    np.testing.assert_allclose(histogram_distance(h, g[0], "chi2"), chi2[:1], rtol=1e-12)  # one row (K,)


def test_histogram_distance_chi2_weighs_rare_class_more_than_l2():
    # the same absolute change, once in a rare class and once in a common one
    h = np.array([0.02, 0.49, 0.49])
    rare = np.array([0.12, 0.44, 0.44])
    common = np.array([0.02, 0.59, 0.39])
    d = histogram_distance(h, np.stack([rare, common]), "chi2")
    assert d[0] > d[1]


def test_histogram_distance_exception_classes():
    with pytest.raises(ValueError, match="histograms of 3 and 2 classes cannot be compared"):
        histogram_distance(np.ones(3) / 3, np.ones((2, 2)) / 2)


def test_histogram_distance_exception_kind():
    with pytest.raises(ValueError, match=r"histogram distance must be one of .*got 'l2'"):
        histogram_distance(np.ones(3) / 3, np.ones((2, 3)) / 3, "l2")


def test_candidate_clusters_exception_length():
    with pytest.raises(ValueError, match="descriptor of length 3 against centres of length 2"):
        candidate_clusters(np.zeros(3), CENTRES, LAYERS, 2)


def test_candidate_clusters_exception_search():
    with pytest.raises(ValueError, match=r"search must be one of .*got 'bottom'"):
        candidate_clusters(np.zeros(2), CENTRES, LAYERS, 2, search="bottom")


# =============================================================================
# Descriptors
# =============================================================================


def _grating(axis, shape=(48, 48), period=6.0):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    t = rows if axis == "rows" else cols
    return (0.5 + 0.3 * np.sin(2 * np.pi * t / period)).astype(np.float32)


def _orientation_energy(d):
    """Sum of a gist descriptor over its cells and wavelengths: (6,), one per Gabor orientation."""
    return d.reshape(4, 4, 3, 6).sum(axis=(0, 1, 2))


def test_gist_descriptor_shape_dtype_unit_norm(rng):
    d = gist_descriptor(rng.uniform(0, 1, size=(37, 53)))
    assert d.shape == (288,) and d.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(d.astype(np.float64)), 1.0, rtol=1e-5)
    assert np.all(d >= 0)


def test_gist_descriptor_gratings_energy_in_their_orientation():
    horizontal = gist_descriptor(_grating("rows"))  # stripes along the rows: theta = pi / 2
    vertical = gist_descriptor(_grating("cols"))  # stripes along the columns: theta = 0
    assert int(np.argmax(_orientation_energy(horizontal))) == 3
    assert int(np.argmax(_orientation_energy(vertical))) == 0
    assert float(horizontal @ vertical) < 0.5


def test_gist_descriptor_nearly_invariant_to_brightness(rng):
    y = rng.uniform(0.1, 0.8, size=(40, 40)).astype(np.float32)
    d0 = gist_descriptor(y)
    d1 = gist_descriptor(np.clip(y + 0.1, 0.0, 1.0))
    assert float(d0 @ d1) > 0.999


@pytest.mark.parametrize("shape", [(8,), (8, 8, 1), (0, 8)])
def test_gist_descriptor_exception_shape(shape):
    with pytest.raises(ValueError, match="gray must be a non-empty 2-D image"):
        gist_descriptor(np.zeros(shape, np.float32))


def test_semantic_descriptor_uniform_map():
    k = 4
    d = semantic_descriptor(np.full((9, 11, k), 1.0 / k, np.float32))
    assert d.shape == (5 * k,) and d.dtype == np.float32
    np.testing.assert_allclose(d, np.full(5 * k, np.sqrt(1.0 / k) / np.sqrt(5.0)), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(d.astype(np.float64)), 1.0, rtol=1e-6)


def test_semantic_descriptor_top_bottom_in_right_cells():
    prob = np.zeros((8, 6, 2), np.float32)
    prob[:4, :, 0] = 1.0
    prob[4:, :, 1] = 1.0
    d = semantic_descriptor(prob).reshape(5, 2) * np.sqrt(5.0)
    # whole image, then cells row-major: top-left, top-right, bottom-left, bottom-right
    expected = [[np.sqrt(0.5), np.sqrt(0.5)], [1, 0], [1, 0], [0, 1], [0, 1]]
    np.testing.assert_allclose(d, expected, rtol=1e-6, atol=1e-7)


def test_semantic_descriptor_left_right_in_right_cells():
    prob = np.zeros((6, 10, 3), np.float32)
    prob[:, :5, 2] = 1.0
    prob[:, 5:, 0] = 1.0
    d = semantic_descriptor(prob).reshape(5, 3) * np.sqrt(5.0)
    expected = [[np.sqrt(0.5), 0, np.sqrt(0.5)], [0, 0, 1], [1, 0, 0], [0, 0, 1], [1, 0, 0]]
    np.testing.assert_allclose(d, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(d / np.sqrt(5.0)), 1.0, rtol=1e-6)


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 2, 1), (0, 8, 3)])
def test_semantic_descriptor_exception_shape(shape):
    with pytest.raises(ValueError, match=r"prob must be a non-empty \(H, W, K\) array"):
        semantic_descriptor(np.zeros(shape, np.float32))


def test_combine_each_descriptor():
    gist = np.array([[0.6, 0.8, 0.0], [0.0, 0.0, 1.0]], np.float32)
    sem = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    assert set(DESCRIPTORS) == {"gist", "semantic", "gist+semantic"}
    np.testing.assert_array_equal(combine(gist, sem, "gist"), gist)
    np.testing.assert_array_equal(combine(gist, sem, "semantic"), sem)
    both = combine(gist, sem, "gist+semantic")
    assert both.shape == (2, 5)
    np.testing.assert_allclose(both, np.concatenate([gist, sem], axis=1) / np.sqrt(2.0), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(both, axis=1), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(combine(gist[0], sem[0], "gist+semantic"), both[0], rtol=1e-6)  # one image (.,)


def test_combine_exception_name():
    with pytest.raises(ValueError, match=r"descriptor must be one of .*got 'colour'"):
        combine(np.zeros(3), np.zeros(2), "colour")


class _FakeParser:
    """Class 0 on the top half, class 1 on the bottom half, class 2 nowhere."""

    def predict_proba(self, gray):
        h, w = gray.shape
        prob = np.zeros((h, w, 3), np.float32)
        prob[: h // 2, :, 0] = 1.0
        prob[h // 2:, :, 1] = 1.0
        return prob


def test_image_descriptors_keys_and_histogram(rng):
    gray = rng.uniform(0, 1, size=(16, 12)).astype(np.float32)
    d = image_descriptors(gray, _FakeParser())
    assert set(d) == {"gist", "semantic", "histogram"}
    assert all(v.dtype == np.float32 for v in d.values())
    np.testing.assert_allclose(d["histogram"].sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(d["histogram"], [0.5, 0.5, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(d["gist"], gist_descriptor(gray))
    np.testing.assert_array_equal(d["semantic"], semantic_descriptor(_FakeParser().predict_proba(gray)))


def test_image_descriptors_without_gist_same_semantic_parts(rng):
    gray = rng.uniform(0, 1, size=(16, 12)).astype(np.float32)
    full, lean = image_descriptors(gray, _FakeParser()), image_descriptors(gray, _FakeParser(), gist=False)
    assert lean["gist"] is None
    np.testing.assert_array_equal(lean["semantic"], full["semantic"])
    np.testing.assert_array_equal(lean["histogram"], full["histogram"])


# =============================================================================
# ClusterConfig
# =============================================================================


@pytest.mark.parametrize("field, value, message", [
    ("mu", 1, "mu must be at least 2"),
    ("mu", 0, "mu must be a positive int"),
    ("n_clusters", 0, "n_clusters must be a positive int"),
    ("max_layers", 0, "max_layers must be a positive int"),
    ("n_candidates", 1.5, "n_candidates must be a positive int"),
    ("epsilon", float("nan"), "epsilon must be a finite number"),
    ("epsilon", "-26", "epsilon must be a finite number"),
    ("descriptor", "x", "descriptor must be one of"),
    ("histogram_distance", "x", "histogram_distance must be one of"),
    ("search_layers", "x", "search_layers must be one of"),
    ("warm_start", 1, "warm_start must be a bool"),
    ("seed", "0", "seed must be an int"),
])
def test_cluster_config_exception_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        ClusterConfig(**{field: value})


def test_cluster_config_dict_round_trip():
    cfg = ClusterConfig(n_clusters=3, mu=2, epsilon=-24.5, descriptor="gist+semantic", search_layers="top",
                        histogram_distance="l1", warm_start=False, seed=7)
    assert ClusterConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


# =============================================================================
# The ensemble model directory
# =============================================================================


def _nets(in_dim, n, seed=0):
    torch.manual_seed(seed)
    nets = []
    for _ in range(n):
        net = ChromaNet(in_dim, 8, 2)
        net.mean.copy_(torch.randn(in_dim))
        net.std.copy_(torch.rand(in_dim) + 0.5)
        net.eval()
        nets.append(net)
    return nets


CCFG = ClusterConfig(n_clusters=2, mu=2, max_layers=2, n_candidates=2, histogram_distance="hellinger")


def _clusters():
    return [
        {"layer": 0, "n_members": 5, "centre": np.array([0.1, 0.2, 0.3, 1 / 3]), "histogram": np.array([0.7, 0.3])},
        {"layer": 0, "n_members": 4, "centre": np.array([-0.1, 0.25, 1e-3, 0.0]), "histogram": np.array([0.2, 0.8])},
        {"layer": 1, "n_members": 3, "centre": np.array([0.5, -0.5, 0.3, 0.7]), "histogram": np.array([1 / 3, 2 / 3])},
    ]


@pytest.fixture
def ensemble_dir(tmp_path, tiny_configs):
    """A saved three-network ensemble (untrained networks) and the model it came from."""
    cfg = tiny_configs
    model = Model(_nets(cfg["features"].dim, 3), cfg["features"], cfg["train"], cfg["refine"], {"note": "test"},
                  clusters=_clusters(), cluster_config=CCFG)
    model.save(tmp_path / "model")
    return tmp_path / "model", model


def _rewrite_manifest(model_dir, change):
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_model_ensemble_round_trip(ensemble_dir, rng):
    model_dir, model = ensemble_dir
    loaded = Model.load(model_dir)
    assert loaded.is_ensemble and len(loaded.networks) == 3
    x = rng.standard_normal((50, model.feature_config.dim)).astype(np.float32)
    for i in range(3):
        np.testing.assert_array_equal(loaded.predict_uv(x, i), model.predict_uv(x, i))
    assert not np.array_equal(loaded.predict_uv(x, 0), loaded.predict_uv(x, 1))
    for got, want in zip(loaded.clusters, _clusters()):
        assert got["layer"] == want["layer"] and got["n_members"] == want["n_members"]
        np.testing.assert_array_equal(got["centre"], want["centre"].astype(np.float32).astype(np.float64))
        np.testing.assert_array_equal(got["histogram"], want["histogram"].astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(loaded.centers, model.centers, rtol=1e-7)
    np.testing.assert_allclose(loaded.histograms, model.histograms, rtol=1e-7)
    np.testing.assert_array_equal(loaded.layers, [0, 0, 1])
    assert loaded.cluster_config == CCFG
    assert loaded.feature_config == model.feature_config and loaded.train_config == model.train_config
    assert loaded.info == {"note": "test"}


def test_model_single_network_has_no_clusters(tmp_path, tiny_configs):
    cfg = tiny_configs
    Model(_nets(cfg["features"].dim, 1), cfg["features"], cfg["train"]).save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert "clusters" not in manifest and "clusters_sha256" not in manifest
    loaded = Model.load(tmp_path / "m")
    assert not loaded.is_ensemble and loaded.cluster_config is None
    assert loaded.choose_network(np.zeros((20, 20), np.float32)) == (0, None)


def test_model_exception_corrupt_network_file(ensemble_dir):
    model_dir, _ = ensemble_dir
    path = model_dir / "net-001.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"net-001\.safetensors: checksum mismatch"):
        Model.load(model_dir)


def test_model_exception_edited_centre(ensemble_dir):
    model_dir, _ = ensemble_dir

    def edit(manifest):
        manifest["clusters"][1]["centre"][0] += 0.5

    _rewrite_manifest(model_dir, edit)
    with pytest.raises(ModelError, match="cluster table does not match its checksum"):
        Model.load(model_dir)


def _drop_last_cluster(manifest):
    manifest["clusters"] = manifest["clusters"][:-1]
    manifest["clusters_sha256"] = _table_sha(manifest["clusters"])


def _shorten_one_centre(manifest):
    manifest["clusters"][2]["centre"] = manifest["clusters"][2]["centre"][:-1]
    manifest["clusters_sha256"] = _table_sha(manifest["clusters"])


@pytest.mark.parametrize("edit, match", [
    (_drop_last_cluster, r"inconsistent cluster table \(ValueError: one cluster per network"),
    (_shorten_one_centre, r"inconsistent cluster table \(ValueError: one cluster per network"),
    (lambda m: m.pop("cluster_config"), r"inconsistent cluster table \(KeyError"),
    (lambda m: m["cluster_config"].update(mu=1), r"inconsistent cluster table \(ValueError: mu must be at least 2"),
], ids=["fewer_clusters", "ragged_centres", "without_config", "bad_config"])
def test_model_exception_cluster_table_inconsistent(ensemble_dir, edit, match):
    # checksums recomputed: the table is what the manifest says, but it does not fit the model
    model_dir, _ = ensemble_dir
    _rewrite_manifest(model_dir, edit)
    with pytest.raises(ModelError, match=match):
        Model.load(model_dir)


def test_model_exception_clusters_count(tiny_configs):
    cfg = tiny_configs
    with pytest.raises(ValueError, match="3 clusters for 2 networks"):
        Model(_nets(cfg["features"].dim, 2), cfg["features"], cfg["train"], clusters=_clusters(),
              cluster_config=CCFG)


def test_model_exception_ensemble_without_config(tiny_configs):
    cfg = tiny_configs
    with pytest.raises(ValueError, match="an ensemble needs its cluster_config"):
        Model(_nets(cfg["features"].dim, 3), cfg["features"], cfg["train"], clusters=_clusters())


# =============================================================================
# sampled_psnr
# =============================================================================


def test_sampled_psnr_zero_error_floor(rng):
    uv = rng.uniform(-0.3, 0.3, size=(100, 2))
    assert sampled_psnr(uv, uv) == pytest.approx(120.0, abs=1e-9)


@pytest.mark.parametrize("e", [0.01, 0.1, -0.05])
def test_sampled_psnr_constant_u_error(rng, e):
    uv = rng.uniform(-0.3, 0.3, size=(64, 2))
    rgb_err = yuv_to_rgb(np.array([[[0.0, e, 0.0]]]))[0, 0]  # R, G, B error of a U error e at constant Y
    mse = float(np.mean(rgb_err**2))
    assert sampled_psnr(uv + [e, 0.0], uv) == pytest.approx(10 * np.log10(1 / mse), rel=1e-9)


def test_sampled_psnr_v_error_by_hand():
    # BT.601 YUV->RGB: R = Y + 1.13983 V, G = Y - 0.58060 V, B = Y (V column of the inverse matrix)
    e = 0.1
    rgb_err = yuv_to_rgb(np.array([[[0.0, 0.0, e]]]))[0, 0]
    assert abs(rgb_err[2]) < 1e-6
    mse = float(np.mean(rgb_err**2))
    assert sampled_psnr(np.full((10, 2), [0.0, e]), np.zeros((10, 2))) == pytest.approx(10 * np.log10(1 / mse))


# =============================================================================
# train_ensemble, train, and colorizing with an ensemble
# =============================================================================

ECFG = ClusterConfig(n_clusters=2, mu=2, max_layers=2, epsilon=-200.0, n_candidates=2)  # removes no image


@pytest.fixture(scope="module")
def fast_train(tiny_configs):
    return tiny_configs["train"].replace(max_epochs=6, patience=2)


@pytest.fixture(scope="module")
def ensemble_model(tiny_features_dir, fast_train):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_ensemble(tiny_features_dir, fast_train, ECFG, jobs=1, quiet=True)
    finally:
        torch.set_num_threads(before)


def test_train_ensemble_clusters_and_networks(ensemble_model):
    model = ensemble_model
    assert model.is_ensemble
    assert len(model.networks) == len(model.clusters) >= 2
    assert all(c["n_members"] >= ECFG.mu for c in model.clusters)
    assert model.cluster_config == ECFG
    info = model.info
    # epsilon -200 removes nothing: both layers hold all 6 references
    assert info["n_images"] == 6 and info["n_layers"] == 2
    assert info["layer_sizes"] == [6, 6]
    assert info["removed_per_layer"] == [0, 0]
    for layer in (0, 1):
        assert sum(c["n_members"] for c in model.clusters if c["layer"] == layer) == 6
    assert sorted(set(model.layers)) == [0, 1]
    assert len(info["members"]) == len(model.clusters)
    np.testing.assert_allclose(model.histograms.sum(axis=1), 1.0, rtol=1e-5)


def test_train_ensemble_removal_rule_ends_layers(tiny_features_dir, fast_train, torch_one_thread):
    # epsilon +200: E = -PSNR <= 200 for every reference, all are removed after layer 0
    model = train_ensemble(tiny_features_dir, fast_train, ECFG.replace(epsilon=200.0), quiet=True)
    assert model.info["n_layers"] == 1 and model.info["layer_sizes"] == [6]
    assert model.info["removed_per_layer"] == [6]
    assert set(model.layers) == {0}


def _first_shard_broken(src, dst, how):
    """A copy of features dir `src` in `dst` whose first shard is broken `how`; returns its path."""
    import shutil

    from deepcolor.extract import load_manifest, ok_entries

    shutil.copytree(src, dst)
    shard = dst / ok_entries(load_manifest(dst))[0]["shard"]
    if how == "old format":  # a shard of features format 1: samples, no descriptors
        with np.load(shard) as data:
            x, uv = data["x"], data["uv"]
        np.savez(shard, x=x, uv=uv)
    else:  # truncated
        shard.write_bytes(shard.read_bytes()[:100])
    return shard


@pytest.mark.parametrize("how, problem", [("old format", "gist is not a file in the archive"),
                                          ("truncated", "")])
def test_train_ensemble_exception_broken_shard(tiny_features_dir, tmp_path, fast_train, how, problem):
    shard = _first_shard_broken(tiny_features_dir, tmp_path / "features", how)
    match = re.escape(f"{shard}: unreadable feature shard (") + ".*" + re.escape(problem) + ".*" + \
        re.escape("rerun 'deepcolor features'")
    with pytest.raises(ValueError, match=match):
        train_ensemble(tmp_path / "features", fast_train, ECFG, quiet=True)


def test_train_ensemble_saved_model_colorizes(ensemble_model, tmp_path, tiny_scene, torch_one_thread):
    ensemble_model.save(tmp_path / "model")
    model = Model.load(tmp_path / "model")
    assert model.is_ensemble and len(model.networks) == len(ensemble_model.networks)
    grey = tiny_scene(36, 30, 11).astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    src = tmp_path / "grey.png"
    Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8)).save(src)
    outcome = colorize_file(model, src, tmp_path / "out.png")
    assert outcome.status == "done", outcome.message
    record = outcome.cluster
    assert 0 <= record["cluster"] < len(model.networks)
    assert record["layer"] == int(model.layers[record["cluster"]])
    assert record["cluster"] in record["candidates"] and len(record["candidates"]) == ECFG.n_candidates
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (36, 30, 3)


def test_train_ensemble_parallel_jobs_same_clusters(tiny_features_dir, fast_train, ensemble_model,
                                                   torch_one_thread):
    # one layer, no warm start: the joblib workers' start-up is the cost here
    cfg = ECFG.replace(max_layers=1, warm_start=False)
    model = train_ensemble(tiny_features_dir, fast_train, cfg, jobs=2, quiet=True)
    top = [c for c in ensemble_model.clusters if c["layer"] == 0]  # layer 0 does not depend on the training
    assert len(model.networks) == len(model.clusters) == len(top)
    assert [c["n_members"] for c in model.clusters] == [c["n_members"] for c in top]
    for got, want in zip(model.clusters, top):
        np.testing.assert_allclose(got["centre"], want["centre"], rtol=1e-10, atol=1e-12)
    assert model.info["jobs"] == min(2, os.cpu_count() or 1)


def test_train_ensemble_exception_one_cluster(tiny_features_dir):
    with pytest.raises(ValueError, match="one cluster is the single network: use train_model"):
        train_ensemble(tiny_features_dir, cluster_cfg=ClusterConfig(n_clusters=1))


def test_train_one_cluster_is_single_network(tiny_features_dir, fast_train, torch_one_thread):
    model = train(tiny_features_dir, fast_train, ClusterConfig(n_clusters=1), quiet=True)
    assert not model.is_ensemble and len(model.networks) == 1
    assert model.choose_network(np.zeros((20, 20), np.float32)) == (0, None)


# --- AdaptiveClustering as a scikit-learn estimator -------------------------------------------------


def test_adaptive_clustering_keyword_only_exception():
    with pytest.raises(TypeError, match=r"takes 1 positional argument but 3 were given"):
        AdaptiveClustering(4, 6)


def test_adaptive_clustering_defaults_are_cluster_config():
    cfg = ClusterConfig()
    assert AdaptiveClustering().get_params() == {"n_clusters": cfg.n_clusters, "mu": cfg.mu, "epsilon": cfg.epsilon,
                                                 "max_layers": cfg.max_layers, "random_state": cfg.seed}


def test_adaptive_clustering_init_only_stores():
    est = AdaptiveClustering(n_clusters=0, mu="x")  # invalid, but only fit validates
    assert est.n_clusters == 0 and est.mu == "x"
    assert not [name for name in vars(est) if name.endswith("_")]


def test_adaptive_clustering_predict_before_fit_exception():
    with pytest.raises(NotFittedError, match=r"This AdaptiveClustering instance is not fitted yet\. Call 'fit'"):
        AdaptiveClustering().predict(np.zeros((2, 3)))
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


# --- the stage's functions take ClusterConfig's defaults --------------------------------------------


def test_select_cluster_defaults_are_cluster_config():
    cfg = ClusterConfig()
    args = (np.zeros(2), TARGET_HIST, CENTRES, HISTS, LAYERS)
    got = select_cluster(*args)
    want = select_cluster(*args, cfg.n_candidates, cfg.histogram_distance, cfg.search_layers)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[1], [0, 2])  # "top": the layer-1 cluster does not compete
    defaults = inspect.signature(select_cluster).parameters
    assert (defaults["n_candidates"].default, defaults["distance"].default, defaults["search"].default) == \
        (cfg.n_candidates, cfg.histogram_distance, cfg.search_layers) == (3, "hellinger", "top")
