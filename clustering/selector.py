"""Choosing a cluster for a target image (Cheng et al. 2016, Algorithm 2).

The target's global descriptor finds the clusters whose images look like it
(the candidates: the `n_candidates` nearest centres); its semantic histogram
then chooses among them the cluster whose images hold the same kinds of
things. With one candidate this is the choice by global descriptor alone,
which can be "globally similar but semantically different" (the paper's wheat
field that comes out blue).

Distances between histograms (class shares, each summing to 1):

- ``chi2``: sum (a - b)^2 / (a + b), the symmetric chi-squared distance: a
  difference in a rare class (a little sky) counts relative to its share, not
  drowned by the large classes as in L2.
- ``hellinger``: the Euclidean distance of the square-rooted histograms (a
  metric, bounded by sqrt 2).
- ``l1``: sum |a - b| (twice the share of pixels whose class would have to change).

The default is measured in docs/DESIGN.md.
"""

import numpy as np

HISTOGRAM_DISTANCES = ("chi2", "hellinger", "l1")
SEARCH_LAYERS = ("all", "top")


def histogram_distance(h, hists, kind="chi2"):
    """Distance of histogram `h` (K,) to each row of `hists` (C, K): (C,) float64."""
    h = np.asarray(h, np.float64)[None, :]
    hists = np.atleast_2d(np.asarray(hists, np.float64))
    if hists.shape[1] != h.shape[1]:
        raise ValueError(f"histograms of {h.shape[1]} and {hists.shape[1]} classes cannot be compared")
    if kind == "chi2":
        total = h + hists
        return np.sum(np.where(total > 0, (h - hists) ** 2 / np.where(total > 0, total, 1.0), 0.0), axis=1)
    if kind == "hellinger":
        return np.linalg.norm(np.sqrt(np.maximum(h, 0)) - np.sqrt(np.maximum(hists, 0)), axis=1)
    if kind == "l1":
        return np.abs(h - hists).sum(axis=1)
    raise ValueError(f"histogram distance must be one of {HISTOGRAM_DISTANCES}, got {kind!r}")


def candidate_clusters(descriptor, centers, layers, n_candidates, search="all"):
    """Indices of the `n_candidates` clusters nearest to `descriptor`, nearest first.

    Parameters
    ----------
    descriptor : ndarray (D,)
    centers : ndarray (C, D)
    layers : ndarray (C,) int
        Layer of each cluster.
    n_candidates : int
    search : {"all", "top"}
        "all": clusters of every layer compete; "top": layer 0 only.
    """
    centers = np.atleast_2d(np.asarray(centers, np.float64))
    if centers.shape[1] != np.shape(descriptor)[-1]:
        raise ValueError(f"descriptor of length {np.shape(descriptor)[-1]} against centres of "
                         f"length {centers.shape[1]}")
    if search not in SEARCH_LAYERS:
        raise ValueError(f"search must be one of {SEARCH_LAYERS}, got {search!r}")
    eligible = np.flatnonzero(np.asarray(layers) == 0) if search == "top" else np.arange(len(centers))
    d = np.linalg.norm(centers[eligible] - np.asarray(descriptor, np.float64), axis=1)
    return eligible[np.argsort(d, kind="stable")[:max(1, int(n_candidates))]]


def select_cluster(descriptor, histogram, centers, histograms, layers, n_candidates=3,
                   distance="chi2", search="all"):
    """The chosen cluster for a target, and the candidates it was chosen from.

    Returns
    -------
    chosen : int
        The candidate of smallest histogram distance (the nearest by global
        descriptor among equals).
    candidates : ndarray of int
        Nearest first by global descriptor.
    """
    candidates = candidate_clusters(descriptor, centers, layers, n_candidates, search)
    d = histogram_distance(histogram, np.asarray(histograms)[candidates], distance)
    return int(candidates[int(np.argmin(d))]), candidates
