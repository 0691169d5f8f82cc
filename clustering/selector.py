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

The default (``ClusterConfig.histogram_distance``) is measured in docs/DESIGN.md.
The functions take their defaults from `ClusterConfig`, as the command line does.
"""

import numpy as np

from deepcolor.config import check_one_of

from .config import HISTOGRAM_DISTANCES, SEARCH_LAYERS, ClusterConfig


def histogram_distance(h, hists, kind=ClusterConfig.histogram_distance):
    """Distance of histogram `h` (K,) to each row of `hists` (C, K): (C,) float64.

    `kind` is one of `HISTOGRAM_DISTANCES`; default ``ClusterConfig``'s ("hellinger").
    """
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


def candidate_clusters(descriptor, centers, layers, n_candidates, search=ClusterConfig.search_layers):
    """Indices of the `n_candidates` clusters nearest to `descriptor`, nearest first.

    Parameters
    ----------
    descriptor : ndarray (D,)
    centers : ndarray (C, D)
    layers : ndarray (C,) int
        Layer of each cluster.
    n_candidates : int
    search : {"all", "top"}, optional
        "all": clusters of every layer compete; "top": layer 0 only. Default
        ``ClusterConfig``'s ("top").
    """
    centers = np.atleast_2d(np.asarray(centers, np.float64))
    if centers.shape[1] != np.shape(descriptor)[-1]:
        raise ValueError(f"descriptor of length {np.shape(descriptor)[-1]} against centres of "
                         f"length {centers.shape[1]}")
    check_one_of("search", search, SEARCH_LAYERS)
    eligible = np.flatnonzero(np.asarray(layers) == 0) if search == "top" else np.arange(len(centers))
    d = np.linalg.norm(centers[eligible] - np.asarray(descriptor, np.float64), axis=1)
    return eligible[np.argsort(d, kind="stable")[:max(1, int(n_candidates))]]


def select_cluster(descriptor, histogram, centers, histograms, layers,
                   n_candidates=ClusterConfig.n_candidates, distance=ClusterConfig.histogram_distance,
                   search=ClusterConfig.search_layers):
    """The chosen cluster for a target, and the candidates it was chosen from.

    Parameters
    ----------
    descriptor : ndarray (D,)
        The target's global descriptor.
    histogram : ndarray (K,)
        The target's semantic histogram (class shares).
    centers : ndarray (C, D)
        Centres of the clusters.
    histograms : ndarray (C, K)
        Mean semantic histogram of each cluster's images.
    layers : ndarray (C,) int
        Layer of each cluster.
    n_candidates, distance, search : optional
        As ``ClusterConfig``'s ``n_candidates``, ``histogram_distance`` and
        ``search_layers``, whose values are the defaults (3 candidates, Hellinger
        distance, top layer only).

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
