"""The benchmark's training: features of the references, the single network and the ensemble, each timed."""

import time
from pathlib import Path

import numpy as np

from deepcolor.extract import extract_folder, load_shards


def references_mean_chroma(features_dir):
    uv = np.concatenate([s[2] for s in load_shards(features_dir)])
    return uv.mean(axis=0)


def train_pipeline(ref_dirs, work, fcfg, tcfg, rcfg, ccfg, jobs):
    """Features, the single network, and the ensemble warm-started from it, each timed.

    Returns (single, ensemble or None, features_dir, timings). The ensemble's
    training time includes the single network's, its first step.
    """
    from deepcolor.train import train_ensemble, train_model  # lazy: torch is heavy

    fdir = Path(work) / "features"
    t0 = time.perf_counter()
    manifest = extract_folder(ref_dirs, fdir, fcfg, jobs=jobs, quiet=True)
    t1 = time.perf_counter()
    single = train_model(fdir, tcfg, rcfg, quiet=True)
    t2 = time.perf_counter()
    ensemble = None
    if ccfg.n_clusters > 1:
        ensemble = train_ensemble(fdir, tcfg, ccfg, rcfg, jobs=jobs, quiet=True, init=single.networks[0])
    t3 = time.perf_counter()
    model = ensemble or single
    model.save(Path(work) / "model")
    timings = {
        "features_s": round(t1 - t0, 2), "single_network_train_s": round(t2 - t1, 2),
        "train_s": round(t3 - t1, 2), "total_s": round(t3 - t0, 2),
        "references": manifest["counts"], "epochs_run": single.info["history"]["epochs_run"],
        "best_val_mse": round(single.info["history"]["best_val_mse"], 6),
    }
    if ensemble is not None:
        info = ensemble.info
        timings["ensemble"] = {"networks": len(ensemble.networks), "layers": info["n_layers"],
                               "layer_sizes": info["layer_sizes"], "removed_per_layer": info["removed_per_layer"],
                               "reference_psnr_by_layer": info["layer_mean_psnr"],
                               "cluster_sizes": [c["n_members"] for c in ensemble.clusters],
                               "cluster_layers": [c["layer"] for c in ensemble.clusters],
                               "jobs": info["jobs"]}
    return single, ensemble, fdir, timings
