"""Adaptive clustering of the references and the choice of cluster for a target.

Cheng et al. (2016) train one network per cluster of similar references
(`AdaptiveClustering`, Algorithm 3) and colorize a target with the network of
a cluster that is close to it both globally and semantically
(`select_cluster`, Algorithm 2). Installed as ``deepcolor.clustering``.
"""

from .config import DESCRIPTORS, HISTOGRAM_DISTANCES, SEARCH_LAYERS
from .descriptors import combine, gist_descriptor, image_descriptors, semantic_descriptor
from .selector import candidate_clusters, histogram_distance, select_cluster

__all__ = [
    "AdaptiveClustering",
    "DESCRIPTORS",
    "HISTOGRAM_DISTANCES",
    "SEARCH_LAYERS",
    "candidate_clusters",
    "combine",
    "gist_descriptor",
    "histogram_distance",
    "image_descriptors",
    "kmeans_min_size",
    "select_cluster",
    "semantic_descriptor",
    "well_colorized",
]

# scikit-learn takes about 2 s to import and only training needs it: the
# clustering names load on first use (PEP 562), so colorizing starts faster.
_ADAPTIVE = ("AdaptiveClustering", "kmeans_min_size", "well_colorized")


def __getattr__(name):
    if name in _ADAPTIVE:
        from . import adaptive  # lazy: scikit-learn is heavy (above)

        return getattr(adaptive, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
