"""Settings of the chrominance network and its training (Cheng et al. 2015, Sec. 3.2).

`TrainConfig` configures `deepcolor.networks` (`ChromaNet` and its training),
as nanoGPT keeps GPTConfig beside GPT. It lives in this module of its own, not
in networks.py, because networks.py imports torch: reading a settings file
(`deepcolor.settings`), `deepcolor --help` and colorizing with a stored model's
settings do not need torch, and this module keeps them from loading it.
"""

from dataclasses import dataclass

from deepcolor.config import Config, check_non_negative_float, check_positive_float, check_positive_int


@dataclass(frozen=True)
class TrainConfig(Config):
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
            check_positive_int(name, getattr(self, name))
        check_positive_float("lr", self.lr)
        for name in ("dropout", "semantic_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        check_non_negative_float("weight_decay", self.weight_decay)
        if self.image_weighting not in ("uniform", "psnr"):
            raise ValueError(f"image_weighting must be 'uniform' or 'psnr', got {self.image_weighting!r}")
        if not isinstance(self.val_fraction, (int, float)) or not 0 < self.val_fraction < 0.9:
            raise ValueError(f"val_fraction must be in (0, 0.9), got {self.val_fraction!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
