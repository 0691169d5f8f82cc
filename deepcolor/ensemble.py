"""The model directory: the networks, their clusters, their settings, and checksums.

Layout::

    MODEL_DIR/
      manifest.json        format, versions, configs, networks, clusters, sha256 of every file
      net-000.safetensors  weights of network 0 (no normalisation)
      net-000.npz          its input normalisation: mean, std (allow_pickle=False)
      net-001...           one network per cluster of the ensemble

A single-network model has no clusters. An ensemble (Cheng et al. 2016,
Algorithm 3) lists, for network i, its cluster: layer, member count, centre
(global descriptor) and semantic histogram; the cluster table's own sha256
is in the manifest too.

No pickles: weights load with safetensors, arrays with ``allow_pickle=False``.
Loading verifies every file (and the cluster table) against the manifest's
sha256 and rejects a mismatch.

Loading and predicting do not import torch: a model holds its networks as
`deepcolor.npnet.NumpyChromaNet`; training converts them to and from torch
(`deepcolor.networks.ChromaNet.from_numpy`, ``to_numpy``).
"""

import io
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from deepcolor import __version__
from deepcolor.chroma import predict_model_chroma
from deepcolor.clustering import combine, image_descriptors, select_cluster
from deepcolor.clustering.config import ClusterConfig
from deepcolor.features.config import FeatureConfig
from deepcolor.networks_config import TrainConfig
from deepcolor.refine.config import RefineConfig
from deepcolor.modelcheck import FORMAT, FORMAT_VERSION, verify_model
from deepcolor.features import load_parser
from deepcolor.features.parsers import parser_sha256
from deepcolor.modelfiles import (MANIFEST, ModelError, _sha, check_settings_sha, settings_sha, versions,
                                  write_model_dir)
from deepcolor.npnet import NumpyChromaNet


def cluster_table(clusters, nets):
    """The manifest's cluster entries: plain JSON, floats rounded to float32 precision."""
    return [{"network": nets[i]["weights"], "layer": int(c["layer"]), "n_members": int(c["n_members"]),
             "centre": [float(np.float32(v)) for v in np.ravel(c["centre"])],
             "histogram": [float(np.float32(v)) for v in np.ravel(c["histogram"])]}
            for i, c in enumerate(clusters)]


def _table_sha(table):
    return _sha(json.dumps(table, sort_keys=True).encode())


def _as_numpy(net):
    """`net` as a `NumpyChromaNet`: itself, or a torch `ChromaNet` converted (``to_numpy``)."""
    if isinstance(net, NumpyChromaNet):
        return net
    if not hasattr(net, "to_numpy"):
        raise TypeError(f"a model's networks must be NumpyChromaNet or ChromaNet, got {type(net).__name__}")
    return net.to_numpy()


def _load_network(model_dir, spec, blobs):
    """The network of one manifest entry, from its weights and normalisation files (already verified).

    Raises ModelError naming the file that does not hold what the entry says.
    """
    path = model_dir / spec["normalisation"]
    try:  # numpy's zip and format errors, a missing array
        with np.load(io.BytesIO(blobs[spec["normalisation"]]), allow_pickle=False) as norm:
            mean, std = norm["mean"], norm["std"]
        path = model_dir / spec["weights"]
        state = st_load(blobs[spec["weights"]])  # safetensors' own error
        net = NumpyChromaNet.from_state(state, mean, std)  # names and shapes chain; cast to float32
        shape = (net.in_dim, net.hidden, net.n_hidden_layers)
        if shape != (spec["in_dim"], spec["hidden"], spec["n_hidden_layers"]):
            raise ValueError(f"a network of in_dim, hidden, n_hidden_layers = {shape}, the manifest says "
                             f"{(spec['in_dim'], spec['hidden'], spec['n_hidden_layers'])}")
    except Exception as exc:
        raise ModelError(f"{path}: inconsistent model ({type(exc).__name__}: {exc}); the model is corrupt") from None
    return net


class Model:
    """A trained colorization model: networks plus the settings that made them.

    Parameters
    ----------
    networks : list of NumpyChromaNet or deepcolor.networks.ChromaNet
        A torch network (as training returns it) is converted with its
        ``to_numpy``; the model holds `NumpyChromaNet` only.
    feature_config : FeatureConfig
    train_config : TrainConfig
    refine_config : RefineConfig
    info : dict, optional
        Training record (history, data, timings), stored in the manifest.
    clusters : list of dict, optional
        For an ensemble, network i's cluster: ``layer``, ``n_members``,
        ``centre`` (D,) and ``histogram`` (K,).
    cluster_config : ClusterConfig, optional
        How the ensemble was built and how it chooses a cluster.
    """

    def __init__(self, networks, feature_config, train_config, refine_config=None, info=None,
                 clusters=None, cluster_config=None):
        if not networks:
            raise ValueError("a model needs at least one network")
        self.networks = [_as_numpy(net) for net in networks]
        self.feature_config = feature_config
        self.train_config = train_config
        self.refine_config = refine_config or RefineConfig()
        self.info = info or {}
        self.clusters = list(clusters or [])
        if self.clusters and len(self.clusters) != len(self.networks):
            raise ValueError(f"{len(self.clusters)} clusters for {len(self.networks)} networks")
        if self.clusters and cluster_config is None:
            raise ValueError("an ensemble needs its cluster_config")
        self.cluster_config = cluster_config
        if self.clusters:  # at float32 precision, as saved: a loaded model chooses as the trained one
            self.centers = np.stack([np.asarray(c["centre"], np.float32) for c in self.clusters]).astype(np.float64)
            self.histograms = np.stack([np.asarray(c["histogram"], np.float32)
                                        for c in self.clusters]).astype(np.float64)
            self.layers = np.array([c["layer"] for c in self.clusters])

    @property
    def is_ensemble(self):
        return bool(self.clusters)

    def predict_uv(self, features, network=0):
        """Chrominance (N, 2) float32 for features (N, D) float32, by network `network` (numpy, no torch)."""
        return self.networks[network].predict(features)

    def predict_chroma(self, y):
        """The colorizer interface (as every baseline's): U, V for a full-resolution luminance (H, W).

        Returns the refined U, V (h, w, 2) float32 at the working size (to be
        upsampled under `y`, `deepcolor.colorize.compose`) and the cluster
        record (None for a single network); see `deepcolor.chroma`.
        """
        return predict_model_chroma(self, y)

    def choose_network(self, gray, n_candidates=None):
        """The network for a working-size luminance image (H, W), and how it was chosen.

        A single network is always network 0. An ensemble computes the image's
        global descriptor and semantic histogram and applies
        `deepcolor.clustering.select_cluster` with the model's settings
        (`n_candidates` overrides them; 1 = global descriptor only).

        Returns
        -------
        network : int
        record : dict or None
            ``cluster``, ``layer`` and the ``candidates`` considered.
        """
        if not self.clusters:
            return 0, None
        fcfg = self.feature_config
        d = image_descriptors(gray, load_parser(fcfg.semantic_parser, fcfg.histogram_groups),
                              gist="gist" in self.cluster_config.descriptor)
        return self.choose_network_for(d["gist"], d["semantic"], d["histogram"], n_candidates)

    def choose_network_for(self, gist, semantic, histogram, n_candidates=None):
        """`choose_network` from an image's descriptors already computed (a features shard stores them).

        Parameters
        ----------
        gist, semantic : ndarray or None
            The global descriptors (`deepcolor.clustering.image_descriptors`);
            gist may be None when the model's descriptor does not use it.
        histogram : ndarray (K,)
            The semantic histogram.
        n_candidates : int, optional
        """
        if not self.clusters:
            return 0, None
        ccfg = self.cluster_config
        chosen, candidates = select_cluster(
            combine(gist, semantic, ccfg.descriptor), histogram, self.centers, self.histograms,
            self.layers, n_candidates or ccfg.n_candidates, ccfg.histogram_distance, ccfg.search_layers)
        return chosen, {"cluster": chosen, "layer": int(self.layers[chosen]),
                        "candidates": [int(c) for c in candidates]}

    def save(self, model_dir):
        """Write the model directory, replacing any model there in one step.

        The files are written into a new folder beside `model_dir` (the
        manifest last), which then takes the place of `model_dir` by an atomic
        rename (an exchange of the two folders where one exists already): a
        run killed at any point leaves either the old model or the new one,
        whole (`deepcolor.modelfiles.write_model_dir`).

        Raises
        ------
        ModelError
            `model_dir` exists and holds files other than a model's.
        OSError
            The folder cannot be written.
        """
        manifest, files = self._manifest_and_files()
        write_model_dir(model_dir, manifest, files, "model")

    def _manifest_and_files(self):
        """The manifest (its table of files still to fill) and the bytes of every file, by name."""
        files, nets = {}, []
        for i, net in enumerate(self.networks):
            state = {k: np.ascontiguousarray(v) for k, v in net.state().items()}
            # one metadata key: safetensors writes a map of several in a random order, and
            # the same network must give the same bytes (and checksum) every time
            weights = st_save(state, metadata={"format": f"{FORMAT} {__version__}"})
            buf = io.BytesIO()
            np.savez(buf, mean=net.mean, std=net.std)
            wname, nname = f"net-{i:03d}.safetensors", f"net-{i:03d}.npz"
            files[wname], files[nname] = weights, buf.getvalue()
            nets.append({"weights": wname, "normalisation": nname, "in_dim": net.in_dim,
                         "hidden": net.hidden, "n_hidden_layers": net.n_hidden_layers})
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "versions": versions(),
            "feature_config": self.feature_config.to_dict(),
            "train_config": self.train_config.to_dict(),
            "refine_config": self.refine_config.to_dict(),
            "networks": nets,
            "files": None,  # the table of checksums, here in the key order; filled by write_model_dir
            "info": self.info,
        }
        if "semantic" in self.feature_config.features or self.clusters:  # the parser the features came from
            manifest["parser_sha256"] = parser_sha256(self.feature_config.semantic_parser)
        if self.clusters:
            table = cluster_table(self.clusters, nets)
            manifest.update(cluster_config=self.cluster_config.to_dict(), clusters=table,
                            clusters_sha256=_table_sha(table))
        manifest["settings_sha256"] = settings_sha(manifest)  # an edited setting is refused as corrupt
        return manifest, files

    @classmethod
    def load(cls, model_dir):
        """Load and verify a model directory; raises ModelError naming the file and the problem."""
        model_dir = Path(model_dir)
        mpath = model_dir / MANIFEST
        manifest, blobs = verify_model(model_dir, settings_checksum=False)  # checked last, below
        try:
            fcfg = FeatureConfig.from_dict(manifest["feature_config"])
            tcfg = TrainConfig.from_dict(manifest["train_config"])
            rcfg = RefineConfig.from_dict(manifest["refine_config"])
        except Exception as exc:
            raise ModelError(f"{mpath}: inconsistent model ({type(exc).__name__}: {exc})") from None
        networks = [_load_network(model_dir, spec, blobs) for spec in manifest["networks"]]
        if any(net.in_dim != fcfg.dim for net in networks):
            raise ModelError(f"{mpath}: network input length {networks[0].in_dim} does not match "
                             f"the feature length {fcfg.dim} of its feature settings")
        clusters, ccfg = None, None
        if "clusters" in manifest:
            table = manifest["clusters"]
            if manifest.get("clusters_sha256") != _table_sha(table):
                raise ModelError(f"{mpath}: the cluster table does not match its checksum; the model is corrupt")
            try:
                ccfg = ClusterConfig.from_dict(manifest["cluster_config"])
                clusters = [{"layer": int(c["layer"]), "n_members": int(c["n_members"]),
                             "centre": np.asarray(c["centre"], np.float64),
                             "histogram": np.asarray(c["histogram"], np.float64)} for c in table]
                if len(clusters) != len(networks) or len({c["centre"].shape for c in clusters}) != 1 \
                        or len({c["histogram"].shape for c in clusters}) != 1:
                    raise ValueError("one cluster per network, centres and histograms of one length")
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelError(f"{mpath}: inconsistent cluster table ({type(exc).__name__}: {exc})") from None
        check_settings_sha(manifest, mpath)
        model = cls(networks, fcfg, tcfg, rcfg, manifest.get("info"), clusters, ccfg)
        model.manifest = manifest
        return model
