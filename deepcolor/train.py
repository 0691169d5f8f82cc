"""`deepcolor train`: fit the chrominance networks (one, or the adaptive ensemble) on `deepcolor features`."""

import copy
import hashlib
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from deepcolor.clustering import AdaptiveClustering, combine, well_colorized
from deepcolor.color import _YUV2RGB
from deepcolor.clustering.config import ClusterConfig
from deepcolor.features.config import FeatureConfig
from deepcolor.networks_config import TrainConfig
from deepcolor.refine.config import RefineConfig
from deepcolor.ensemble import Model
from deepcolor.extract import load_manifest, load_shards, ok_entries, read_shard
from deepcolor.features import feature_dim
from deepcolor.networks import predict, train_network
from deepcolor.parallel import n_workers, run, using_dask
from deepcolor.progress import progress_bar

log = logging.getLogger(__name__)


def split_images(n_images, val_fraction, seed):
    """Seeded split of image indices into (train, held-out); both non-empty.

    The held-out images serve early stopping, so it is whole images that are
    held out, not pixels of the training images.
    """
    if n_images < 2:
        raise ValueError(f"training needs at least 2 usable reference images, got {n_images}")
    n_val = min(n_images - 1, max(1, round(n_images * val_fraction)))
    order = np.random.default_rng(seed).permutation(n_images)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def feature_block(feature_cfg, name):
    """Columns (start, stop) of feature `name` in the concatenated descriptor, or None if absent."""
    if name not in feature_cfg.features:
        return None
    i = feature_cfg.features.index(name)
    params = feature_cfg.params()
    start = feature_dim(feature_cfg.features[:i], params) if i else 0
    return start, start + feature_dim((name,), params)


def image_weights(uvs, mode):
    """Per-pixel loss weights that make the training loss follow the mean per-image PSNR.

    Parameters
    ----------
    uvs : list of ndarray (n_i, 2)
        Each training image's sampled chrominance.
    mode : {"uniform", "psnr"}
        "uniform": every pixel counts the same (the paper's least squares).
        "psnr": image i's pixels weigh 1 / (e_i + median(e)), with e_i the
        mean squared distance of its chrominance from the references' mean
        chrominance. The mean PSNR over images moves with the sum of each
        image's relative error change, so an image of muted colour (small
        error at stake) counts more than its pixel share; the median keeps
        the weights within a small ratio.

    Returns
    -------
    weights : ndarray (sum n_i,) float32 with mean 1, or None for "uniform"
    """
    if mode == "uniform":
        return None
    if mode != "psnr":
        raise ValueError(f"image weighting must be 'uniform' or 'psnr', got {mode!r}")
    mean_uv = np.concatenate(uvs).mean(axis=0)
    e = np.array([np.mean(np.sum((uv - mean_uv) ** 2, axis=1)) for uv in uvs])
    per_image = 1.0 / (e + max(float(np.median(e)), 1e-6))  # floor: references all of one chroma
    w = np.concatenate([np.full(len(uv), wi, np.float64) for uv, wi in zip(uvs, per_image)])
    return (w / w.mean()).astype(np.float32)


def sampled_psnr(uv_pred, uv_true):
    """PSNR (dB) in RGB of an image's sampled pixels from their chrominance error.

    The colorization keeps Y, so its RGB error is the YUV->RGB matrix applied
    to the (U, V) error; gamut clipping is ignored. This is how the adaptive
    clustering scores each reference (the mean over the sampled pixels is an
    unbiased estimate of the whole image's MSE before refinement).
    """
    err = (np.asarray(uv_pred, np.float64) - np.asarray(uv_true, np.float64)) @ _YUV2RGB[:, 1:].T  # (n, 3)
    mse = max(float(np.mean(err * err)), 1e-12)
    return 10.0 * np.log10(1.0 / mse)


def fit_on_shards(shards, train_cfg, block=None, init=None, progress=None):
    """Train one network on the references `shards` (list of (x, uv)), holding out whole images.

    Returns
    -------
    net : ChromaNet
    history : dict
    split : (ndarray, ndarray)
        Indices of the training and the held-out shards.
    """
    tr, va = split_images(len(shards), train_cfg.val_fraction, train_cfg.seed)
    x_tr = np.concatenate([shards[i][0] for i in tr])
    y_tr = np.concatenate([shards[i][1] for i in tr])
    x_va = np.concatenate([shards[i][0] for i in va])
    y_va = np.concatenate([shards[i][1] for i in va])
    log.info("training on %d pixels of %d images, held out %d pixels of %d images",
             len(x_tr), len(tr), len(x_va), len(va))
    mode = train_cfg.image_weighting
    net, history = train_network(x_tr, y_tr, x_va, y_va, train_cfg, progress=progress, block=block,
                                 w_train=image_weights([shards[i][1] for i in tr], mode),
                                 w_val=image_weights([shards[i][1] for i in va], mode), init=init)
    return net, history, (tr, va)


def train_model(features_dir, train_cfg=None, refine_cfg=None, quiet=False):
    """Train a single-network model from a features directory.

    Returns
    -------
    model : deepcolor.ensemble.Model
    """
    train_cfg = train_cfg or TrainConfig()
    manifest = load_manifest(features_dir)
    feature_cfg = FeatureConfig.from_dict(manifest["feature_config"])
    sources, shards = _load_xy(features_dir, manifest)
    bar = progress_bar(total=train_cfg.max_epochs, desc="train", unit="epoch", quiet=quiet)

    def report(h):
        bar.update(1)
        bar.set_postfix(train=f"{h['train_mse']:.5f}", held_out=f"{h['val_mse']:.5f}")

    start = time.perf_counter()
    net, history, (tr, va) = fit_on_shards(shards, train_cfg, feature_block(feature_cfg, "semantic"),
                                           progress=report)
    bar.close()
    info = {
        "features_dir": str(features_dir),
        "n_train_images": int(len(tr)), "n_val_images": int(len(va)),
        "n_train_pixels": int(sum(len(shards[i][0]) for i in tr)),
        "n_val_pixels": int(sum(len(shards[i][0]) for i in va)),
        "val_images": [sources[i] for i in va],
        "history": history, "train_seconds": round(time.perf_counter() - start, 3),
        "torch_threads": torch.get_num_threads(),
    }
    return Model([net], feature_cfg, train_cfg, refine_cfg or RefineConfig(), info)


def _load_xy(features_dir, manifest):
    loaded = load_shards(features_dir, manifest)
    for source, *arrays in loaded:
        check_finite(arrays, f"{features_dir}: the feature shard of {source}")
    return [s[0] for s in loaded], [(s[1], s[2]) for s in loaded]


def check_finite(arrays, what):
    """Raise ValueError naming `what` if any of `arrays` holds NaN or infinite values.

    A shard edited or damaged on disk (its checksum is not kept) would
    otherwise train a network on NaN and end in a traceback or a model of NaN.
    """
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise ValueError(f"{what} holds NaN or infinite values ({int((~np.isfinite(a)).sum())} of "
                             f"{a.size}); delete it and rerun 'deepcolor features'")


def _fit_cluster(features_dir, shard_paths, train_cfg, block, init, threads):
    """One cluster's network (worker task): returns (net, history, PSNR of each member)."""
    if threads:
        torch.set_num_threads(threads)
    shards = [read_shard(Path(features_dir) / p) for p in shard_paths]
    for p, arrays in zip(shard_paths, shards):
        check_finite(arrays, f"{Path(features_dir) / p}")
    net, history, _ = fit_on_shards(shards, train_cfg, block, init=init)
    psnr = [sampled_psnr(predict(net, x), uv) for x, uv in shards]
    return net, history, psnr


def _read_descriptors(features_dir, entries):
    """Each reference's stored (gist, semantic, histogram), checked finite (ValueError naming its shard)."""
    desc = [read_shard(features_dir / e["shard"], ("gist", "semantic", "histogram")) for e in entries]
    for e, arrays in zip(entries, desc):
        check_finite(arrays, f"{features_dir / e['shard']}")
    return desc


def _descriptors(features_dir, entries, descriptor):
    """The references' global descriptors (N, D) for the clustering, and semantic histograms (N, K) float64."""
    desc = _read_descriptors(features_dir, entries)
    X = combine(np.stack([d[0] for d in desc]), np.stack([d[1] for d in desc]), descriptor)
    return X, np.stack([d[2] for d in desc]).astype(np.float64)


def _workers(jobs):
    """(worker processes, torch threads per worker or None) for training a layer's clusters."""
    cpus = os.cpu_count() or 1
    if using_dask():  # a task per worker thread, one torch thread each (as the local workers below)
        return n_workers(jobs), 1
    n_jobs = min(n_workers(jobs), cpus)
    return n_jobs, (max(1, cpus // n_jobs) if n_jobs > 1 else None)


def _layer_record(est, epsilon):
    """Per layer of a fitted `AdaptiveClustering`: its references, their mean PSNR, those it colorized well."""
    return {
        "layer_sizes": [int((row >= 0).sum()) for row in est.labels_],
        "layer_mean_psnr": [round(float(np.nanmean(row)), 4) for row in est.psnr_],
        # references colorized well by their cluster's network (left out of a next layer, if any)
        "removed_per_layer": [int(np.sum(well_colorized(p[row >= 0], epsilon)))
                              for row, p in zip(est.labels_, est.psnr_)],
    }


def train_ensemble(features_dir, train_cfg=None, cluster_cfg=None, refine_cfg=None, jobs=1, quiet=False,
                   init=None):
    """Train the adaptive ensemble (Cheng et al. 2016, Algorithm 3) from a features directory.

    Layer by layer, the references are k-means clustered by their global
    descriptor (`ClusterConfig.descriptor`) and one network is trained per
    cluster, the clusters of a layer in parallel (`jobs` joblib workers, each
    reading only its members' shards). With ``warm_start`` every cluster's
    network starts from a network trained first on all references, with its
    input normalisation, and keeps those weights if fine-tuning never lowers
    its held-out error. `init` (a network already trained on all these
    references with `train_cfg`, e.g. by `train_model`) skips that first step.

    Returns
    -------
    model : deepcolor.ensemble.Model
        One network per cluster of every layer, with the clusters' centres,
        semantic histograms, layers and member counts.
    """
    train_cfg = train_cfg or TrainConfig()
    cluster_cfg = cluster_cfg or ClusterConfig()
    if cluster_cfg.n_clusters == 1:
        raise ValueError("one cluster is the single network: use train_model")
    features_dir = Path(features_dir)
    manifest = load_manifest(features_dir)
    feature_cfg = FeatureConfig.from_dict(manifest["feature_config"])
    entries = ok_entries(manifest)
    if len(entries) < 2:
        raise ValueError(f"training needs at least 2 usable reference images, got {len(entries)}")
    X, hists = _descriptors(features_dir, entries, cluster_cfg.descriptor)
    block = feature_block(feature_cfg, "semantic")
    start = time.perf_counter()

    init_history = None
    if not cluster_cfg.warm_start:
        init = None
    elif init is None:
        bar = progress_bar(total=train_cfg.max_epochs, desc="train (all references)", unit="epoch", quiet=quiet)
        _, shards = _load_xy(features_dir, manifest)
        init, init_history, _ = fit_on_shards(shards, train_cfg, block, progress=lambda h: bar.update(1))
        del shards
        bar.close()
    warm_seconds = time.perf_counter() - start

    n_jobs, threads = _workers(jobs)
    histories = []
    cluster_train_cfg = train_cfg.replace(lr=cluster_cfg.finetune_lr) if init is not None else train_cfg

    def fit_layer(layer, members):
        bar = progress_bar(total=len(members), desc=f"train layer {layer}", unit="net", quiet=quiet)
        order = np.argsort([-len(m) for m in members], kind="stable")  # largest first: better packing
        tasks = ((features_dir, [entries[i]["shard"] for i in members[j]], cluster_train_cfg, block, init, threads)
                 for j in order)
        results = [None] * len(members)
        for j, res in zip(order, run(_fit_cluster, tasks, n_jobs)):
            results[j] = res
            bar.update(1)
        bar.close()
        log.info("layer %d: %d clusters of %s images", layer, len(members), [len(m) for m in members])
        histories.extend(r[1] for r in results)
        return [r[0] for r in results], [np.asarray(r[2]) for r in results]

    est = AdaptiveClustering(n_clusters=cluster_cfg.n_clusters, mu=cluster_cfg.mu, epsilon=cluster_cfg.epsilon,
                             max_layers=cluster_cfg.max_layers, random_state=cluster_cfg.seed).fit(X, fit_layer)
    clusters = [{"layer": int(layer), "n_members": int(len(m)), "centre": est.cluster_centers_[c],
                 "histogram": hists[m].mean(axis=0)}
                for c, (layer, m) in enumerate(zip(est.cluster_layers_, est.cluster_members_))]
    info = {
        "features_dir": str(features_dir), "n_images": len(entries),
        "train_seconds": round(time.perf_counter() - start, 3),
        "warm_start_seconds": round(warm_seconds, 3), "warm_start_history": init_history,
        "jobs": n_jobs, "n_layers": int(est.n_layers_), **_layer_record(est, cluster_cfg.epsilon),
        "members": [[entries[i]["source"] for i in m] for m in est.cluster_members_],
        "histories": histories,
    }
    return Model(est.estimators_, feature_cfg, train_cfg, refine_cfg or RefineConfig(), info,
                 clusters=clusters, cluster_config=cluster_cfg)


def train(features_dir, train_cfg=None, cluster_cfg=None, refine_cfg=None, jobs=1, quiet=False, init=None,
          init_dir=None):
    """The ensemble, or the single network when ``cluster_cfg.n_clusters == 1``; `init`: see `fine_tune`."""
    cluster_cfg = cluster_cfg or ClusterConfig()
    if init is not None:
        return fine_tune(features_dir, init, train_cfg, cluster_cfg, refine_cfg, jobs=jobs, quiet=quiet,
                         init_dir=init_dir)
    if cluster_cfg.n_clusters == 1:
        return train_model(features_dir, train_cfg, refine_cfg, quiet=quiet)
    return train_ensemble(features_dir, train_cfg, cluster_cfg, refine_cfg, jobs=jobs, quiet=quiet)


# Learning rate (Adam) of `deepcolor train --init` (docs/DESIGN.md, "A personal model (issue 17)").
FINETUNE_LR = 3e-4

# Settings of `FeatureConfig` that change a pixel's feature vector (the others change which
# pixels are sampled): a model fine-tuned from another must be fed features made alike.
_FEATURE_KEYS = ("features", "working_size", "patch_size", "daisy_radius", "daisy_rings", "daisy_histograms",
                 "daisy_orientations", "daisy_backend", "daisy_normalization")
_SEMANTIC_KEYS = ("semantic_parser", "semantic_groups", "semantic_smoothing", "semantic_radius", "semantic_eps")


def check_init_features(init_cfg, feature_cfg, features_dir, init_dir=None):
    """Raise ValueError naming both folders and every differing setting if the features differ."""
    keys = _FEATURE_KEYS + (_SEMANTIC_KEYS if "semantic" in feature_cfg.features else ())
    a, b = init_cfg.to_dict(), feature_cfg.to_dict()
    diff = [f"{k}: {a[k]!r} in the model, {b[k]!r} in the features" for k in keys if a[k] != b[k]]
    if diff:
        raise ValueError(f"{features_dir}: these features were not made with the feature settings of the "
                         f"initial model {init_dir or ''} ({'; '.join(diff)}); rerun 'deepcolor features' "
                         f"with the model's settings")


def closest_network(model, shards):
    """Which of `model`'s networks colours these references best (before any training).

    Returns
    -------
    index : int
        The network of lowest mean squared (U, V) error over the references'
        sampled pixels, each reference weighing the same.
    mse : list of float
        Each network's error.
    """
    mse = [float(np.mean([np.mean((net.predict(x) - uv) ** 2) for x, uv in shards])) for net in model.networks]
    return int(np.argmin(mse)), mse


def _file_sha(path):
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


# Folds of the cross-validation that sets the number of fine-tuning epochs (docs/DESIGN.md, issue 17).
FINETUNE_FOLDS = 5


def _xy(shards, ids, mode):
    """Features, chrominance and per-pixel weights of the references `ids` (concatenated)."""
    return (np.concatenate([shards[i][0] for i in ids]), np.concatenate([shards[i][1] for i in ids]),
            image_weights([shards[i][1] for i in ids], mode))


def cv_folds(n, folds=FINETUNE_FOLDS, seed=0):
    """The cross-validation split of `n` references: a list of (kept ids, held-out ids), both sorted.

    At most one group per reference, by a seeded permutation (`fine_tune_epochs`).

    Raises
    ------
    ValueError
        Fewer than 2 references.
    """
    if n < 2:
        raise ValueError(f"fine-tuning needs at least 2 usable reference images, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    return [(np.setdiff1d(order, held), np.sort(held)) for held in np.array_split(order, min(folds, n))]


def initial_model_cv_error(model, shards, descriptors, weighting, folds=FINETUNE_FOLDS, seed=0):
    """The held-out error of `model` unchanged, measured as `fine_tune_epochs` measures its curve.

    Each reference is coloured by the network `model` chooses for it (its
    selector, from the reference's stored global descriptors and semantic
    histogram: `Model.choose_network_for`), and the weighted squared error
    of each held-out group of `cv_folds` is averaged over the groups. Nothing
    is fitted to the references, so this is the error of keeping the whole
    initial model (every network and the selector), comparable with the
    fine-tuning curve's values.

    Parameters
    ----------
    model : deepcolor.ensemble.Model
    shards : list of (ndarray (n, D), ndarray (n, 2))
    descriptors : list of (gist, semantic, histogram)
        Each reference's, as its shard stores them.
    weighting : {"uniform", "psnr"}
        ``TrainConfig.image_weighting``.

    Returns
    -------
    error : float
    chosen : list of int
        The network chosen for each reference.
    """
    chosen = [model.choose_network_for(*d)[0] for d in descriptors]
    sq = [((model.networks[c].predict(x) - uv) ** 2).mean(axis=1) for c, (x, uv) in zip(chosen, shards)]
    errors = []
    for _, held in cv_folds(len(shards), folds, seed):
        err = np.concatenate([sq[i] for i in held])
        w = image_weights([shards[i][1] for i in held], weighting)
        errors.append(float(np.mean(err) if w is None else np.average(err, weights=w)))
    return float(np.mean(errors)), [int(c) for c in chosen]


def fine_tune_epochs(shards, train_cfg, start_net, block=None, folds=FINETUNE_FOLDS, seed=0, progress=None):
    """How many epochs to fine-tune `start_net` on these references, by k-fold cross-validation.

    The references are split into `folds` groups (at most one per
    reference) by a seeded permutation. For each group, `start_net` is
    trained on the other references with ``train_cfg`` (early stopping after
    ``train_cfg.patience`` epochs without a lower error on the group) and its
    error on the group is recorded after every epoch. The errors are averaged
    over the groups, for the epochs every group ran.

    Parameters
    ----------
    shards : list of (ndarray (n, D), ndarray (n, 2))
        Each reference's features and chrominance, float32.
    train_cfg : TrainConfig
    start_net : ChromaNet or deepcolor.npnet.NumpyChromaNet
    block : (int, int), optional
        Columns of the semantic feature (`feature_block`).
    folds : int
    seed : int
        Seed of the split.
    progress : callable, optional
        Called after each fold.

    Returns
    -------
    epochs : int
        The count of lowest mean held-out error; 0 when no epoch beats `start_net` itself.
    curve : ndarray
        Mean held-out error after 0, 1, ... epochs.
    """
    curves = []
    for kept, held in cv_folds(len(shards), folds, seed):
        x_tr, y_tr, w_tr = _xy(shards, kept, train_cfg.image_weighting)
        x_va, y_va, w_va = _xy(shards, held, train_cfg.image_weighting)
        _, history = train_network(x_tr, y_tr, x_va, y_va, train_cfg, block=block, w_train=w_tr, w_val=w_va,
                                   init=start_net)
        curves.append([history["init_val_mse"]] + history["val_mse"])
        if progress is not None:
            progress()
    common = min(len(c) for c in curves)
    curve = np.mean([c[:common] for c in curves], axis=0)
    curve[~np.isfinite(curve)] = np.inf  # a diverged epoch is never chosen
    return int(np.argmin(curve)), curve


def fine_tune(features_dir, init, train_cfg=None, cluster_cfg=None, refine_cfg=None, jobs=1, quiet=False,
              init_dir=None):
    """A model fine-tuned from the trained model `init` on the references of `features_dir`.

    The network of `init` that colours the new references best
    (`closest_network`) is trained further on them, all of its weights and
    its input normalisation kept as the start, at ``train_cfg.lr`` (the
    caller chooses a fine-tuning rate; `deepcolor train --init` uses
    `FINETUNE_LR`). A few dozen references leave too few for a held-out
    part to stop on, so the number of epochs is set by cross-validation
    (`fine_tune_epochs`; 0 keeps `init`'s network as it is) and the network
    is then trained on every reference for that many epochs. That network
    is the model when ``cluster_cfg.n_clusters == 1`` or when there are
    fewer than ``2 * cluster_cfg.mu`` references (room for one cluster
    only); otherwise it is the all-reference network from which the
    adaptive ensemble (`train_ensemble`) fine-tunes its clusters. In the
    first case, when `init` is an ensemble, the whole of it, unchanged,
    competes with that network by the same cross-validation
    (`initial_model_cv_error` against the curve's best point) and is the
    model if its held-out error is not higher (``info["init"]
    ["kept_initial_model"]``): a personal model is then never a single
    network of an ensemble that colours the references better whole.

    The network's shape (width, depth) is the initial model's, whatever
    `train_cfg` says. The model's ``info["init"]`` records where it started:
    `init_dir`, the sha256 of its manifest and its settings checksum, the
    network chosen and every network's error on the references.

    Raises
    ------
    ValueError
        The features were made with other feature settings than `init`'s.
    """
    cluster_cfg = cluster_cfg or ClusterConfig()
    features_dir = Path(features_dir)
    manifest = load_manifest(features_dir)
    feature_cfg = FeatureConfig.from_dict(manifest["feature_config"])
    check_init_features(init.feature_config, feature_cfg, features_dir, init_dir)
    start_net = init.networks[0]
    train_cfg = (train_cfg or TrainConfig()).replace(hidden=start_net.hidden, n_hidden_layers=start_net.n_hidden_layers)
    sources, shards = _load_xy(features_dir, manifest)
    start = time.perf_counter()
    block = feature_block(feature_cfg, "semantic")
    folds = min(FINETUNE_FOLDS, len(shards))
    bar = progress_bar(total=folds + 1, desc="fine-tune", unit="fold", quiet=quiet)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 1024 pixels: a second thread only waits (docs/DESIGN.md, issue 17)
    one_network = cluster_cfg.n_clusters == 1 or len(shards) < 2 * cluster_cfg.mu
    try:
        index, mse = closest_network(init, shards)
        epochs, curve = fine_tune_epochs(shards, train_cfg, init.networks[index], block, folds, train_cfg.seed,
                                         progress=lambda: bar.update(1))
        kept = None
        if one_network and init.is_ensemble:  # the candidate beside the fine-tuned network: init unchanged
            kept, chosen = initial_model_cv_error(init, shards, _read_descriptors(features_dir, ok_entries(manifest)),
                                                  train_cfg.image_weighting, folds, train_cfg.seed)
        if kept is not None and kept <= curve[epochs]:
            net = history = None
        elif epochs == 0:
            net, history = copy.deepcopy(init.networks[index]), None
        else:  # every reference, `epochs` epochs (scored on themselves: the last epochs' best)
            x, y, w = _xy(shards, range(len(shards)), train_cfg.image_weighting)
            net, history = train_network(x, y, x, y, train_cfg.replace(max_epochs=epochs, patience=epochs + 1),
                                         block=block, w_train=w, w_val=w, init=init.networks[index])
    finally:
        torch.set_num_threads(threads)
    bar.update(1)
    bar.close()
    record = {"model": None if init_dir is None else str(init_dir),
              "settings_sha256": getattr(init, "manifest", {}).get("settings_sha256"),
              "manifest_sha256": _file_sha(Path(init_dir) / "manifest.json") if init_dir else None,
              "network": index, "network_mse": [round(m, 7) for m in mse], "lr": train_cfg.lr,
              "epochs": epochs, "folds": folds, "cv_mse": [round(float(v), 7) if np.isfinite(v) else None for v in curve]}
    if kept is not None:
        record.update(initial_model_cv_mse=round(kept, 7), kept_initial_model=net is None,
                      initial_model_networks=chosen)
    if net is None:  # the initial model, unchanged, colours the held-out references best: it is the model
        info = {"features_dir": str(features_dir), "init": record, "n_train_images": len(shards),
                "train_images": sources, "train_seconds": round(time.perf_counter() - start, 3)}
        return Model(init.networks, init.feature_config, init.train_config, refine_cfg or init.refine_config, info,
                     clusters=init.clusters, cluster_config=init.cluster_config)
    if not one_network:
        del shards
        model = train_ensemble(features_dir, train_cfg, cluster_cfg, refine_cfg, jobs=jobs, quiet=quiet, init=net)
        model.info.update(warm_start_history=history, init=record,
                          warm_start_seconds=round(time.perf_counter() - start, 3))
        return model
    info = {
        "features_dir": str(features_dir), "init": record, "n_train_images": len(shards),
        "n_train_pixels": int(sum(len(s[0]) for s in shards)), "train_images": sources,
        "history": history, "train_seconds": round(time.perf_counter() - start, 3), "torch_threads": 1,
    }
    return Model([net], feature_cfg, train_cfg, refine_cfg or init.refine_config, info)
