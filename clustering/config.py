"""Settings of the adaptive clustering and of the choice of cluster (Cheng et al. 2016, Alg. 2, 3).

`ClusterConfig` holds the defaults that `AdaptiveClustering` and
`select_cluster` take, and the choices of global descriptor, histogram
distance and searched layers, so the Python API and the command line run the
same method. This module imports no other part of the stage.
"""

import math
from dataclasses import dataclass

from deepcolor.config import Config, check_bool, check_one_of, check_positive_float, check_positive_int

# Global descriptors of an image (deepcolor.clustering.descriptors).
DESCRIPTORS = ("gist", "semantic", "gist+semantic")
# Distances between semantic histograms (deepcolor.clustering.selector).
HISTOGRAM_DISTANCES = ("chi2", "hellinger", "l1")
# Which layers' clusters compete for a target: every layer, or layer 0 only.
SEARCH_LAYERS = ("all", "top")


@dataclass(frozen=True)
class ClusterConfig(Config):
    """The adaptive clustering of the references and the choice of cluster (Cheng et al. 2016, Alg. 2, 3).

    The paper gives none of these values; ours were measured on the Intel
    scenes (2,000 train references, 600 test photos) and BSDS500 (train
    references, val photos); docs/DESIGN.md has every number.
    """

    # N^0, the clusters of the top layer; 1 trains the single network. 6
    # measured better than 12 (smaller clusters specialise on too little).
    n_clusters: int = 6
    # Minimum number of reference images per network.
    mu: int = 40
    # Error threshold in dB on E = -PSNR: a reference colorized by its
    # cluster's network at PSNR >= -epsilon leaves the later layers.
    epsilon: float = -26.0
    # At most this many layers. 1 by default: the networks of a second layer
    # (the hard references) lowered the mean PSNR whenever the selector could
    # pick them (-0.28 dB on the Intel scenes); set 2 or more for the paper's
    # full hierarchy.
    max_layers: int = 1
    # Global descriptor of an image (deepcolor.clustering.descriptors): the
    # semantic layout measured +0.22 dB over one network on the Intel scenes,
    # the GIST-like descriptor +0.03.
    descriptor: str = "semantic"
    # Selection: the `n_candidates` clusters nearest by global descriptor,
    # then the one of smallest semantic-histogram distance; 1 = global only.
    n_candidates: int = 3
    histogram_distance: str = "hellinger"
    # Which layers' clusters compete: "top" (layer 0 only) or "all".
    search_layers: str = "top"
    # Each cluster's network starts from the network of all references
    # (trained first) rather than from random weights: +0.11 to +0.16 dB on
    # the Intel scenes (GIST clusters).
    warm_start: bool = True
    # Learning rate of that fine-tuning (Adam): 1e-4 measured better than the
    # first training's 1e-3 (+0.04 to +0.07 dB): a cluster's network stays
    # near the all-reference one.
    finetune_lr: float = 1e-4
    seed: int = 0

    def __post_init__(self):
        for name in ("n_clusters", "mu", "max_layers", "n_candidates"):
            check_positive_int(name, getattr(self, name))
        if self.mu < 2:
            raise ValueError(f"mu must be at least 2 (a network needs a training and a held-out image), got {self.mu}")
        if not isinstance(self.epsilon, (int, float)) or isinstance(self.epsilon, bool) or not math.isfinite(self.epsilon):
            raise ValueError(f"epsilon must be a finite number of dB (E = -PSNR, so e.g. -26), got {self.epsilon!r}")
        check_one_of("descriptor", self.descriptor, DESCRIPTORS)
        check_one_of("histogram_distance", self.histogram_distance, HISTOGRAM_DISTANCES)
        check_one_of("search_layers", self.search_layers, SEARCH_LAYERS)
        check_bool("warm_start", self.warm_start)
        check_positive_float("finetune_lr", self.finetune_lr)
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
