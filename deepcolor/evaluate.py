"""Evaluation of folders of colourized images against their true colour originals.

The measures (`deepcolor.metrics`) need no downloads: PSNR and SSIM on RGB,
uint8, at native resolution with ``data_range=255``, and the colourfulness of
Hasler and Suesstrunk with its gap ``|CF(pred) - CF(truth)|``, beside the PSNR of two
trivial colorizations (no colour, the truths' mean colour). `evaluate_dirs`
pairs two folders by relative path, then by unique file name (`pair_files`;
the ``lpips_2dirs.py`` pattern), and reports every file it cannot use instead
of stopping at the first one.

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
from pathlib import Path, PurePosixPath

import numpy as np
from joblib import Parallel, delayed

from deepcolor.color import combine_luma_chroma, rgb_to_gray_u8, rgb_to_yuv, to_uint8
from deepcolor.extract import chroma_spread
from deepcolor.files import atomic_write_text
from deepcolor.images.formats import find_images
from deepcolor.images.picture import ImageError
from deepcolor.images.read import read_rgb_u8
from deepcolor.metrics import CONVENTIONS, SSIM_MIN_SIDE, colourfulness, psnr, ssim

CSV_COLUMNS = (
    "stem",
    "truth",
    "pred",
    "matched_by",
    "height",
    "width",
    "psnr",
    "ssim",
    "cf_truth",
    "cf_pred",
    "cf_gap",
    "psnr_grey",
    "psnr_mean_colour",
    "truth_grey",
)


# A truth whose chroma spread (RMS distance of U, V from the image's mean) is below this is grey:
# the near-grey threshold of the references (`FeatureConfig.min_chroma_spread`).
GREY_TRUTH_SPREAD = 0.01

# How `pair_files` matched a prediction with its truth.
BY_PATH, BY_NAME = "relative path", "file name"


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate_dirs` measured.

    Attributes
    ----------
    rows : list of dict
        One dict per evaluated pair, keys as `CSV_COLUMNS`: ``stem`` (the
        truth's path relative to its folder, without suffix, '/'-separated),
        ``truth`` and ``pred`` (paths), ``matched_by`` (``"relative path"`` or
        ``"file name"``, see `pair_files`), ``height`` and ``width`` (pixels),
        ``psnr`` (dB), ``ssim``, ``cf_truth``, ``cf_pred`` and ``cf_gap``
        (floats), ``psnr_grey`` and ``psnr_mean_colour`` (dB: the truth's own
        8-bit luma without colour, and with the truth folder's mean colour),
        ``truth_grey`` (bool: the truth itself has next to no colour).
    summary : dict
        ``count`` (pairs evaluated), ``n_failures``, ``psnr_mean``,
        ``psnr_median``, ``psnr_std`` (dB, population std), ``ssim_mean``,
        ``cf_pred_mean``, ``cf_truth_mean``, ``cf_gap_mean``,
        ``psnr_grey_mean`` and ``psnr_mean_colour_mean`` (the two trivial
        colorizations any method should beat), ``mean_colour_uv`` (U, V),
        ``pairing`` (pairs per rule), ``n_unmatched_truth``,
        ``n_unmatched_pred``, ``n_grey_truth`` and ``conventions``.
    failures : list of str
        One message per file that was skipped, each naming the file and the
        problem.
    warnings : list of str
        Things that make the numbers mean less without stopping the run (truths
        that are grey).
    """

    rows: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


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


@dataclass(frozen=True)
class Pairing:
    """What `pair_files` found.

    Attributes
    ----------
    pairs : list of tuple
        ``(stem, truth_path, pred_path, rule)``, `rule` ``"relative path"`` or
        ``"file name"``; `stem` is the truth's key.
    failures : list of str
        Duplicate stems, ambiguous names and files without a partner, each
        naming the file.
    unmatched_truth, unmatched_pred : int
        Files left without a partner (each also in `failures`).
    """

    pairs: list
    failures: list
    unmatched_truth: int = 0
    unmatched_pred: int = 0


def pair_files(truth_dir, pred_dir):
    """Pair the images of two folders: by relative path, then by unique file name.

    Parameters
    ----------
    truth_dir, pred_dir : Path
        Existing folders, searched recursively (`find_images`).

    Returns
    -------
    pairing : Pairing

    Notes
    -----
    First ``truth_dir/a/x.jpg`` pairs with ``pred_dir/a/x.png`` (the path
    relative to the folder, without suffix). The files left over pair by
    file name without suffix when that name is unique among the leftovers of
    each folder: a flat folder of truths against a colorized tree, or the
    reverse. A name that several leftovers share is not guessed: each of
    those files is a failure that says so. A stem that occurs twice in one
    folder (``x.png`` and ``x.jpg``) is a failure too, and its files take no
    part in the pairing.
    """
    truths, truth_stems, failures = _index(truth_dir, "truth")
    preds, pred_stems, pred_failures = _index(pred_dir, "pred")
    failures += pred_failures
    pairs = [(stem, truth_path, preds[stem], BY_PATH) for stem, truth_path in truths.items() if stem in preds]
    # leftovers: not paired by path and not part of a duplicate stem on the other side
    left_truth = {k: v for k, v in truths.items() if k not in pred_stems}
    left_pred = {k: v for k, v in preds.items() if k not in truth_stems}
    by_name = {}
    for side, left in (("truth", left_truth), ("pred", left_pred)):
        for stem, path in left.items():
            by_name.setdefault(PurePosixPath(stem).name, {"truth": [], "pred": []})[side].append((stem, path))
    unmatched = {"truth": 0, "pred": 0}
    for name, sides in by_name.items():
        t, q = sides["truth"], sides["pred"]
        if len(t) == 1 and len(q) == 1:
            pairs.append((t[0][0], t[0][1], q[0][1], BY_NAME))
            continue
        for side, other, folder, other_folder in (("truth", "pred", truth_dir, pred_dir),
                                                  ("pred", "truth", pred_dir, truth_dir)):
            mine, theirs = sides[side], sides[other]
            for stem, path in mine:
                unmatched[side] += 1
                partner = "prediction" if side == "truth" else "ground truth"
                if not theirs:
                    failures.append(f"{path}: no {partner} with stem {stem!r} or file name {name!r} in {other_folder}")
                else:
                    names = ", ".join(str(p) for _, p in theirs)
                    failures.append(f"{path}: no {partner} with stem {stem!r} in {other_folder}, and its file name "
                                    f"{name!r} is ambiguous ({len(mine)} in {folder}, {len(theirs)} in "
                                    f"{other_folder}: {names}); skipped rather than picking one")
    pairs.sort(key=lambda pair: pair[0])
    return Pairing(pairs, failures, unmatched["truth"], unmatched["pred"])


def _trivial_rgb(truth, uv=(0.0, 0.0)):
    """The truth's 8-bit BT.601 luma with one constant chroma (0, 0: grey), uint8 RGB (H, W, 3).

    How `make bench` scores its grey and mean-chroma rows (`score_constant_chroma`).
    """
    y = rgb_to_gray_u8(truth).astype(np.float32) / 255.0
    chroma = np.broadcast_to(np.asarray(uv, np.float32), y.shape + (2,))
    return to_uint8(combine_luma_chroma(y, chroma))


def _measure(stem, truth_path, pred_path, rule=BY_PATH):
    """Row for one pair (without ``psnr_mean_colour``) and the truth's mean (U, V), or a failure message."""
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
    uv = rgb_to_yuv(truth)[..., 1:]  # (H, W, 2)
    row = {
        "stem": stem,
        "truth": str(truth_path),
        "pred": str(pred_path),
        "matched_by": rule,
        "height": int(truth.shape[0]),
        "width": int(truth.shape[1]),
        "psnr": psnr(truth, pred),
        "ssim": ssim(truth, pred),
        "cf_truth": cf_truth,
        "cf_pred": cf_pred,
        "cf_gap": abs(cf_pred - cf_truth),
        "psnr_grey": psnr(truth, _trivial_rgb(truth)),
        "psnr_mean_colour": None,
        "truth_grey": chroma_spread(uv) < GREY_TRUTH_SPREAD,
    }
    return row, uv.reshape(-1, 2).mean(axis=0, dtype=np.float64)


def _psnr_constant(truth_path, uv):
    truth = read_rgb_u8(truth_path)
    return psnr(truth, _trivial_rgb(truth, uv))


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
        "psnr_grey_mean": float(np.mean([r["psnr_grey"] for r in rows])),
        "psnr_mean_colour_mean": float(np.mean([r["psnr_mean_colour"] for r in rows])),
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
    payload["warnings"] = list(evaluation.warnings)
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    atomic_write_text(out_dir / "summary.json", text)


def _check_folder(folder, role):
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"{role} folder must be an existing folder, got {str(folder)!r} ({what})")
    return folder


def _grey_truth_warning(rows, truth_dir):
    grey = [r["truth"] for r in rows if r["truth_grey"]]
    if not grey:
        return []
    examples = ", ".join(grey[:3]) + (", ..." if len(grey) > 3 else "")
    if len(grey) == len(rows):
        return [f"{truth_dir}: every truth is grey (chroma spread below {GREY_TRUTH_SPREAD}): PSNR against a "
                f"grey truth rewards grey output and says nothing about colour; is --truth the folder of grey "
                f"inputs? ({examples})"]
    return [f"{truth_dir}: {len(grey)} of {len(rows)} truths are grey (chroma spread below {GREY_TRUTH_SPREAD}); "
            f"their PSNR rewards grey output ({examples})"]


def _parallel(fn, tasks, n_jobs):
    if n_jobs == 1:
        return [fn(*task) for task in tasks]
    return Parallel(n_jobs=n_jobs)(delayed(fn)(*task) for task in tasks)


def _pair(truth_dir, pred_dir):
    """`pair_files` of two checked folders; ValueError if the truths hold no image or nothing pairs."""
    if not find_images(truth_dir):
        raise ValueError(f"truth folder {str(truth_dir)!r} contains no images")
    pairing = pair_files(truth_dir, pred_dir)
    if not pairing.pairs:
        failures = list(pairing.failures)
        raise ValueError(
            f"no image in {str(pred_dir)!r} pairs with one in {str(truth_dir)!r} by stem or file name "
            f"({len(failures)} failures, first: {failures[:1]})"
        )
    return pairing


def _measure_pairs(pairing, truth_dir, pred_dir, n_jobs):
    """(rows, failures, mean_uv): every pair measured, with the PSNR of the truths' mean colour.

    `mean_uv` (2,) is the mean (U, V) of the measured truths, each image
    weighing the same; ValueError if no pair could be measured.
    """
    failures = list(pairing.failures)
    results = _parallel(_measure, pairing.pairs, n_jobs)
    rows = [row for row, _ in results if row is not None]
    failures += [msg for row, msg in results if row is None]
    if not rows:
        raise ValueError(
            f"no pair between {str(truth_dir)!r} and {str(pred_dir)!r} could be evaluated "
            f"({len(failures)} failures, first: {failures[:1]})"
        )
    mean_uv = np.mean([uv for row, uv in results if row is not None], axis=0)  # (2,), each image weighs the same
    for row, score in zip(rows, _parallel(_psnr_constant, [(r["truth"], mean_uv) for r in rows], n_jobs)):
        row["psnr_mean_colour"] = score
    return rows, failures, mean_uv


def evaluate_dirs(truth_dir, pred_dir, out_dir=None, n_jobs=1):
    """Compare every colourized image with its true colour original, paired by name.

    Parameters
    ----------
    truth_dir : str or Path
        Folder of true colour images, searched recursively (`find_images`).
    pred_dir : str or Path
        Folder of colourized images. ``pred_dir/a/b/x.png`` pairs with
        ``truth_dir/a/b/x.jpg`` (the path relative to the folder without its
        suffix); files left over pair by unique file name (`pair_files`).
    out_dir : str or Path, optional
        If given, ``metrics.csv`` (one row per pair) and ``summary.json`` (the
        summary plus the lists of failures and warnings) are written there
        atomically.
    n_jobs : int, default 1
        Pairs measured in parallel by joblib; 1 runs in this process.

    Returns
    -------
    evaluation : Evaluation
        ``rows``, ``summary``, ``failures`` and ``warnings``; see `Evaluation`.

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

    Beside the method's PSNR, two trivial colorizations of each truth's own
    8-bit BT.601 luma are scored as `make bench` scores them: no colour
    (``psnr_grey``: the grey input, when it was made from the truth) and
    one constant colour, the mean (U, V) of the evaluated truths, each image
    weighing the same (``psnr_mean_colour``; `make bench` takes the training
    references' mean instead, which it knows). A truth whose chroma spread
    is below `GREY_TRUTH_SPREAD` is itself grey: the run goes on, with a
    warning.

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
    pairing = _pair(truth_dir, pred_dir)
    rows, failures, mean_uv = _measure_pairs(pairing, truth_dir, pred_dir, n_jobs)
    summary = _summarise(rows, len(failures))
    summary.update(
        mean_colour_uv=[round(float(v), 5) for v in mean_uv],
        pairing={rule: sum(r["matched_by"] == rule for r in rows) for rule in (BY_PATH, BY_NAME)},
        n_unmatched_truth=pairing.unmatched_truth, n_unmatched_pred=pairing.unmatched_pred,
        n_grey_truth=sum(r["truth_grey"] for r in rows),
    )
    evaluation = Evaluation(rows=rows, summary=summary, failures=failures,
                            warnings=_grey_truth_warning(rows, truth_dir))
    if out_dir is not None:
        _write(out_dir, evaluation)
    return evaluation
