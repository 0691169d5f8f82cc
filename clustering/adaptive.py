"""Adaptive image clustering (Cheng et al. 2016, Algorithm 3), as a scikit-learn-style estimator.

Layer 0 k-means the references' global descriptors into ``n_clusters``
(N^0) clusters; each layer trains one network per cluster (a callback, so the
estimator knows nothing of networks), scores every image of the layer by its
cluster's network, and removes the images already colorized well: error
E(I) = -PSNR(I) <= epsilon. The next layer k-means the images left into
(images left) // mu clusters, until fewer than mu images remain.

Two rules the paper leaves open are ours:

- Every cluster holds at least ``mu`` images ("a minimum number of images
  per network"): after k-means, the smallest cluster below mu is dissolved
  into the nearest remaining centres and the centres recomputed, until none is
  below mu. Layer 0 therefore has at most n // mu clusters.
- ``max_layers`` bounds the depth: a layer that removes no image would
  otherwise repeat itself.

The estimator follows scikit-learn's conventions: `__init__` only stores its
keyword-only parameters, whose defaults are `ClusterConfig`'s; `fit` validates
them and sets the attributes ending in ``_``; `predict` before `fit` raises
scikit-learn's `NotFittedError`.
"""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted

from deepcolor.config import check_positive_int

from .config import ClusterConfig


def well_colorized(psnr, epsilon):
    """The removal rule: True where E(I) = -PSNR(I) <= epsilon (epsilon in dB, so -epsilon is a PSNR)."""
    return -np.asarray(psnr, np.float64) <= epsilon


def kmeans_min_size(X, n_clusters, min_size, seed=0, n_init=10):
    """k-means labels and centres of `X` (N, D) with every cluster holding at least `min_size` rows.

    Returns
    -------
    labels : ndarray (N,) int in [0, k)
    centers : ndarray (k, D) float64, the means of the clusters' rows
    """
    X = np.asarray(X, np.float64)
    n = len(X)
    if n == 0:
        raise ValueError("cannot cluster an empty set")
    k = max(1, min(int(n_clusters), n // max(1, int(min_size)) or 1, len(np.unique(X, axis=0))))
    if k == 1:
        return np.zeros(n, int), X.mean(axis=0, keepdims=True)
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(X)
    labels, centers = km.labels_.copy(), km.cluster_centers_
    while True:
        counts = np.bincount(labels, minlength=len(centers))
        small = int(np.argmin(counts))
        if counts[small] >= min_size or len(centers) == 1:
            break
        keep = np.flatnonzero(np.arange(len(centers)) != small)
        centers = centers[keep]
        moved = labels == small
        labels = np.searchsorted(keep, np.where(moved, keep[0], labels))  # renumber the others
        if moved.any():
            dist = ((X[moved, None, :] - centers[None]) ** 2).sum(axis=-1)
            labels[moved] = np.argmin(dist, axis=1)
        centers = np.stack([X[labels == j].mean(axis=0) for j in range(len(centers))])
    return labels, centers


class AdaptiveClustering(BaseEstimator):
    """Layers of k-means clusters over the references, each layer holding the images not yet colorized well.

    Parameters
    ----------
    n_clusters : int, keyword-only
        N^0, the number of clusters of layer 0.
    mu : int, keyword-only
        Minimum number of images per cluster (per network); the layers stop
        when fewer remain, and layer l > 0 has (images left) // mu clusters.
    epsilon : float, keyword-only
        Error threshold in dB on E = -PSNR: an image whose colorization by its
        cluster's network reaches PSNR >= -epsilon is removed from later layers.
    max_layers : int, keyword-only
        At most this many layers.
    random_state : int, keyword-only
        Seed of k-means (layer l uses random_state + l).

    The defaults are ``ClusterConfig``'s (``seed`` for `random_state`), so
    ``AdaptiveClustering()`` clusters as ``deepcolor train`` does by default.

    Attributes
    ----------
    cluster_centers_ : ndarray (C, D)
        Centres of every cluster of every layer, layer by layer.
    cluster_layers_ : ndarray (C,) int
    cluster_members_ : list of ndarray
        Row indices of X in each cluster.
    estimators_ : list
        What `fit_layer` returned for each cluster (its network).
    labels_ : ndarray (n_layers, N) int
        Cluster index (into the arrays above) of each image in each layer, -1 when absent.
    psnr_ : ndarray (n_layers, N) float
        Each image's PSNR by its cluster's network in each layer, NaN when absent.
    n_layers_ : int
    """

    def __init__(self, *, n_clusters=ClusterConfig.n_clusters, mu=ClusterConfig.mu,
                 epsilon=ClusterConfig.epsilon, max_layers=ClusterConfig.max_layers,
                 random_state=ClusterConfig.seed):
        self.n_clusters = n_clusters
        self.mu = mu
        self.epsilon = epsilon
        self.max_layers = max_layers
        self.random_state = random_state

    def _validate(self):
        for name in ("n_clusters", "mu", "max_layers"):
            check_positive_int(name, getattr(self, name), numpy=True)
        if self.mu < 2:
            raise ValueError(f"mu must be at least 2 (a network needs a training and a held-out image), got {self.mu}")
        if not isinstance(self.epsilon, (int, float, np.number)) or isinstance(self.epsilon, bool) \
                or not np.isfinite(self.epsilon):
            raise ValueError(f"epsilon must be a finite number of dB, got {self.epsilon!r}")

    def fit(self, X, fit_layer):
        """Cluster `X` (N, D) layer by layer.

        Parameters
        ----------
        X : ndarray (N, D)
            Global descriptors of the references.
        fit_layer : callable
            ``fit_layer(layer, members) -> (estimators, psnr)``: `members` is a
            list of index arrays (one per cluster); returns one fitted object
            per cluster and, for each cluster, the PSNR (dB) of each member
            image's colorization by that cluster's network (list of arrays
            aligned with `members`).

        Returns
        -------
        self : AdaptiveClustering
        """
        self._validate()
        X = np.asarray(X, np.float64)
        if X.ndim != 2 or len(X) < 2:
            raise ValueError(f"X must be (N, D) with N >= 2, got shape {X.shape}")
        n = len(X)
        remaining = np.arange(n)
        centers, layers, members, estimators, labels, psnrs = [], [], [], [], [], []
        k = self.n_clusters
        for layer in range(self.max_layers):
            if layer > 0:
                if len(remaining) < self.mu:
                    break
                k = len(remaining) // self.mu
            lab, cen = kmeans_min_size(X[remaining], k, self.mu, seed=self.random_state + layer)
            groups = [remaining[lab == j] for j in range(len(cen))]
            fitted, scores = fit_layer(layer, groups)
            if len(fitted) != len(groups) or len(scores) != len(groups):
                raise ValueError(f"fit_layer returned {len(fitted)} estimators and {len(scores)} scores "
                                 f"for {len(groups)} clusters")
            row_labels, row_psnr = np.full(n, -1), np.full(n, np.nan)
            for j, (idx, est, score) in enumerate(zip(groups, fitted, scores)):
                score = np.asarray(score, np.float64)
                if score.shape != idx.shape:
                    raise ValueError(f"fit_layer scored {score.shape} images of a cluster of {len(idx)}")
                row_labels[idx] = len(centers)
                row_psnr[idx] = score
                centers.append(cen[j])
                layers.append(layer)
                members.append(idx)
                estimators.append(est)
            labels.append(row_labels)
            psnrs.append(row_psnr)
            remaining = remaining[~well_colorized(row_psnr[remaining], self.epsilon)]
        self.cluster_centers_ = np.stack(centers)
        self.cluster_layers_ = np.asarray(layers)
        self.cluster_members_ = members
        self.estimators_ = estimators
        self.labels_ = np.stack(labels)
        self.psnr_ = np.stack(psnrs)
        self.n_layers_ = len(labels)
        return self

    def predict(self, X, layer=0):
        """Nearest cluster of `layer` for each row of `X`: indices into `cluster_centers_`.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before `fit` (a ValueError and an AttributeError).
        ValueError
            If the model has no layer `layer`.
        """
        check_is_fitted(self, "cluster_centers_")
        X = np.asarray(X, np.float64)
        idx = np.flatnonzero(self.cluster_layers_ == layer)
        if len(idx) == 0:
            raise ValueError(f"no layer {layer}: the model has {self.n_layers_} layer(s)")
        d = ((X[:, None, :] - self.cluster_centers_[idx][None]) ** 2).sum(axis=-1)
        return idx[np.argmin(d, axis=1)]
