"""The model directory: the networks, their settings, and checksums.

Layout::

    MODEL_DIR/
      manifest.json        format, versions, configs, networks, sha256 of every file
      net-000.safetensors  weights of network 0 (no normalisation)
      net-000.npz          its input normalisation: mean, std (allow_pickle=False)

No pickles: weights load with safetensors, arrays with ``allow_pickle=False``.
Loading verifies every file against the manifest's sha256 and rejects a
mismatch. This issue trains one network; the per-cluster ensemble
(Cheng et al. 2016, Algorithm 3) adds entries to ``networks``.
"""

import hashlib
import io
import json
import platform
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from deepcolor import __version__
from deepcolor.config import FeatureConfig, RefineConfig, TrainConfig
from deepcolor.io import atomic_write_bytes, atomic_write_text
from deepcolor.networks import ChromaNet, predict

FORMAT = "deepcolor-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class ModelError(Exception):
    """A model directory that cannot be used; the message names the file and the problem."""


def versions():
    import cv2
    import skimage
    import sklearn

    return {"deepcolor": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "opencv": cv2.__version__, "scikit-image": skimage.__version__,
            "scikit-learn": sklearn.__version__}


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def read_verified(model_dir, fmt, version, what):
    """A model-like directory's manifest and the bytes of every file it lists, checksums verified.

    Parameters
    ----------
    model_dir : Path
        Holds ``manifest.json`` with ``format``, ``format_version`` and
        ``files`` (file name -> sha256).
    fmt, version : str, int
        The expected format and version.
    what : str
        What the directory is, for messages ("model", "parser").

    Returns
    -------
    manifest : dict
    blobs : dict of file name -> bytes

    Raises
    ------
    ModelError
        Naming the file and the problem: missing, unreadable, another format
        or version, or a file whose sha256 differs from the manifest's.
    """
    model_dir = Path(model_dir)
    mpath = model_dir / MANIFEST
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: no such {what} directory")
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise ModelError(f"{mpath}: missing; {model_dir} is not a deepcolor {what} directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{mpath}: unreadable {what} manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{mpath}: not a deepcolor {what} manifest (a JSON {type(manifest).__name__})")
    if manifest.get("format") != fmt:
        raise ModelError(f"{mpath}: not a deepcolor {what} manifest (format={manifest.get('format')!r})")
    if manifest.get("format_version") != version:
        raise ModelError(f"{mpath}: {what} format version {manifest.get('format_version')!r}, "
                         f"this deepcolor reads version {version}")
    if not isinstance(manifest.get("files"), dict):
        raise ModelError(f"{mpath}: {what} manifest without a table of files and checksums")
    blobs = {}
    for name, sha in manifest["files"].items():
        path = model_dir / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None
        if _sha(data) != sha:
            raise ModelError(f"{path}: checksum mismatch (sha256 differs from {mpath}); the {what} is corrupt")
        blobs[name] = data
    return manifest, blobs


class Model:
    """A trained colorization model: networks plus the settings that made them.

    Parameters
    ----------
    networks : list of ChromaNet
    feature_config : FeatureConfig
    train_config : TrainConfig
    refine_config : RefineConfig
    info : dict, optional
        Training record (history, data, timings), stored in the manifest.
    """

    def __init__(self, networks, feature_config, train_config, refine_config=None, info=None):
        if not networks:
            raise ValueError("a model needs at least one network")
        self.networks = list(networks)
        self.feature_config = feature_config
        self.train_config = train_config
        self.refine_config = refine_config or RefineConfig()
        self.info = info or {}

    def predict_uv(self, features, network=0):
        """Chrominance (N, 2) float32 for features (N, D) float32."""
        return predict(self.networks[network], features)

    def save(self, model_dir):
        """Write the model directory; each file atomically, the manifest last."""
        model_dir = Path(model_dir)
        files, nets = {}, []
        for i, net in enumerate(self.networks):
            state = {k: v.contiguous() for k, v in net.state_dict().items() if k not in ("mean", "std")}
            weights = st_save(state, metadata={"format": FORMAT, "deepcolor": __version__})
            buf = io.BytesIO()
            np.savez(buf, mean=net.mean.numpy(), std=net.std.numpy())
            norm = buf.getvalue()
            wname, nname = f"net-{i:03d}.safetensors", f"net-{i:03d}.npz"
            atomic_write_bytes(model_dir / wname, weights)
            atomic_write_bytes(model_dir / nname, norm)
            files[wname], files[nname] = _sha(weights), _sha(norm)
            nets.append({"weights": wname, "normalisation": nname, "in_dim": net.in_dim,
                         "hidden": net.hidden[0].out_features, "n_hidden_layers": len(net.hidden)})
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "versions": versions(),
            "feature_config": self.feature_config.to_dict(),
            "train_config": self.train_config.to_dict(),
            "refine_config": self.refine_config.to_dict(),
            "networks": nets,
            "files": files,
            "info": self.info,
        }
        atomic_write_text(model_dir / MANIFEST, json.dumps(manifest, indent=1, default=float))

    @classmethod
    def load(cls, model_dir):
        """Load and verify a model directory; raises ModelError naming the file and the problem."""
        model_dir = Path(model_dir)
        mpath = model_dir / MANIFEST
        manifest, blobs = read_verified(model_dir, FORMAT, FORMAT_VERSION, "model")
        try:
            fcfg = FeatureConfig.from_dict(manifest["feature_config"])
            tcfg = TrainConfig.from_dict(manifest["train_config"])
            rcfg = RefineConfig.from_dict(manifest["refine_config"])
            networks = []
            for spec in manifest["networks"]:
                net = ChromaNet(spec["in_dim"], spec["hidden"], spec["n_hidden_layers"])
                state = st_load(blobs[spec["weights"]])
                with np.load(io.BytesIO(blobs[spec["normalisation"]]), allow_pickle=False) as norm:
                    state["mean"] = torch.from_numpy(norm["mean"])
                    state["std"] = torch.from_numpy(norm["std"])
                net.load_state_dict(state, strict=True)
                net.eval()
                networks.append(net)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{mpath}: inconsistent model ({type(exc).__name__}: {exc})") from None
        if networks[0].in_dim != fcfg.dim:
            raise ModelError(f"{mpath}: network input length {networks[0].in_dim} does not match "
                             f"the feature length {fcfg.dim} of its feature settings")
        model = cls(networks, fcfg, tcfg, rcfg, manifest.get("info"))
        model.manifest = manifest
        return model
