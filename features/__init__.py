"""Per-pixel feature descriptors (Cheng et al. 2015, Sec. 3.1).

A small registry maps a feature name to a pure function of the luminance image
and a dimension. `compute_features` concatenates the named features along the
last axis, in the order given.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._validate import check_gray
from .config import DAISY_BACKENDS, DAISY_NORMALIZATIONS, daisy_dim
from .daisy import daisy_features
from .patch import patch_features
from .parsers import load_parser
from .semantic import semantic_features

__all__ = [
    "FEATURES",
    "DAISY_BACKENDS",
    "DAISY_NORMALIZATIONS",
    "compute_features",
    "daisy_features",
    "feature_dim",
    "patch_features",
    "semantic_features",
]


@dataclass(frozen=True)
class FeatureSpec:
    """A registered feature: ``compute(gray, params) -> (H, W, dim(params))``."""

    compute: Callable
    dim: Callable
    description: str


FEATURES = {
    "patch": FeatureSpec(
        compute=lambda gray, p: patch_features(gray, size=p["patch_size"]),
        dim=lambda p: p["patch_size"] ** 2,
        description="grey values of the patch_size x patch_size patch (low level)",
    ),
    "daisy": FeatureSpec(
        compute=lambda gray, p: daisy_features(
            gray, radius=p["daisy_radius"], rings=p["daisy_rings"],
            histograms=p["daisy_histograms"], orientations=p["daisy_orientations"],
            backend=p["daisy_backend"], normalization=p["daisy_normalization"],
        ),
        dim=lambda p: daisy_dim(p["daisy_rings"], p["daisy_histograms"], p["daisy_orientations"]),
        description="dense DAISY descriptor (mid level)",
    ),
    "semantic": FeatureSpec(
        compute=lambda gray, p: semantic_features(
            gray, load_parser(p["semantic_parser"], p["semantic_groups"]), smoothing=p["semantic_smoothing"],
            radius=p["semantic_radius"], eps=p["semantic_eps"],
        ),
        dim=lambda p: len(load_parser(p["semantic_parser"], p["semantic_groups"]).class_names),
        description="scene-parser class probabilities smoothed under the grey image (high level)",
    ),
}


def _check_names(names):
    if isinstance(names, str):
        raise TypeError(f"feature names must be a sequence of names, got the string {names!r}; "
                        f"write ({names!r},)")
    names = tuple(names)
    if not names:
        raise ValueError("at least one feature name is needed")
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; known: {sorted(FEATURES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"feature names must not repeat, got {list(names)}")
    return names


def feature_dim(names, params):
    """Total length of the concatenated descriptor for these feature names and parameters."""
    return sum(FEATURES[n].dim(params) for n in _check_names(names))


def compute_features(gray, names, params):
    """Concatenated per-pixel features.

    Parameters
    ----------
    gray : ndarray of shape (H, W)
        Luminance in [0, 1].
    names : sequence of str
        Registered feature names (see `FEATURES`), in output order.
    params : mapping
        Feature parameters (``patch_size``, ``daisy_*``); see
        ``deepcolor.features.config.FeatureConfig``.

    Returns
    -------
    features : ndarray of shape (H, W, D), float32
    """
    names = _check_names(names)
    gray = check_gray(gray)
    parts = [FEATURES[n].compute(gray, params) for n in names]  # each (H, W, d_i)
    return np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
