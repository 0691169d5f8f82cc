"""Comparison systems for the report (issue #6): end-to-end CNN colorizers in Lab.

Each baseline is a scikit-learn-like estimator (`estimator.Baseline`):
settings in ``__init__``, ``fit(paths)`` on colour photos,
``predict_chroma(y)`` and ``colorize(y)`` with the grey input's luminance
kept exactly, ``save(dir)`` / ``Baseline.load(dir)`` with the project's
verified model directories (`files`). `NAMES` are the names used in saved
manifests and on the command line; `BASELINES` maps them to the classes.

======================= ================================================ =========================
name                    what                                             source
======================= ================================================ =========================
autoencoder             strided-conv autoencoder, tanh ab, MSE           Sayed et al.
unet-regression         U-Net, L2 on ab                                  Ronneberger et al. 2015
unet-classification     U-Net, cross-entropy over ab bins, annealed mean Zhang et al. 2016
palette                 per-pixel classification into a k-means palette  Li et al.
iizuka                  global + local features, fusion, joint classes   Iizuka et al. 2016
======================= ================================================ =========================

The package imports its modules (and torch) on first use of a class
(module ``__getattr__``, as scikit-image's lazy loading does): the names
alone, for the command line's choices, cost nothing.

Modules: `data` (training photos as tensors), `estimator` (`Baseline`),
`files` (model directories), `layers` (shared network parts), and one module
per baseline.
"""

from importlib import import_module

# name -> (module, class) of each baseline
_REGISTRY = {
    "autoencoder": ("autoencoder", "Autoencoder"),
    "unet-regression": ("unet", "UNetRegression"),
    "unet-classification": ("unet", "UNetClassification"),
    "palette": ("palette", "Palette"),
    "iizuka": ("iizuka", "Iizuka"),
}
NAMES = tuple(_REGISTRY)

# public name -> module that defines it, imported on first access
_LAZY = {
    "AB_RANGE": "data", "TrainingSet": "data", "load_training_set": "data",
    "Baseline": "estimator", "NotFittedError": "estimator",
    **{klass: module for module, klass in _REGISTRY.values()},
}


def baseline_class(name):
    """The class of the baseline `name` (one of `NAMES`); KeyError for another name."""
    module, klass = _REGISTRY[name]
    return getattr(import_module(f"{__name__}.{module}"), klass)


def __getattr__(attr):
    if attr == "BASELINES":
        globals()["BASELINES"] = registry = {name: baseline_class(name) for name in NAMES}
        return registry
    if attr in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[attr]}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["AB_RANGE", "BASELINES", "NAMES", "Autoencoder", "Baseline", "Iizuka", "NotFittedError", "Palette",
           "TrainingSet", "UNetClassification", "UNetRegression", "baseline_class", "load_training_set"]
