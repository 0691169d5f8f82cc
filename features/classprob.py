"""A scene parser's class-probability maps: softmax, resizing, and classes summed into groups.

A parser gives, for a grey image (H, W), class probabilities (H, W, K). The
helpers here are shared by every parser (`deepcolor.features.teacher`,
`deepcolor.features.cvparser`, `deepcolor.features.greyparser`): the softmax of logits, the resizing of a
stack of K maps, and the merging of classes into broader groups, by index
(`group_probabilities` with a `deepcolor.features.labelsets.group_matrix`)
or by class name (`GROUP_MERGES`, `merge_matrix`, `GroupedParser`).
"""

import cv2
import numpy as np


def softmax(logits, axis=-1):
    """Softmax along `axis` (a new float array; float64 unless the input is float32)."""
    logits = np.asarray(logits)
    logits = logits - logits.max(axis=axis, keepdims=True)
    if not np.issubdtype(logits.dtype, np.floating):
        logits = logits.astype(np.float64)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=axis, keepdims=True)
    return logits


def resize_channels(stack, shape, interpolation=None):
    """Resize an (h, w, K) float32 stack to `shape` (rows, cols) for any K.

    ``cv2.resize`` takes at most 4 channels at a time, so K is cut in fours.
    """
    interpolation = cv2.INTER_LINEAR if interpolation is None else interpolation
    rows, cols = shape
    return np.concatenate([cv2.resize(np.ascontiguousarray(stack[..., k:k + 4]), (cols, rows),
                                      interpolation=interpolation).reshape(rows, cols, -1)
                           for k in range(0, stack.shape[-1], 4)], axis=-1)


def group_probabilities(prob, matrix):
    """Merge class probabilities (H, W, C) into groups (H, W, G) with a `group_matrix`."""
    prob = np.asarray(prob, np.float32)
    if prob.ndim != 3 or prob.shape[-1] != matrix.shape[0]:
        raise ValueError(f"prob must be (H, W, {matrix.shape[0]}), got {prob.shape}")
    return prob @ matrix  # (H, W, G)


# Merges of a parser's classes applied when the feature is computed, by class
# name (a class not named goes to "other"): "parser" keeps the parser's own
# classes; "coarse" sums them into 7 broad colour-relevant groups + other;
# "landscape" keeps only sky, vegetation, water and ground + other.
GROUP_MERGES = {
    "parser": None,
    "coarse": {
        "sky": ("sky",), "vegetation": ("grass", "tree", "flower"), "water": ("water",),
        "ground": ("road", "ground", "mountain"), "person": ("person",), "animal": ("animal",),
        "built": ("building", "sign", "chair", "book", "car", "boat", "aeroplane", "bicycle", "vehicle"),
    },
    "landscape": {
        "sky": ("sky",), "vegetation": ("grass", "tree", "flower"), "water": ("water",),
        "ground": ("road", "ground", "mountain"),
    },
}


def merge_matrix(class_names, merge):
    """(K, G + 1) 0/1 matrix summing a parser's K classes, by name, into `merge`'s G groups + other."""
    index = {}
    for g, (group, members) in enumerate(merge.items()):
        for name in members:
            index[name] = g
    mat = np.zeros((len(class_names), len(merge) + 1), np.float32)
    for k, name in enumerate(class_names):
        mat[k, index.get(name, len(merge))] = 1.0
    return mat


class GroupedParser:
    """A parser whose class probabilities are summed into groups: ``predict_proba -> (H, W, G + 1)``.

    Parameters
    ----------
    parser : object with ``predict_proba(gray) -> (H, W, C)``
    matrix : ndarray (C, G + 1)
        From `group_matrix`.
    names : sequence of str
        The G + 1 group names (the last is "other").
    """

    def __init__(self, parser, matrix, names):
        if matrix.shape[1] != len(names):
            raise ValueError(f"matrix has {matrix.shape[1]} groups, {len(names)} names given")
        self.parser, self.matrix, self.class_names = parser, matrix, tuple(names)
        self.sha256 = getattr(parser, "sha256", None)

    @property
    def classes_(self):
        """The group names, in the order of `predict_proba`'s last axis."""
        return self.class_names

    def predict_proba(self, gray):
        return group_probabilities(self.parser.predict_proba(gray), self.matrix)
