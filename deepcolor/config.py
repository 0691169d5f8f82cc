"""Settings of each stage, one frozen dataclass per stage.

Defaults cite the paper where it fixes them; every other default is our choice,
documented with the measurement that decided it in docs/DESIGN.md. Each config
validates itself on construction, round-trips through a plain dict (stored as
JSON in every artifact) and can be loaded from a TOML file.
"""

import dataclasses
import hashlib
import math
import json
import tomllib
from dataclasses import dataclass


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _positive_float(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _one_of(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _non_negative_float(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


class _Config:
    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} setting(s) {unknown}; known: {sorted(names)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def replace(self, **changes):
        """A copy with `changes` applied; None values are ignored (unset CLI options)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class FeatureConfig(_Config):
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
        from deepcolor.features import DAISY_BACKENDS, DAISY_NORMALIZATIONS, FEATURES
        from deepcolor.features.classprob import GROUP_MERGES
        from deepcolor.features.semantic import SMOOTHINGS

        if isinstance(self.features, str):
            raise ValueError(f"features must be a list of names, got the string {self.features!r}; "
                             f"write [{self.features!r}]")
        if not self.features:
            raise ValueError("features must name at least one feature")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"features must not repeat, got {list(self.features)}")
        unknown = [n for n in self.features if n not in FEATURES]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; known: {sorted(FEATURES)}")
        for name in ("working_size", "patch_size", "daisy_radius", "daisy_rings",
                     "daisy_histograms", "daisy_orientations", "pixels_per_image"):
            _positive_int(name, getattr(self, name))
        if self.patch_size % 2 == 0:
            raise ValueError(f"patch_size must be a positive odd int, got {self.patch_size!r}")
        if self.working_size < 16:
            raise ValueError(f"working_size must be at least 16, got {self.working_size}")
        _one_of("daisy_backend", self.daisy_backend, DAISY_BACKENDS)
        _one_of("daisy_normalization", self.daisy_normalization, DAISY_NORMALIZATIONS)
        _non_negative_float("min_chroma_spread", self.min_chroma_spread)
        if not isinstance(self.semantic_parser, str) or not self.semantic_parser:
            raise ValueError(f"semantic_parser must be 'default' or a path, got {self.semantic_parser!r}")
        _one_of("semantic_groups", self.semantic_groups, sorted(GROUP_MERGES))
        _one_of("histogram_groups", self.histogram_groups, sorted(GROUP_MERGES))
        _one_of("semantic_smoothing", self.semantic_smoothing, SMOOTHINGS)
        _positive_int("semantic_radius", self.semantic_radius)
        _positive_float("semantic_eps", self.semantic_eps)
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    def params(self):
        """The mapping that `deepcolor.features.compute_features` takes."""
        return self.to_dict()

    def extraction_key(self):
        """Hash of every setting that changes what a shard holds, and of the parser's weights.

        The parser is in every shard: its histogram and semantic descriptor.
        """
        from deepcolor.features import load_parser

        settings = self.to_dict()
        settings["semantic_parser_sha256"] = load_parser(self.semantic_parser).sha256
        text = json.dumps(settings, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def dim(self):
        from deepcolor.features import feature_dim

        return feature_dim(self.features, self.params())


@dataclass(frozen=True)
class TrainConfig(_Config):
    """How one chrominance network is trained (Cheng et al. 2015, Sec. 3.2)."""

    # Three hidden layers and a linear two-value (U, V) output (paper). Width:
    # ours (64 measured better than 40, the "half the input" of secondary
    # sources, and than 128; docs/DESIGN.md).
    hidden: int = 64
    n_hidden_layers: int = 3
    # Dropout after each hidden layer while training: 0.1 measured +0.13 dB.
    dropout: float = 0.1
    # Semantic dropout while training: for this share of the training pixels
    # the semantic feature is replaced by its mean, so the network cannot lean
    # on it alone. Only acts when "semantic" is a feature. 0.3 measured +0.11
    # dB on BSDS500 val and +0.01 on MSRC-v2, within noise: off by default
    # (docs/DESIGN.md).
    semantic_dropout: float = 0.0
    # Loss weight of each reference image's pixels: "uniform" (the paper's
    # least squares) or "psnr" (images of muted colour weigh more, as they do
    # in the mean per-image PSNR; deepcolor.train.image_weights). "psnr"
    # measured +0.17 dB (without semantics) and +0.30 dB (with) on MSRC-v2,
    # level on BSDS500 val (docs/DESIGN.md).
    image_weighting: str = "psnr"
    # Least squares on U, V (paper) with Adam; batch and schedule are ours.
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 1024
    max_epochs: int = 60
    # Early stopping: stop after `patience` epochs without a better
    # held-out MSE, keep the best weights. The held-out part is a fraction of
    # the reference *images* (not pixels), so it measures generalisation.
    patience: int = 6
    val_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self):
        for name in ("hidden", "n_hidden_layers", "batch_size", "max_epochs", "patience"):
            _positive_int(name, getattr(self, name))
        _positive_float("lr", self.lr)
        for name in ("dropout", "semantic_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        _non_negative_float("weight_decay", self.weight_decay)
        if self.image_weighting not in ("uniform", "psnr"):
            raise ValueError(f"image_weighting must be 'uniform' or 'psnr', got {self.image_weighting!r}")
        if not isinstance(self.val_fraction, (int, float)) or not 0 < self.val_fraction < 0.9:
            raise ValueError(f"val_fraction must be in (0, 0.9), got {self.val_fraction!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")


@dataclass(frozen=True)
class RefineConfig(_Config):
    """Joint bilateral refinement of U, V guided by Y (Cheng et al. 2015, Sec. 3.3).

    The paper gives no window or sigmas; ours were chosen on BSDS500 val
    (docs/DESIGN.md): d=15 gives +0.23 dB over no refinement, d=9 +0.15 dB;
    d=25 another +0.08 dB at three times the cost. Applied at the working
    size, before upsampling.
    """

    enabled: bool = True
    diameter: int = 15
    sigma_color: float = 0.05  # in luminance units, Y in [0, 1]
    sigma_space: float = 6.0  # in pixels of the working-size image

    def __post_init__(self):
        if not isinstance(self.enabled, bool):
            raise ValueError(f"enabled must be a bool, got {self.enabled!r}")
        _positive_int("diameter", self.diameter)
        if self.diameter < 3:
            raise ValueError(f"diameter must be at least 3 (OpenCV's smallest window), got {self.diameter}")
        _positive_float("sigma_color", self.sigma_color)
        _positive_float("sigma_space", self.sigma_space)


@dataclass(frozen=True)
class ClusterConfig(_Config):
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
        from deepcolor.clustering import DESCRIPTORS, HISTOGRAM_DISTANCES, SEARCH_LAYERS

        for name in ("n_clusters", "mu", "max_layers", "n_candidates"):
            _positive_int(name, getattr(self, name))
        if self.mu < 2:
            raise ValueError(f"mu must be at least 2 (a network needs a training and a held-out image), got {self.mu}")
        if not isinstance(self.epsilon, (int, float)) or isinstance(self.epsilon, bool) or not math.isfinite(self.epsilon):
            raise ValueError(f"epsilon must be a finite number of dB (E = -PSNR, so e.g. -26), got {self.epsilon!r}")
        _one_of("descriptor", self.descriptor, DESCRIPTORS)
        _one_of("histogram_distance", self.histogram_distance, HISTOGRAM_DISTANCES)
        _one_of("search_layers", self.search_layers, SEARCH_LAYERS)
        if not isinstance(self.warm_start, bool):
            raise ValueError(f"warm_start must be a bool, got {self.warm_start!r}")
        _positive_float("finetune_lr", self.finetune_lr)
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")


CONFIG_SECTIONS = {"features": FeatureConfig, "train": TrainConfig, "refine": RefineConfig,
                   "clusters": ClusterConfig}


def load_toml(path):
    """Read a TOML file with optional [features], [train], [refine] and [clusters] tables.

    Returns a dict mapping section name to its config object (defaults for the
    sections the file leaves out).
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read settings file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(CONFIG_SECTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}; known: {sorted(CONFIG_SECTIONS)}")
    try:
        return {name: cls.from_dict(data.get(name, {})) for name, cls in CONFIG_SECTIONS.items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


