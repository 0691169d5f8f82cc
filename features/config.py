"""Settings of the per-pixel features and of the training samples (Cheng et al. 2015, Sec. 3.1).

`FeatureConfig` holds the defaults that `patch_features` and `daisy_features`
take, and the DAISY choices, so the Python API and the command line compute the
same features.

The feature functions import this module for their defaults, so it imports
none of them: it names the features (`FEATURE_NAMES`; the registry
``deepcolor.features.FEATURES`` maps each name to its function, and a test
keeps the two equal) and computes the descriptor's length itself (`dim`). The
semantic feature's class merges and smoothings come from
``features/classprob.py`` and ``features/semantic.py``, which import nothing of
this stage's settings.
"""

import hashlib
import json
from dataclasses import dataclass

from deepcolor.config import (Config, check_non_negative_float, check_one_of, check_positive_float,
                              check_positive_int)

from .classprob import GROUP_MERGES
from .parsers import load_parser
from .semantic import SMOOTHINGS

# The per-pixel features, low to high level (Cheng et al. 2015, Sec. 3.1).
FEATURE_NAMES = ("patch", "daisy", "semantic")
# DAISY implementations (deepcolor.features.daisy): scikit-image's definition or OpenCV's.
DAISY_BACKENDS = ("skimage", "opencv")
# DAISY normalisations, as in skimage.feature.daisy.
DAISY_NORMALIZATIONS = ("l1", "l2", "daisy", "off")


@dataclass(frozen=True)
class FeatureConfig(Config):
    """How per-pixel features and training samples are made from an image."""

    # Names from the deepcolor.features registry, concatenated in this order.
    # Cheng et al. 2015, Sec. 3.1: low level (patch) + mid level (DAISY) +
    # high level ("semantic"). The semantic feature is a default since issue
    # 16: with the grey-image parser of issue 15 it gains on validation photos
    # that neither the references nor the parser saw (+1.0 dB on Intel scenes,
    # +1.1 dB on CamVid val, one network each; docs/DESIGN.md).
    features: tuple = ("patch", "daisy", "semantic")
    # Longest side, in pixels, of the image the features are computed on (never
    # upsampled). Our choice: the paper does not say; 256 is the working size
    # of most colorizers (docs/DESIGN.md).
    working_size: int = 256
    # Side of the low-level patch: 7x7 = 49 values (Cheng et al. 2015, Sec. 3.1).
    patch_size: int = 7
    # DAISY layout: (rings * histograms + 1) * orientations = 32 values, the
    # length secondary sources give for the paper. Radius, normalisation and
    # backend chosen by measurement (docs/DESIGN.md): radius 5 at the working
    # size, scikit-image's L1 normalisation and backend.
    daisy_radius: int = 5
    daisy_rings: int = 1
    daisy_histograms: int = 3
    daisy_orientations: int = 8
    daisy_backend: str = "skimage"
    daisy_normalization: str = "l1"
    # Semantic feature (used when "semantic" is in `features`): the parser
    # ("default": the grey-image parser bundled with deepcolor; or a parser
    # directory of `deepcolor parser train`; or the ADE20K .tflite file), the
    # merge of its classes ("parser": its 12 colour classes as they are, +0.24
    # dB over the 8 coarse groups on both validation sets of issue 16; the
    # coarse groups had been best with issue 3's weaker parser) and the
    # guided-filter smoothing of the probability maps (better than none).
    # docs/DESIGN.md has the numbers.
    semantic_parser: str = "default"
    semantic_groups: str = "parser"
    semantic_smoothing: str = "guided"
    semantic_radius: int = 8
    semantic_eps: float = 1e-2
    # Class merge of the parser (`semantic_parser`) for each image's global
    # semantic descriptor and histogram, which the clustering and the
    # cluster selector use (deepcolor.clustering). "parser": its own classes.
    histogram_groups: str = "parser"
    # Training pixels sampled uniformly at random from each reference image
    # (2048 measured as good as 4096 and twice as fast to train).
    pixels_per_image: int = 2048
    # References whose chrominance spread (RMS distance of U, V from their
    # image mean) is below this are skipped as near-grey or single-tinted
    # (sepia) photos: they teach no colour. 0.01 skips the ~500 near-grey
    # Intel scenes and 1 of the 300 BSDS500 references (docs/DESIGN.md).
    min_chroma_spread: float = 0.01
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.features, str):
            raise ValueError(f"features must be a list of names, got the string {self.features!r}; "
                             f"write [{self.features!r}]")
        if not self.features:
            raise ValueError("features must name at least one feature")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"features must not repeat, got {list(self.features)}")
        unknown = [n for n in self.features if n not in FEATURE_NAMES]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; known: {sorted(FEATURE_NAMES)}")
        for name in ("working_size", "patch_size", "daisy_radius", "daisy_rings",
                     "daisy_histograms", "daisy_orientations", "pixels_per_image"):
            check_positive_int(name, getattr(self, name))
        if self.patch_size % 2 == 0:
            raise ValueError(f"patch_size must be a positive odd int, got {self.patch_size!r}")
        if self.working_size < 16:
            raise ValueError(f"working_size must be at least 16, got {self.working_size}")
        check_one_of("daisy_backend", self.daisy_backend, DAISY_BACKENDS)
        check_one_of("daisy_normalization", self.daisy_normalization, DAISY_NORMALIZATIONS)
        check_non_negative_float("min_chroma_spread", self.min_chroma_spread)
        if not isinstance(self.semantic_parser, str) or not self.semantic_parser:
            raise ValueError(f"semantic_parser must be 'default' or a path, got {self.semantic_parser!r}")
        check_one_of("semantic_groups", self.semantic_groups, sorted(GROUP_MERGES))
        check_one_of("histogram_groups", self.histogram_groups, sorted(GROUP_MERGES))
        check_one_of("semantic_smoothing", self.semantic_smoothing, SMOOTHINGS)
        check_positive_int("semantic_radius", self.semantic_radius)
        check_positive_float("semantic_eps", self.semantic_eps)
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    def params(self):
        """The mapping that `deepcolor.features.compute_features` takes."""
        return self.to_dict()

    def extraction_key(self):
        """Hash of every setting that changes what a shard holds, and of the parser's weights.

        The parser is in every shard: its histogram and semantic descriptor.
        """
        settings = self.to_dict()
        settings["semantic_parser_sha256"] = load_parser(self.semantic_parser).sha256
        text = json.dumps(settings, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def dim(self):
        """Length of the concatenated per-pixel descriptor (what `deepcolor.features.feature_dim` gives)."""
        lengths = {
            "patch": lambda: self.patch_size ** 2,
            "daisy": lambda: daisy_dim(self.daisy_rings, self.daisy_histograms, self.daisy_orientations),
            "semantic": lambda: len(load_parser(self.semantic_parser, self.semantic_groups).class_names),
        }
        return sum(lengths[name]() for name in self.features)


def daisy_dim(rings=FeatureConfig.daisy_rings, histograms=FeatureConfig.daisy_histograms,
              orientations=FeatureConfig.daisy_orientations):
    """Length of one DAISY descriptor: (rings * histograms + 1) * orientations."""
    return (rings * histograms + 1) * orientations
