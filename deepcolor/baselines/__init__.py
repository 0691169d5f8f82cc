"""Comparison systems for the report (issue #6): end-to-end CNN colorizers in Lab.

Each baseline is a scikit-learn-like estimator (`common.Baseline`): settings
in ``__init__``, ``fit(paths)`` on colour photos, ``colorize(gray)`` with the
grey input's luminance kept exactly, ``save(dir)`` / ``Baseline.load(dir)``
with the project's verified model directories. `BASELINES` maps the names
used in saved manifests (and on the command line) to the classes.

======================= ================================================ =========================
name                    what                                             source
======================= ================================================ =========================
autoencoder             strided-conv autoencoder, tanh ab, MSE           Sayed et al.
unet-regression         U-Net, L2 on ab                                  Ronneberger et al. 2015
unet-classification     U-Net, cross-entropy over ab bins, annealed mean Zhang et al. 2016
palette                 per-pixel classification into a k-means palette  Li et al.
iizuka                  global + local features, fusion, joint classes   Iizuka et al. 2016
======================= ================================================ =========================
"""

from deepcolor.baselines.autoencoder import Autoencoder
from deepcolor.baselines.common import AB_RANGE, Baseline, NotFittedError, TrainingSet, load_training_set
from deepcolor.baselines.iizuka import Iizuka
from deepcolor.baselines.palette import Palette
from deepcolor.baselines.unet import UNetClassification, UNetRegression

BASELINES = {
    "autoencoder": Autoencoder,
    "unet-regression": UNetRegression,
    "unet-classification": UNetClassification,
    "palette": Palette,
    "iizuka": Iizuka,
}

__all__ = ["AB_RANGE", "BASELINES", "Autoencoder", "Baseline", "Iizuka", "NotFittedError", "Palette",
           "TrainingSet", "UNetClassification", "UNetRegression", "load_training_set"]
