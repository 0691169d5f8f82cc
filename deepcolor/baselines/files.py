"""A baseline's model directory: writing and reading it, checksums verified.

The directory holds ``manifest.json`` (format, version, baseline name,
settings, fitted values, training record, sha256 of every file),
``weights.safetensors`` and, where the baseline has fitted arrays (palette,
bin centres), ``arrays.npz`` read with ``allow_pickle=False``. Loading
verifies every checksum (`deepcolor.modelfiles.read_verified`).
"""

import io
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from deepcolor import __version__
from deepcolor.baselines import NAMES, baseline_class
from deepcolor.modelfiles import MANIFEST, ModelError, read_verified, versions, write_model_dir

FORMAT = "deepcolor-baseline"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
ARRAYS = "arrays.npz"


def save_baseline(baseline, model_dir):
    """Write a fitted baseline's directory (`Baseline.save`), replacing any there whole.

    One writer for every model folder (`deepcolor.modelfiles.write_model_dir`):
    the files and the manifest go to a new folder beside, which then takes
    the place of `model_dir` in one rename.
    """
    model_dir = Path(model_dir)
    state = {k: v.contiguous() for k, v in baseline.module_.state_dict().items()}
    # one metadata key: the same network gives the same bytes (deepcolor.ensemble)
    files = {WEIGHTS: st_save(state, metadata={"format": f"{FORMAT} {__version__}"})}
    arrays = baseline._arrays()
    if arrays:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        files[ARRAYS] = buf.getvalue()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "baseline": baseline.name,
        "settings": baseline.settings(),
        "fitted": baseline._fitted(),
        "versions": versions(),
        "history": getattr(baseline, "history_", {}),
    }
    write_model_dir(model_dir, manifest, files, "baseline")


def load_baseline(model_dir, cls):
    """The baseline in `model_dir`, as the class its manifest names, which must be `cls` or below it.

    Raises
    ------
    deepcolor.modelfiles.ModelError
        Naming the file and the problem (see `Baseline.load`).
    """
    model_dir = Path(model_dir)
    mpath = model_dir / MANIFEST
    manifest, blobs = read_verified(model_dir, FORMAT, FORMAT_VERSION, "baseline")
    name = manifest.get("baseline")
    if name not in NAMES:
        raise ModelError(f"{mpath}: unknown baseline {name!r}; known: {sorted(NAMES)}")
    klass = baseline_class(name)
    if not issubclass(klass, cls):
        raise ModelError(f"{mpath}: a {name!r} baseline, not a {cls.name!r} one")
    try:
        model = klass(**manifest["settings"])
        model._check_settings()
        model._set_fitted(manifest["fitted"])
        if ARRAYS in blobs:
            with np.load(io.BytesIO(blobs[ARRAYS]), allow_pickle=False) as npz:
                model._set_arrays({k: npz[k] for k in npz.files})
        module = model._build()
        module.load_state_dict(st_load(blobs[WEIGHTS]), strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
        raise ModelError(f"{mpath}: inconsistent baseline ({type(exc).__name__}: {exc})") from None
    module.eval()
    model.module_ = module
    model.history_ = manifest.get("history", {})
    model.manifest = manifest
    return model
