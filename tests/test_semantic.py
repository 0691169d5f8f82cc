"""Tests of the semantic feature (features/semantic.py) and `segmentation_scores`.

Cheng et al. 2015, Sec. 3.1: class probabilities of a scene parser, smoothed by an
edge-preserving filter guided by the grey image, and their per-image histogram.
Golden values come from OpenCV (``cv2.ximgproc.guidedFilter``), scikit-learn
(``confusion_matrix``, ``jaccard_score``), scipy (``scipy.special.softmax``) and the
ADE20K label list of the data folder, not from this code.
"""

import hashlib
import importlib.util
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepcolor.metrics import segmentation_scores
from deepcolor.features.classprob import GROUP_MERGES, GroupedParser, group_probabilities, merge_matrix, softmax
from deepcolor.features.labelsets import (ADE20K_TO_SHARED, MSRC_CLASSES, MSRC_TO_SHARED, SHARED_GROUPS,
                                          group_matrix, label_groups)
from deepcolor.features.parsers import load_parser
from deepcolor.features.semantic import semantic_features, semantic_histogram, smooth_probabilities
from deepcolor.features.teacher import ADE20K_MODEL_NAME, TFLiteParser

MODELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "models"
ADE20K_LABELS = MODELS / "ade20k_labels.txt"
ADE20K_MODEL = MODELS / ADE20K_MODEL_NAME

GROUPS3 = ("sky", "tree", "road")


def _random_prob(rng, h, w, k, dtype=np.float32):
    """(h, w, k) positive probabilities summing to 1 at every pixel."""
    prob = rng.random((h, w, k)) + 0.05
    return (prob / prob.sum(axis=-1, keepdims=True)).astype(dtype)


def _one_hot(labels, k):
    """(H, W) int labels -> (H, W, k) float32 one-hot probabilities."""
    return np.eye(k, dtype=np.float32)[labels]


# =============================================================================
# group_matrix
# =============================================================================


def test_group_matrix_shape():
    mat = group_matrix(151, ADE20K_TO_SHARED, SHARED_GROUPS)
    assert mat.shape == (151, len(SHARED_GROUPS) + 1)
    assert group_matrix(5, {0: "sky"}, GROUPS3).shape == (5, 4)


def test_group_matrix_unit():
    # classes 0 and 3 -> sky (column 0), 1 -> road (column 2), 2 and 4 unmapped -> "other" (column 3)
    mat = group_matrix(5, {0: "sky", 1: "road", 3: "sky"}, GROUPS3)
    expected = np.array([[1, 0, 0, 0],
                         [0, 0, 1, 0],
                         [0, 0, 0, 1],
                         [1, 0, 0, 0],
                         [0, 0, 0, 1]], np.float32)
    np.testing.assert_array_equal(mat, expected)


@pytest.mark.parametrize("n_classes, mapping", [(151, ADE20K_TO_SHARED), (23, MSRC_TO_SHARED)])
def test_group_matrix_invariant(n_classes, mapping):
    # every row one-hot; unmapped classes (ADE20K's background 0 among them) in the last column
    mat = group_matrix(n_classes, mapping, SHARED_GROUPS)
    assert set(np.unique(mat)) <= {0.0, 1.0}
    np.testing.assert_array_equal(mat.sum(axis=1), np.ones(n_classes))
    other = len(SHARED_GROUPS)
    for c in range(n_classes):
        column = SHARED_GROUPS.index(mapping[c]) if c in mapping else other
        assert mat[c, column] == 1.0, c
    # each group column counts the classes mapped to it
    for g, name in enumerate(SHARED_GROUPS):
        assert mat[:, g].sum() == sum(v == name for v in mapping.values())


def test_group_matrix_exception():
    with pytest.raises(ValueError, match=re.escape(
            "mapping names groups ['lake', 'sea'] that are not in groups ['sky', 'tree', 'road']")):
        group_matrix(4, {0: "sea", 1: "sky", 2: "lake"}, GROUPS3)


# =============================================================================
# group_probabilities
# =============================================================================


def test_group_probabilities_shape(rng):
    mat = group_matrix(151, ADE20K_TO_SHARED, SHARED_GROUPS)
    out = group_probabilities(_random_prob(rng, 13, 9, 151), mat)
    assert out.shape == (13, 9, len(SHARED_GROUPS) + 1)
    assert out.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_probabilities_unit(rng, tol, dtype):
    # each group is the sum of its classes' probabilities (numpy slicing and summing)
    prob = _random_prob(rng, 13, 9, 6, dtype)
    mapping = {0: "sky", 2: "sky", 3: "tree", 5: "road"}
    out = group_probabilities(prob, group_matrix(6, mapping, GROUPS3))
    expected = np.stack([prob[..., 0] + prob[..., 2], prob[..., 3], prob[..., 5],
                         prob[..., 1] + prob[..., 4]], axis=-1)
    np.testing.assert_allclose(out, expected, **tol(np.float32))


def test_group_probabilities_invariant(rng, tol):
    # grouping only regroups mass: each pixel's groups sum to its classes' sum
    prob = rng.random((13, 9, 151)).astype(np.float32)  # not normalised on purpose
    out = group_probabilities(prob, group_matrix(151, ADE20K_TO_SHARED, SHARED_GROUPS))
    np.testing.assert_allclose(out.sum(axis=-1), prob.sum(axis=-1), rtol=1e-5)


@pytest.mark.parametrize("shape", [(13, 9, 5), (13, 9), (117, 6)])
def test_group_probabilities_exception(shape):
    mat = group_matrix(6, {0: "sky"}, GROUPS3)
    with pytest.raises(ValueError, match=re.escape(f"prob must be (H, W, 6), got {shape}")):
        group_probabilities(np.zeros(shape, np.float32), mat)


# =============================================================================
# label_groups
# =============================================================================


def test_label_groups_shape():
    out = label_groups(np.zeros((13, 9), np.uint8), {0: "sky"}, GROUPS3)
    assert out.shape == (13, 9)


def test_label_groups_dtype():
    out = label_groups(np.zeros((13, 9), np.uint8), {0: "sky"}, GROUPS3)
    assert np.issubdtype(out.dtype, np.signedinteger)  # -1 must be representable


def test_label_groups_unit():
    labels = np.array([[0, 1, 2, 255],
                       [3, 4, 0, 7]], np.uint8)
    mapping = {0: "road", 1: "sky", 3: "tree", 4: "sky"}
    out = label_groups(labels, mapping, GROUPS3)
    # road -> 2, sky -> 0, tree -> 1; 255 (ignore) and unmapped 2, 7 -> -1
    np.testing.assert_array_equal(out, [[2, 0, -1, -1],
                                        [1, 0, 2, -1]])


def test_label_groups_invariant():
    # the ignore label is -1 even when the mapping names it
    labels = np.array([[255, 9]], np.uint8)
    out = label_groups(labels, {255: "sky", 9: "tree"}, GROUPS3)
    np.testing.assert_array_equal(out, [[-1, 1]])
    # another ignore value: 9 ignored, 255 now an ordinary (unmapped) label
    out = label_groups(labels, {9: "tree"}, GROUPS3, ignore=9)
    np.testing.assert_array_equal(out, [[-1, -1]])


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.int8, np.float32])
def test_label_groups_exception(dtype):
    with pytest.raises(TypeError, match=f"labels must be uint8, got {np.dtype(dtype)}"):
        label_groups(np.zeros((13, 9), dtype), {0: "sky"}, GROUPS3)


def test_label_groups_exception_unknown_group():
    with pytest.raises(ValueError, match=r"mapping names groups \['sea'\]"):
        label_groups(np.zeros((13, 9), np.uint8), {0: "sea"}, GROUPS3)


def test_label_groups_msrc_unit():
    # every MSRC-v2 class (0..22) reaches a shared group; 255 is unlabelled
    labels = np.append(np.arange(23), 255).astype(np.uint8).reshape(4, 6)
    out = label_groups(labels, MSRC_TO_SHARED, SHARED_GROUPS).ravel()
    assert (out[:23] >= 0).all() and out[23] == -1
    names = [SHARED_GROUPS[i] for i in out[:23]]
    # MSRC-v2's 23 classes (Shotton et al. 2006) merged: animals, face/body -> person
    assert names == ["building", "grass", "tree", "animal", "animal", "animal", "sky", "mountain",
                     "aeroplane", "water", "person", "car", "bicycle", "flower", "sign", "animal",
                     "book", "chair", "road", "animal", "animal", "person", "boat"]


def test_msrc_to_shared_invariant():
    assert len(MSRC_CLASSES) == 23
    assert sorted(MSRC_TO_SHARED) == list(range(23))
    assert set(MSRC_TO_SHARED.values()) <= set(SHARED_GROUPS)
    # "shared" groups: each one occurs in both datasets
    assert set(MSRC_TO_SHARED.values()) == set(SHARED_GROUPS)
    assert set(ADE20K_TO_SHARED.values()) == set(SHARED_GROUPS)


def test_ade20k_to_shared_invariant():
    assert all(isinstance(c, int) and 1 <= c <= 150 for c in ADE20K_TO_SHARED)
    assert set(ADE20K_TO_SHARED.values()) <= set(SHARED_GROUPS)
    # the table maps ADE20K's labels 1..150 as uint8 label images too
    labels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = label_groups(labels, ADE20K_TO_SHARED, SHARED_GROUPS).ravel()
    assert out[0] == -1 and (out[151:] == -1).all()
    for c in range(1, 151):
        expected = SHARED_GROUPS.index(ADE20K_TO_SHARED[c]) if c in ADE20K_TO_SHARED else -1
        assert out[c] == expected, c


@pytest.mark.skipif(not ADE20K_LABELS.is_file(), reason=f"{ADE20K_LABELS} is not here (data folder)")
def test_ade20k_to_shared_unit():
    # names from the data folder's ade20k_labels.txt ("<channel>\t<first word of name>")
    names = {}
    for line in ADE20K_LABELS.read_text().splitlines():
        channel, name = line.split("\t")
        names[int(channel)] = name
    assert len(names) == 150 and sorted(names) == list(range(1, 151))
    spot = {3: ("sky", "sky"), 21: ("car", "car"), 13: ("person", "person"),
            2: ("building", "building"), 5: ("tree", "tree"), 10: ("grass", "grass"),
            22: ("water", "water"), 7: ("road", "road"), 67: ("flower", "flower"),
            127: ("animal", "animal"), 77: ("boat", "boat"), 91: ("airplane", "aeroplane"),
            128: ("bicycle", "bicycle"), 20: ("chair", "chair"), 68: ("book", "book"),
            44: ("signboard", "sign"), 17: ("mountain", "mountain"), 26: ("house", "building"),
            27: ("sea", "water"), 81: ("bus", "car"), 12: ("sidewalk", "road")}
    for channel, (name, group) in spot.items():
        assert names[channel] == name, channel
        assert ADE20K_TO_SHARED[channel] == group, channel
    # indoor classes stay out of every group
    for name in ("wall", "floor", "ceiling", "bed", "table"):
        channel = next(c for c, n in names.items() if n == name)
        assert channel not in ADE20K_TO_SHARED, name


# =============================================================================
# smooth_probabilities
# =============================================================================


@pytest.mark.parametrize("size", [(13, 9), (37, 53)])
@pytest.mark.parametrize("k", [1, 3, 7, 25])
def test_smooth_probabilities_shape(rng, size, k):
    out = smooth_probabilities(_random_prob(rng, *size, k), rng.random(size))
    assert out.shape == (*size, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 3, 7, 25])
def test_smooth_probabilities_dtype(rng, dtype, k):
    out = smooth_probabilities(_random_prob(rng, 13, 9, k, dtype), rng.random((13, 9)).astype(dtype))
    assert out.dtype == np.float32


@pytest.mark.parametrize("size", [(13, 9), (37, 53)])
@pytest.mark.parametrize("k", [1, 3, 7, 25])
def test_smooth_probabilities_invariant(rng, size, k):
    # one-hot input makes the guided filter overshoot: the output must still be a distribution
    labels = rng.integers(0, k, size)
    out = smooth_probabilities(_one_hot(labels, k), rng.random(size), radius=2, eps=1e-4)
    assert (out >= 0).all()
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-5)


def test_smooth_probabilities_invariant_constant(rng, tol):
    # the guided filter keeps a constant image: a = 0, b = the constant (He et al. 2013, eq. 5-6)
    prob = np.broadcast_to(np.float32([0.2, 0.3, 0.5]), (13, 9, 3))
    out = smooth_probabilities(prob, rng.random((13, 9)), radius=3, eps=1e-3)
    np.testing.assert_allclose(out, prob, **tol(np.float32))


def test_smooth_probabilities_unit(rng, tol):
    # recipe: q_k = cv2.ximgproc.guidedFilter(guide, prob[..., k], 2, 1e-4) per channel k,
    # then max(q, 0) and division by the per-pixel sum
    guide = rng.random((13, 9)).astype(np.float32)
    prob = _one_hot(rng.integers(0, 4, (13, 9)), 4)
    raw = np.stack([cv2.ximgproc.guidedFilter(guide, np.ascontiguousarray(prob[..., k]), 2, 1e-4)
                    for k in range(4)], axis=-1)  # (13, 9, 4)
    assert raw.min() < 0  # the clipping step is exercised
    expected = np.maximum(raw, 0.0)
    expected /= expected.sum(axis=-1, keepdims=True)
    out = smooth_probabilities(prob, guide, radius=2, eps=1e-4)
    np.testing.assert_allclose(out, expected, **tol(np.float32))


def test_smooth_probabilities_invariant_edge():
    # a luminance step aligned with a class boundary stays sharp; a flat guide
    # turns the filter into a box blur that smears the boundary
    h, w, step = 15, 22, 11
    guide = np.where(np.arange(w) < step, 0.1, 0.9) * np.ones((h, 1))
    prob = np.zeros((h, w, 2), np.float32)
    prob[:, :step, 0] = 1.0
    prob[:, step:, 1] = 1.0
    sharp = smooth_probabilities(prob, guide, radius=4, eps=1e-3)
    blurred = smooth_probabilities(prob, np.full((h, w), 0.5), radius=4, eps=1e-3)
    assert np.abs(sharp - prob).max() < 0.01
    assert np.abs(blurred - prob)[:, step - 1:step + 1].min() > 0.3
    # far from the edge, the blur leaves the one-hot values
    np.testing.assert_allclose(blurred[:, :2], prob[:, :2], atol=1e-6)


@pytest.mark.parametrize("prob_shape", [(9, 13, 3), (13, 9), (13, 8, 3), (13, 9, 3, 1)])
def test_smooth_probabilities_exception_shape(prob_shape):
    with pytest.raises(ValueError, match=re.escape(
            f"prob must be (H, W, K) with (H, W) = guide's (13, 9), got {prob_shape}")):
        smooth_probabilities(np.full(prob_shape, 0.5, np.float32), np.zeros((13, 9)))


@pytest.mark.parametrize("radius", [0, -2, 2.0, 2.5, "3", None])
def test_smooth_probabilities_exception_radius(rng, radius):
    with pytest.raises(ValueError, match=re.escape(f"radius must be a positive int, got {radius!r}")):
        smooth_probabilities(_random_prob(rng, 13, 9, 3), rng.random((13, 9)), radius=radius)


@pytest.mark.parametrize("eps", [0, 0.0, -1e-3, np.inf, np.nan, "0.1", None])
def test_smooth_probabilities_exception_eps(rng, eps):
    with pytest.raises(ValueError, match=re.escape(f"eps must be a positive finite number, got {eps!r}")):
        smooth_probabilities(_random_prob(rng, 13, 9, 3), rng.random((13, 9)), eps=eps)


def test_smooth_probabilities_exception_eps_float32(rng):
    prob, guide = _random_prob(rng, 13, 9, 3), rng.random((13, 9))
    out = smooth_probabilities(prob, guide, eps=np.float32(1e-3))
    np.testing.assert_array_equal(out, smooth_probabilities(prob, guide, eps=float(np.float32(1e-3))))


@pytest.mark.parametrize("value", [1.5, -0.1, np.nan])
def test_smooth_probabilities_exception_guide(rng, value):
    guide = rng.random((13, 9))
    guide[6, 4] = value
    with pytest.raises(ValueError, match=re.escape("gray values must lie in [0, 1]")):
        smooth_probabilities(_random_prob(rng, 13, 9, 3), guide)


def test_smooth_probabilities_exception_guide_type(rng):
    with pytest.raises(TypeError, match="gray must be float32 or float64 in \\[0, 1\\], got dtype uint8"):
        smooth_probabilities(_random_prob(rng, 13, 9, 3), np.zeros((13, 9), np.uint8))
    with pytest.raises(ValueError, match=re.escape(
            "gray must be a 2-D (H, W) luminance image, got shape (13, 9, 1)")):
        smooth_probabilities(_random_prob(rng, 13, 9, 3), np.zeros((13, 9, 1)))


# =============================================================================
# semantic_histogram
# =============================================================================


def test_semantic_histogram_shape(rng):
    assert semantic_histogram(_random_prob(rng, 13, 9, 7)).shape == (7,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_semantic_histogram_dtype(rng, dtype):
    assert semantic_histogram(_random_prob(rng, 13, 9, 7, dtype)).dtype == np.float32


def test_semantic_histogram_invariant(rng):
    hist = semantic_histogram(_random_prob(rng, 13, 9, 25))
    assert (hist >= 0).all()
    np.testing.assert_allclose(hist.sum(), 1.0, rtol=1e-5)


def test_semantic_histogram_unit(rng, tol):
    # one-hot maps: the histogram is each class's share of the pixels, np.bincount(labels) / (13 * 9)
    labels = rng.integers(0, 5, (13, 9))
    labels[labels == 3] = 4  # one class absent
    hist = semantic_histogram(_one_hot(labels, 5))
    np.testing.assert_allclose(hist, np.bincount(labels.ravel(), minlength=5) / 117.0, **tol(np.float32))
    assert hist[3] == 0.0


@pytest.mark.parametrize("shape", [(13, 9), (117,), (0, 9, 3), (13, 0, 3), (13, 9, 3, 1)])
def test_semantic_histogram_exception(shape):
    with pytest.raises(ValueError, match=re.escape(f"prob must be a non-empty (H, W, K) array, got {shape}")):
        semantic_histogram(np.zeros(shape, np.float32))


# =============================================================================
# softmax
# =============================================================================


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_unit(rng, tol, dtype):
    from scipy.special import softmax as scipy_softmax

    logits = (rng.normal(size=(13, 9, 7)) * 5).astype(dtype)
    out = softmax(logits)
    assert out.shape == (13, 9, 7) and out.dtype == dtype
    np.testing.assert_allclose(out, scipy_softmax(logits.astype(np.float64), axis=-1), **tol(np.float32))
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, **tol(np.float32))
    # another axis
    np.testing.assert_allclose(softmax(logits, axis=0), scipy_softmax(logits.astype(np.float64), axis=0),
                               **tol(np.float32))


def test_softmax_invariant(rng, tol):
    logits = rng.normal(size=(13, 9, 7))
    before = logits.copy()
    out = softmax(logits)
    np.testing.assert_array_equal(logits, before)  # the input is not modified
    np.testing.assert_allclose(softmax(logits + 123.0), out, **tol(np.float64))
    shift = rng.normal(size=(13, 9, 1)) * 50  # a different constant per pixel
    np.testing.assert_allclose(softmax(logits + shift), out, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_invariant_large(dtype):
    logits = np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 999.0]], dtype)
    with np.errstate(over="raise", invalid="raise"):  # exp(1000) would overflow; exp(-2000) may underflow
        out = softmax(logits)
    assert np.isfinite(out).all()
    e = np.exp(-1.0)  # the second row is (1, 1, e^-1) / (2 + e^-1)
    np.testing.assert_allclose(out, [[1.0, 0.0, 0.0], [1 / (2 + e), 1 / (2 + e), e / (2 + e)]], rtol=1e-6)


def test_softmax_dtype_integer():
    np.testing.assert_allclose(softmax(np.array([[1000, 0], [3, 3]])), [[1.0, 0.0], [0.5, 0.5]])


# =============================================================================
# segmentation_scores
# =============================================================================


def test_segmentation_scores_shape(rng):
    truth = rng.integers(-1, 3, (13, 9))
    pred = rng.integers(-1, 5, (13, 9))
    scores = segmentation_scores(pred, truth, 3)
    assert scores["confusion"].shape == (3, 4)
    assert scores["confusion"].sum() == scores["n_pixels"] == (truth >= 0).sum()


def test_segmentation_scores_unit():
    # by hand, 2 groups; truth -1 unlabelled, pred 5 and -3 are out of range ("other")
    truth = np.array([[0, 0, 1],
                      [1, -1, 1]])
    pred = np.array([[0, 1, 1],
                     [5, 0, -3]])
    # labelled pairs (truth, pred): (0,0) (0,1) (1,1) (1,other) (1,other) -> 2 of 5 right
    # IoU_0 = 1 / (2 + 1 - 1) = 1/2; IoU_1 = 1 / (3 + 2 - 1) = 1/4 (the pred 0 at the
    # unlabelled pixel would make IoU_0 1/3 if it were counted)
    scores = segmentation_scores(pred, truth, 2)
    assert scores["pixel_accuracy"] == pytest.approx(0.4)
    assert scores["mean_iou"] == pytest.approx(0.375)
    assert scores["n_pixels"] == 5
    np.testing.assert_array_equal(scores["confusion"], [[1, 1, 0],
                                                        [0, 1, 2]])
    # a group absent from both truth and pred does not count in the mean IoU
    scores3 = segmentation_scores(pred, truth, 3)
    assert scores3["mean_iou"] == pytest.approx(0.375)
    assert scores3["confusion"].shape == (3, 4)


def test_segmentation_scores_unit_sklearn(rng):
    # recipe: on the labelled pixels, pred mapped to n (other) when outside 0..n-1;
    # sklearn.metrics.accuracy_score, confusion_matrix(labels=range(n + 1))[:n] and
    # jaccard_score(labels=groups present, average="macro")
    from sklearn.metrics import accuracy_score, confusion_matrix, jaccard_score

    n = 4
    truth = rng.integers(-1, n, (13, 9))
    pred = np.where(rng.random((13, 9)) < 0.5, truth, rng.integers(-2, n + 3, (13, 9)))
    scores = segmentation_scores(pred, truth, n)
    keep = truth >= 0
    t, p = truth[keep], pred[keep]
    p = np.where((p >= 0) & (p < n), p, n)
    present = sorted(set(t) | (set(p) - {n}))
    assert scores["pixel_accuracy"] == pytest.approx(accuracy_score(t, p))
    np.testing.assert_array_equal(scores["confusion"], confusion_matrix(t, p, labels=range(n + 1))[:n])
    assert scores["mean_iou"] == pytest.approx(jaccard_score(t, p, labels=present, average="macro"))


def test_segmentation_scores_invariant(rng):
    truth = rng.integers(-1, 3, (13, 9))
    perfect = segmentation_scores(np.where(truth < 0, 7, truth), truth, 3)
    assert perfect["pixel_accuracy"] == 1.0 and perfect["mean_iou"] == 1.0
    # predictions at unlabelled pixels do not matter
    other = segmentation_scores(np.where(truth < 0, 0, truth), truth, 3)
    assert other["pixel_accuracy"] == 1.0 and other["mean_iou"] == 1.0
    # all out of range: nothing right
    wrong = segmentation_scores(np.full((13, 9), 3), truth, 3)
    assert wrong["pixel_accuracy"] == 0.0 and wrong["mean_iou"] == 0.0
    np.testing.assert_array_equal(wrong["confusion"][:, 3], np.bincount(truth[truth >= 0], minlength=3))


def test_segmentation_scores_exception():
    with pytest.raises(ValueError, match=r"pred and truth must have the same shape"):
        segmentation_scores(np.zeros((13, 9), int), np.zeros((13, 8), int), 2)


def test_segmentation_scores_exception_transposed():
    with pytest.raises(ValueError, match=re.escape(
            "pred and truth must have the same shape, got (13, 9) and (9, 13)")):
        segmentation_scores(np.zeros((13, 9), int), np.zeros((9, 13), int), 2)


def test_segmentation_scores_exception_truth_range():
    with pytest.raises(ValueError, match=r"truth"):
        segmentation_scores(np.array([0, 1]), np.array([0, 2]), 2)


# =============================================================================
# TFLiteParser
# =============================================================================


def test_tfliteparser_exception_missing(tmp_path):
    path = tmp_path / "nowhere" / ADE20K_MODEL_NAME
    with pytest.raises(FileNotFoundError, match=re.escape(f"{path}: ADE20K parser not found")) as info:
        TFLiteParser(path)
    message = str(info.value)
    assert "shared/data/models" in message and "TF-Hub" in message
    assert "deeplabv3-mobilenetv2-ade20k" in message


def test_tfliteparser_exception_sha256(tmp_path, rng):
    path = tmp_path / ADE20K_MODEL_NAME
    data = rng.bytes(37)
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(ValueError, match=re.escape(
            f"{path}: sha256 {sha} is not that of {ADE20K_MODEL_NAME}")):
        TFLiteParser(path)
    with pytest.raises(ValueError, match="sha256"):
        TFLiteParser(str(path))  # a str path too


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                    reason="needs the optional package ai-edge-litert (deepcolor[semantic])")
@pytest.mark.skipif(not ADE20K_MODEL.is_file(), reason=f"{ADE20K_MODEL} is not here (data folder)")
def test_tfliteparser_predict_proba_shape():
    parser = TFLiteParser(ADE20K_MODEL, threads=2)
    gray = np.full((40, 30), 0.5)
    prob = parser.predict_proba(gray)
    assert prob.shape == (40, 30, 151)
    assert prob.dtype == np.float32
    assert (prob >= 0).all()
    np.testing.assert_allclose(prob.sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                    reason="needs the optional package ai-edge-litert (deepcolor[semantic])")
@pytest.mark.skipif(not ADE20K_MODEL.is_file(), reason=f"{ADE20K_MODEL} is not here (data folder)")
def test_tfliteparser_predict_proba_unit(tol):
    # recipe: the grey image as three equal channels, the network's 513x513 logits, each of the
    # 151 channels cv2.resize(..., (30, 40), INTER_LINEAR) back to 40 rows x 30 columns, then
    # scipy.special.softmax over the channels
    from scipy.special import softmax as scipy_softmax

    parser = TFLiteParser(ADE20K_MODEL, threads=2)
    gray = np.linspace(0.1, 0.9, 40)[:, None] * np.linspace(0.5, 1.0, 30)  # (40, 30), not symmetric
    raw = parser.raw_logits(np.repeat(gray[..., None], 3, axis=2))  # (513, 513, 151)
    logits = np.stack([cv2.resize(np.ascontiguousarray(raw[..., k]), (30, 40), interpolation=cv2.INTER_LINEAR)
                       for k in range(151)], axis=-1)  # (40, 30, 151)
    expected = scipy_softmax(logits.astype(np.float64), axis=-1)
    np.testing.assert_allclose(parser.predict_proba(gray), expected, rtol=1e-4, atol=1e-6)


# =============================================================================
# semantic_features, GroupedParser, load_parser
# =============================================================================


class _ConstParser:
    """predict_proba: class 0 where the image is dark, class 1 where bright; 'other' 0."""

    class_names = ("dark", "bright", "other")
    sha256 = "0" * 64

    def predict_proba(self, gray):
        bright = (gray > 0.5).astype(np.float32)
        return np.stack([1 - bright, bright, np.zeros_like(bright)], axis=-1)


@pytest.mark.parametrize("smoothing", ["guided", "none"])
@pytest.mark.parametrize("size", [(13, 9), (40, 33)])
def test_semantic_features_shape(rng, smoothing, size):
    out = semantic_features(rng.random(size), _ConstParser(), smoothing=smoothing)
    assert out.shape == size + (3,) and out.dtype == np.float32


@pytest.mark.parametrize("smoothing", ["guided", "none"])
def test_semantic_features_invariant(rng, tol, smoothing):
    out = semantic_features(rng.random((31, 29)), _ConstParser(), smoothing=smoothing, radius=3)
    assert out.min() >= 0
    np.testing.assert_allclose(out.sum(-1), 1.0, **tol(np.float32))


def test_semantic_features_unit(rng, tol):
    gray = rng.random((31, 29))
    raw = _ConstParser().predict_proba(gray)
    np.testing.assert_array_equal(semantic_features(gray, _ConstParser(), smoothing="none"), raw)
    expected = smooth_probabilities(raw, gray, radius=3, eps=1e-3)
    np.testing.assert_allclose(semantic_features(gray, _ConstParser(), radius=3, eps=1e-3), expected,
                               **tol(np.float32))


def test_semantic_features_invariant_edge():
    # A step edge in the guide: smoothing keeps each side's class (edge preserved),
    # while a noisy parser decision inside a flat region is averaged away.
    gray = np.full((30, 30), 0.2, np.float32)
    gray[:, 15:] = 0.8

    class Noisy(_ConstParser):
        def predict_proba(self, g):
            p = super().predict_proba(g)
            p[5, 5] = (0, 1, 0)  # one wrong pixel in the dark half
            return p

    out = semantic_features(gray, Noisy(), radius=4, eps=1e-3)
    assert out[5, 5, 0] > 0.9  # the outlier is voted down by its flat neighbourhood
    assert out[:, :14, 0].min() > 0.9 and out[:, 16:, 1].min() > 0.9  # the edge stays sharp


def test_semantic_features_exception(rng):
    with pytest.raises(ValueError, match="smoothing must be one of"):
        semantic_features(rng.random((9, 9)), _ConstParser(), smoothing="bilateral")
    with pytest.raises(ValueError):
        semantic_features(rng.random((9, 9, 3)), _ConstParser())


def test_grouped_parser_unit(rng, tol):
    parser = GroupedParser(_ConstParser(), np.array([[1, 0], [0, 1], [0, 1]], np.float32), ("dark", "rest"))
    gray = rng.random((7, 5))
    out = parser.predict_proba(gray)
    raw = _ConstParser().predict_proba(gray)
    np.testing.assert_allclose(out[..., 1], raw[..., 1] + raw[..., 2], **tol(np.float32))
    assert parser.class_names == ("dark", "rest") and parser.sha256 == "0" * 64


def test_grouped_parser_exception():
    with pytest.raises(ValueError, match="matrix has 2 groups, 3 names"):
        GroupedParser(_ConstParser(), np.zeros((3, 2), np.float32), ("a", "b", "c"))


def test_load_parser_unit(tiny_parser_dir):
    load_parser.cache_clear()
    parser = load_parser(str(tiny_parser_dir))
    assert parser.class_names == ("dark", "bright", "other")
    assert load_parser(str(tiny_parser_dir)) is parser  # loaded once per process


def test_load_parser_exception_default_missing(monkeypatch, tmp_path):
    monkeypatch.setattr("deepcolor.features.parsers.default_parser_dir", lambda: tmp_path / "parser")
    load_parser.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="bundled parser is missing.*make parser"):
            load_parser("default")
    finally:
        load_parser.cache_clear()


def test_load_parser_exception_tflite_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"ADE20K parser not found; it is {ADE20K_MODEL_NAME}"):
        load_parser(str(tmp_path / ADE20K_MODEL_NAME))


@pytest.mark.skipif(not ADE20K_MODEL.is_file() or importlib.util.find_spec("ai_edge_litert") is None,
                    reason="needs the ADE20K .tflite of the data folder and ai-edge-litert")
def test_load_parser_tflite_grouped(rng, tol):
    parser = load_parser(str(ADE20K_MODEL))
    assert parser.class_names == SHARED_GROUPS + ("other",)
    out = parser.predict_proba(rng.random((20, 30)).astype(np.float32))
    assert out.shape == (20, 30, len(SHARED_GROUPS) + 1)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-4)


def test_merge_matrix_unit():
    mat = merge_matrix(("sky", "tree", "grass", "teapot", "other"), {"sky": ("sky",), "green": ("tree", "grass")})
    np.testing.assert_array_equal(mat, [[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]])


def test_merge_matrix_invariant_coarse():
    # Every shared group lands in exactly one coarse group (none falls to "other" by a typo).
    mat = merge_matrix(SHARED_GROUPS + ("other",), GROUP_MERGES["coarse"])
    np.testing.assert_array_equal(mat.sum(axis=1), 1)
    assert mat[:-1, -1].sum() == 0 and mat[-1, -1] == 1


def test_load_parser_groups_unit(tiny_parser_dir, rng, tol):
    load_parser.cache_clear()
    merged = load_parser(str(tiny_parser_dir), "coarse")
    assert merged.class_names == tuple(GROUP_MERGES["coarse"]) + ("other",)
    gray = rng.random((12, 10)).astype(np.float32)
    out = merged.predict_proba(gray)
    np.testing.assert_allclose(out[..., -1], 1.0, **tol(np.float32))  # dark/bright/other are no coarse group


def test_load_parser_groups_exception(tiny_parser_dir):
    with pytest.raises(ValueError, match="groups must be one of"):
        load_parser(str(tiny_parser_dir), "fine")
