"""`deepcolor train`: fit the chrominance network on the samples of `deepcolor features`."""

import logging
import time

import numpy as np
import torch

from deepcolor.config import FeatureConfig, RefineConfig, TrainConfig
from deepcolor.ensemble import Model
from deepcolor.extract import load_manifest, load_shards
from deepcolor.networks import train_network
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
    from deepcolor.features import feature_dim

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


def train_model(features_dir, train_cfg=None, refine_cfg=None, quiet=False):
    """Train a single-network model from a features directory.

    Returns
    -------
    model : deepcolor.ensemble.Model
    """
    train_cfg = train_cfg or TrainConfig()
    manifest = load_manifest(features_dir)
    feature_cfg = FeatureConfig.from_dict(manifest["feature_config"])
    shards = load_shards(features_dir, manifest)
    tr, va = split_images(len(shards), train_cfg.val_fraction, train_cfg.seed)
    x_tr = np.concatenate([shards[i][1] for i in tr])
    y_tr = np.concatenate([shards[i][2] for i in tr])
    x_va = np.concatenate([shards[i][1] for i in va])
    y_va = np.concatenate([shards[i][2] for i in va])
    log.info("training on %d pixels of %d images, held out %d pixels of %d images",
             len(x_tr), len(tr), len(x_va), len(va))
    bar = progress_bar(total=train_cfg.max_epochs, desc="train", unit="epoch", quiet=quiet)

    def report(h):
        bar.update(1)
        bar.set_postfix(train=f"{h['train_mse']:.5f}", held_out=f"{h['val_mse']:.5f}")

    start = time.perf_counter()
    mode = train_cfg.image_weighting
    net, history = train_network(x_tr, y_tr, x_va, y_va, train_cfg, progress=report,
                                 block=feature_block(feature_cfg, "semantic"),
                                 w_train=image_weights([shards[i][2] for i in tr], mode),
                                 w_val=image_weights([shards[i][2] for i in va], mode))
    bar.close()
    info = {
        "features_dir": str(features_dir),
        "n_train_images": int(len(tr)), "n_val_images": int(len(va)),
        "n_train_pixels": int(len(x_tr)), "n_val_pixels": int(len(x_va)),
        "val_images": [shards[i][0] for i in va],
        "history": history, "train_seconds": round(time.perf_counter() - start, 3),
        "torch_threads": torch.get_num_threads(),
    }
    return Model([net], feature_cfg, train_cfg, refine_cfg or RefineConfig(), info)
