"""Evaluation of colourized images against their true colour originals.

Core metrics that need no downloads: PSNR and SSIM on RGB, uint8, at native
resolution with ``data_range=255``, and the colourfulness of Hasler and
Suesstrunk with its gap ``|CF(pred) - CF(truth)|``. `evaluate_dirs` pairs two
folders by file name (the ``lpips_2dirs.py`` pattern) and reports every file it
cannot use instead of stopping at the first one.

References
----------
.. [1] Z. Cheng, Q. Yang, B. Sheng, "Deep Colorization", ICCV 2015.
.. [2] D. Hasler, S. Suesstrunk, "Measuring colourfulness in natural images",
       Proc. SPIE 5007, Human Vision and Electronic Imaging VIII, 2003.
"""

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepcolor.io import ImageError, atomic_write_text, find_images, read_rgb_u8

CONVENTIONS = "RGB, uint8, native resolution, data_range=255"

# skimage's structural_similarity uses a 7x7 window by default (Wang et al. 2004).
SSIM_MIN_SIDE = 7

CSV_COLUMNS = (
    "stem",
    "truth",
    "pred",
    "height",
    "width",
    "psnr",
    "ssim",
    "cf_truth",
    "cf_pred",
    "cf_gap",
)


def _check_rgb_u8(image, name):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8, got {image.dtype}")
    return image


def _check_pair(truth, pred):
    truth = _check_rgb_u8(truth, "truth")
    pred = _check_rgb_u8(pred, "pred")
    if truth.shape != pred.shape:
        raise ValueError(
            f"truth and pred must have the same shape, got {truth.shape} and {pred.shape}"
        )
    return truth, pred


def psnr(truth, pred):
    """Peak signal-to-noise ratio in dB between two RGB uint8 images.

    Parameters
    ----------
    truth : ndarray of shape (H, W, 3), uint8
        True colour image, values in [0, 255].
    pred : ndarray of shape (H, W, 3), uint8
        Colourized image of the same shape.

    Returns
    -------
    psnr : float
        ``10 log10(255**2 / MSE)`` in dB, the MSE taken over all pixels and the
        three channels; ``inf`` for identical images.

    Raises
    ------
    ValueError
        If an image is not ``(H, W, 3)`` or the shapes differ.
    TypeError
        If an image is not uint8.

    Notes
    -----
    Computed by ``skimage.metrics.peak_signal_noise_ratio`` with
    ``data_range=255`` on RGB at native resolution, as Cheng et al. [1]_ report
    it. Identical images return ``inf`` without calling scikit-image, which
    would warn about a division by zero.

    References
    ----------
    .. [1] Z. Cheng, Q. Yang, B. Sheng, "Deep Colorization", ICCV 2015.
    """
    from skimage.metrics import peak_signal_noise_ratio

    truth, pred = _check_pair(truth, pred)
    if np.array_equal(truth, pred):
        return math.inf
    return float(peak_signal_noise_ratio(truth, pred, data_range=255))


def ssim(truth, pred):
    """Structural similarity between two RGB uint8 images.

    Parameters
    ----------
    truth : ndarray of shape (H, W, 3), uint8
        True colour image, values in [0, 255].
    pred : ndarray of shape (H, W, 3), uint8
        Colourized image of the same shape.

    Returns
    -------
    ssim : float
        Mean SSIM over the image and the three channels, at most 1 (identical
        images).

    Raises
    ------
    ValueError
        If an image is not ``(H, W, 3)``, the shapes differ, or a side is
        shorter than 7 pixels (the SSIM window).
    TypeError
        If an image is not uint8.

    Notes
    -----
    ``skimage.metrics.structural_similarity(truth, pred, channel_axis=-1,
    data_range=255)`` with scikit-image's defaults (7x7 uniform window, sample
    covariance). Cheng et al. [1]_ report PSNR only; SSIM is added because later
    colourization papers report it.

    References
    ----------
    .. [1] Z. Cheng, Q. Yang, B. Sheng, "Deep Colorization", ICCV 2015.
    .. [2] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
           assessment: from error visibility to structural similarity", IEEE
           Trans. Image Processing 13(4), 2004.
    """
    from skimage.metrics import structural_similarity

    truth, pred = _check_pair(truth, pred)
    if min(truth.shape[:2]) < SSIM_MIN_SIDE:
        raise ValueError(
            f"ssim needs images of at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} pixels "
            f"(its window), got {truth.shape[:2]}"
        )
    return float(structural_similarity(truth, pred, channel_axis=-1, data_range=255))


def colourfulness(rgb):
    """Colourfulness of Hasler and Suesstrunk (2003).

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3)
        RGB image on the 0-255 scale: uint8, or any real dtype holding values
        in [0, 255].

    Returns
    -------
    cf : float
        ``sqrt(std_rg**2 + std_yb**2) + 0.3 * sqrt(mean_rg**2 + mean_yb**2)``
        with ``rg = R - G`` and ``yb = (R + G) / 2 - B``; 0 for a grey image.

    Raises
    ------
    ValueError
        If `rgb` is not ``(H, W, 3)`` or is empty.
    TypeError
        If `rgb` is not of a real numeric dtype.

    Notes
    -----
    Standard deviations are population ones (``ddof=0``), as in the paper [1]_
    and in DDColor's ``calculate_cf``. Computed in float64.

    References
    ----------
    .. [1] D. Hasler, S. Suesstrunk, "Measuring colourfulness in natural
           images", Proc. SPIE 5007, Human Vision and Electronic Imaging VIII,
           2003.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
    if rgb.size == 0:
        raise ValueError(f"rgb must not be empty, got shape {rgb.shape}")
    if rgb.dtype == np.bool_ or not (
        np.issubdtype(rgb.dtype, np.integer) or np.issubdtype(rgb.dtype, np.floating)
    ):
        raise TypeError(f"rgb must be of an integer or floating dtype, got {rgb.dtype}")
    rgb = rgb.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g  # (H, W)
    yb = 0.5 * (r + g) - b  # (H, W)
    spread = math.hypot(float(rg.std()), float(yb.std()))
    centre = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * centre


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate_dirs` measured.

    Attributes
    ----------
    rows : list of dict
        One dict per evaluated pair, keys as `CSV_COLUMNS`: ``stem`` (path
        relative to the folder, without suffix, '/'-separated), ``truth`` and
        ``pred`` (paths), ``height`` and ``width`` (pixels), ``psnr`` (dB),
        ``ssim``, ``cf_truth``, ``cf_pred`` and ``cf_gap`` (floats).
    summary : dict
        ``count`` (pairs evaluated), ``n_failures``, ``psnr_mean``,
        ``psnr_median``, ``psnr_std`` (dB, population std), ``ssim_mean``,
        ``cf_pred_mean``, ``cf_truth_mean``, ``cf_gap_mean`` and
        ``conventions``.
    failures : list of str
        One message per file that was skipped, each naming the file and the
        problem.
    """

    rows: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)


def _stem(path, root):
    """'a/b/x' for root/a/b/x.png: the pairing key."""
    return path.relative_to(root).with_suffix("").as_posix()


def _index(root, role):
    """Map stem -> path for the images of one folder; duplicate stems become failures."""
    groups = {}
    for path in find_images(root):
        groups.setdefault(_stem(path, root), []).append(path)
    index, failures = {}, []
    for stem, paths in groups.items():
        if len(paths) == 1:
            index[stem] = paths[0]
        else:
            names = ", ".join(str(p) for p in paths)
            failures.append(
                f"{paths[0]}: duplicate stem {stem!r} in the {role} folder {root} "
                f"({names}); skipped rather than picking one"
            )
    return index, groups.keys(), failures


def _measure(stem, truth_path, pred_path):
    """Row for one pair, or a failure message."""
    try:
        truth = read_rgb_u8(truth_path)
        pred = read_rgb_u8(pred_path)
    except ImageError as exc:
        return None, str(exc)
    if truth.shape != pred.shape:
        return None, (
            f"{pred_path}: size {pred.shape[0]}x{pred.shape[1]} (rows x columns) does not "
            f"match the ground truth {truth_path} of size {truth.shape[0]}x{truth.shape[1]}"
        )
    if min(truth.shape[:2]) < SSIM_MIN_SIDE:
        return None, (
            f"{truth_path}: size {truth.shape[0]}x{truth.shape[1]} is smaller than the "
            f"{SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} SSIM window"
        )
    cf_truth = colourfulness(truth)
    cf_pred = colourfulness(pred)
    row = {
        "stem": stem,
        "truth": str(truth_path),
        "pred": str(pred_path),
        "height": int(truth.shape[0]),
        "width": int(truth.shape[1]),
        "psnr": psnr(truth, pred),
        "ssim": ssim(truth, pred),
        "cf_truth": cf_truth,
        "cf_pred": cf_pred,
        "cf_gap": abs(cf_pred - cf_truth),
    }
    return row, None


def _summarise(rows, n_failures):
    psnrs = np.array([r["psnr"] for r in rows], dtype=np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf in std when some PSNRs are inf
        psnr_std = float(psnrs.std())
    return {
        "count": len(rows),
        "n_failures": n_failures,
        "psnr_mean": float(psnrs.mean()),
        "psnr_median": float(np.median(psnrs)),
        "psnr_std": psnr_std,
        "ssim_mean": float(np.mean([r["ssim"] for r in rows])),
        "cf_pred_mean": float(np.mean([r["cf_pred"] for r in rows])),
        "cf_truth_mean": float(np.mean([r["cf_truth"] for r in rows])),
        "cf_gap_mean": float(np.mean([r["cf_gap"] for r in rows])),
        "conventions": CONVENTIONS,
    }


def _json_safe(value):
    """Strict JSON has no inf or nan: write them as the strings 'inf', '-inf', 'nan'."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _write(out_dir, evaluation):
    out_dir = Path(out_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in evaluation.rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(out_dir / "metrics.csv", buf.getvalue())
    payload = {k: _json_safe(v) for k, v in evaluation.summary.items()}
    payload["failures"] = list(evaluation.failures)
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    atomic_write_text(out_dir / "summary.json", text)


def _check_folder(folder, role):
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"{role} folder must be an existing folder, got {str(folder)!r} ({what})")
    return folder


def evaluate_dirs(truth_dir, pred_dir, out_dir=None, n_jobs=1):
    """Compare every colourized image with its true colour original, paired by name.

    Parameters
    ----------
    truth_dir : str or Path
        Folder of true colour images, searched recursively (`find_images`).
    pred_dir : str or Path
        Folder of colourized images. ``pred_dir/a/b/x.png`` pairs with
        ``truth_dir/a/b/x.jpg``: the key is the path relative to the folder
        without its suffix.
    out_dir : str or Path, optional
        If given, ``metrics.csv`` (one row per pair) and ``summary.json`` (the
        summary plus the list of failures) are written there atomically.
    n_jobs : int, default 1
        Pairs measured in parallel by joblib; 1 runs in this process.

    Returns
    -------
    evaluation : Evaluation
        ``rows``, ``summary`` and ``failures``; see `Evaluation`.

    Raises
    ------
    ValueError
        If a folder does not exist or is a file, if `truth_dir` holds no
        image, or if no pair could be evaluated.

    Notes
    -----
    Problems with single files do not stop the run: a truth without a
    prediction, a prediction without a truth, an unreadable image, a size
    mismatch, an image smaller than the 7x7 SSIM window and a stem that occurs
    twice in one folder (``x.png`` and ``x.jpg``) are each reported in
    ``failures`` and the file is skipped. Images are read as uint8 RGB
    (`read_rgb_u8`: grey replicated, 16-bit rounded to 8 bits) and compared at
    native resolution, as Cheng et al. [1]_ report PSNR.

    Identical images have an infinite PSNR, so ``psnr_mean`` is ``inf`` and
    ``psnr_std`` is ``nan`` when one pair is identical; the median stays
    finite while fewer than half are. ``summary.json`` writes such values as
    the strings ``"inf"`` and ``"nan"`` to stay strict JSON, and ``metrics.csv``
    writes them as ``inf``; ``float()`` reads both back.

    References
    ----------
    .. [1] Z. Cheng, Q. Yang, B. Sheng, "Deep Colorization", ICCV 2015.
    .. [2] D. Hasler, S. Suesstrunk, "Measuring colourfulness in natural
           images", Proc. SPIE 5007, 2003.
    """
    truth_dir = _check_folder(truth_dir, "truth")
    pred_dir = _check_folder(pred_dir, "pred")
    truths, truth_stems, failures = _index(truth_dir, "truth")
    if not truth_stems:
        raise ValueError(f"truth folder {str(truth_dir)!r} contains no images")
    preds, pred_stems, pred_failures = _index(pred_dir, "pred")
    failures += pred_failures

    pairs = []
    for stem, truth_path in truths.items():
        if stem in preds:
            pairs.append((stem, truth_path, preds[stem]))
        elif stem not in pred_stems:  # a duplicate in pred is already reported
            failures.append(f"{truth_path}: no prediction with stem {stem!r} in {pred_dir}")
    for stem, pred_path in preds.items():
        if stem not in truth_stems:
            failures.append(f"{pred_path}: no ground truth with stem {stem!r} in {truth_dir}")
    if not pairs:
        raise ValueError(
            f"no image in {str(pred_dir)!r} pairs with one in {str(truth_dir)!r} by stem "
            f"({len(failures)} failures, first: {failures[:1]})"
        )

    if n_jobs == 1:
        results = [_measure(*pair) for pair in pairs]
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs)(delayed(_measure)(*pair) for pair in pairs)
    rows = [row for row, _ in results if row is not None]
    failures += [msg for _, msg in results if msg is not None]
    if not rows:
        raise ValueError(
            f"no pair between {str(truth_dir)!r} and {str(pred_dir)!r} could be evaluated "
            f"({len(failures)} failures, first: {failures[:1]})"
        )
    evaluation = Evaluation(rows=rows, summary=_summarise(rows, len(failures)), failures=failures)
    if out_dir is not None:
        _write(out_dir, evaluation)
    return evaluation


def segmentation_scores(pred, truth, n_groups):
    """Pixel accuracy and mean IoU of group label maps.

    Parameters
    ----------
    pred, truth : ndarray of int, same shape
        Group indices in ``0..n_groups-1``; `truth` is -1 where unlabelled
        (those pixels are not counted); `pred` may hold other values (e.g.
        ``n_groups`` for "other"), which count as wrong.
    n_groups : int

    Returns
    -------
    scores : dict
        ``pixel_accuracy`` over labelled pixels, ``mean_iou`` over the groups
        present in `truth` or `pred`, ``confusion`` ((n_groups, n_groups + 1)
        counts, rows truth, last column "other").
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth must have the same shape, got {pred.shape} and {truth.shape}")
    pred = pred.ravel().astype(np.int64)
    truth = truth.ravel().astype(np.int64)
    if truth.size and truth.max() >= n_groups:
        raise ValueError(f"truth holds group {truth.max()}, but n_groups={n_groups}")
    keep = truth >= 0
    pred, truth = pred[keep], truth[keep]
    pred = np.where((pred >= 0) & (pred < n_groups), pred, n_groups)  # anything else is "other"
    confusion = np.bincount(truth * (n_groups + 1) + pred, minlength=n_groups * (n_groups + 1))
    confusion = confusion.reshape(n_groups, n_groups + 1)
    hits = np.diag(confusion[:, :n_groups])
    union = confusion.sum(axis=1) + confusion[:, :n_groups].sum(axis=0) - hits
    present = union > 0
    return {
        "pixel_accuracy": float(hits.sum() / max(truth.size, 1)),
        "mean_iou": float(np.mean(hits[present] / union[present])) if present.any() else 0.0,
        "n_pixels": int(truth.size),
        "confusion": confusion,
    }
