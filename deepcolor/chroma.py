"""The chrominance deepcolor's model predicts for a luminance image (Cheng et al. 2015, Fig. 2).

Luminance Y at full resolution -> Y at the working size -> (an ensemble: the
cluster chosen by global descriptor and semantic histogram) -> per-pixel
features -> that cluster's network -> U, V -> joint bilateral refinement
guided by Y. `deepcolor.ensemble.Model.predict_chroma` is `predict_model_chroma`;
`deepcolor.colorize` upsamples the result and puts it under the full-size Y.
"""

import cv2
import numpy as np

from deepcolor.resize import resize_to, working_shape
from deepcolor.features import compute_features
from deepcolor.features.reach import min_working_side
from deepcolor.refine import joint_bilateral_refine


def predict_model_chroma(model, y):
    """Refined U, V at the working size for a full-resolution luminance image, and the cluster record.

    Parameters
    ----------
    model : deepcolor.ensemble.Model
    y : ndarray of shape (H, W), float in [0, 1]

    Returns
    -------
    uv : ndarray of shape (h, w, 2), float32
        At the working size of `working_luma`.
    record : dict or None
        `Model.choose_network`'s record; None for a single network.
    """
    return predict_chroma(model, working_luma(model, y))


def predict_chroma(model, y_work):
    """Refined U, V (h, w, 2) float32 for the working-size luminance (h, w), and the cluster record.

    The record is None for a single network, else `Model.choose_network`'s.
    An image smaller than the features reach (`min_working_side`) is padded
    by repeating its last row and column, and the prediction cut back to
    (h, w): a 1 x 1 or 5 x 5 image is colorized, not refused.
    """
    h, w = y_work.shape
    need = min_working_side(model.feature_config)
    if h < need or w < need:
        padded = cv2.copyMakeBorder(np.ascontiguousarray(y_work, np.float32), 0, max(0, need - h), 0,
                                    max(0, need - w), cv2.BORDER_REPLICATE)
        uv, record = predict_chroma(model, padded)
        return np.ascontiguousarray(uv[:h, :w]), record
    network, record = model.choose_network(y_work)
    fcfg = model.feature_config
    feats = compute_features(y_work, fcfg.features, fcfg.params())  # (h, w, D)
    uv = model.predict_uv(feats.reshape(-1, feats.shape[-1]), network).reshape(y_work.shape + (2,))
    return refine_chroma(model, uv, y_work), record


def refine_chroma(model, uv, y_work):
    """The model's joint bilateral refinement of U, V (h, w, 2) guided by Y (h, w), if enabled."""
    rcfg = model.refine_config
    if rcfg.enabled:
        uv = joint_bilateral_refine(uv, y_work, rcfg.diameter, rcfg.sigma_color, rcfg.sigma_space)
    return uv


def working_luma(model, y):
    """The working-size luminance (h, w) of a full-resolution one (H, W).

    The longest side is scaled to the working size (never up). A panorama's
    short side would shrink below what the features reach (a 20000 x 300
    scan: 256 x 4 px): that side is kept at `min_working_side` px, or its
    full size if smaller, so the features see the picture rather than a
    padded line. `predict_chroma` pads what is still smaller.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 2:
        raise ValueError(f"y must be a 2-D (H, W) luminance image, got shape {y.shape}")
    fcfg = model.feature_config
    work = working_shape(y.shape, fcfg.working_size)
    need = min_working_side(fcfg)
    work = tuple(max(side, min(full, need)) for side, full in zip(work, y.shape))
    return np.clip(resize_to(y, work), 0, 1)
