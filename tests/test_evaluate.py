"""Tests for deepcolor.evaluate: PSNR, SSIM, colourfulness and folder evaluation."""

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from deepcolor.evaluate import CSV_COLUMNS, evaluate_dirs
from deepcolor.metrics import CONVENTIONS, colourfulness, psnr, ssim


def _rgb(h=13, w=9, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


# --- psnr --------------------------------------------------------------------


def test_psnr_unit():
    # Golden by hand: 10 * log10(255**2 / MSE), MSE over all pixels and channels.
    truth = np.zeros((5, 3, 3), dtype=np.uint8)
    pred = truth.copy()
    pred[0, 0, 0] = 10  # squared error 100
    pred[4, 2, 1] = 20  # squared error 400
    mse = (100 + 400) / (5 * 3 * 3)
    assert psnr(truth, pred) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-10)


def test_psnr_unit_symmetric_rounding():
    truth = _rgb(13, 9, seed=1)
    pred = _rgb(13, 9, seed=2)
    err = (truth.astype(np.float64) - pred.astype(np.float64)) ** 2
    expected = 10 * np.log10(255.0**2 / err.mean())
    assert psnr(truth, pred) == pytest.approx(expected, abs=1e-10)
    assert psnr(pred, truth) == pytest.approx(expected, abs=1e-10)


def test_psnr_identical_is_inf():
    image = _rgb()
    assert psnr(image, image.copy()) == math.inf


def test_psnr_dtype():
    assert isinstance(psnr(_rgb(seed=1), _rgb(seed=2)), float)


@pytest.mark.parametrize(
    "truth, pred, error, match",
    [
        (np.zeros((13, 9), np.uint8), np.zeros((13, 9), np.uint8), ValueError,
         r"truth must have shape \(H, W, 3\), got \(13, 9\)"),
        (np.zeros((13, 9, 3), np.uint8), np.zeros((13, 9, 4), np.uint8), ValueError,
         r"pred must have shape \(H, W, 3\), got \(13, 9, 4\)"),
        (np.zeros((13, 9, 3), np.float32), np.zeros((13, 9, 3), np.uint8), TypeError,
         "truth must be uint8, got float32"),
        (np.zeros((13, 9, 3), np.uint8), np.zeros((9, 13, 3), np.uint8), ValueError,
         r"same shape, got \(13, 9, 3\) and \(9, 13, 3\)"),
    ],
)
def test_psnr_exception(truth, pred, error, match):
    with pytest.raises(error, match=match):
        psnr(truth, pred)


# --- ssim --------------------------------------------------------------------


def test_ssim_identical_is_one():
    image = _rgb()
    assert ssim(image, image.copy()) == pytest.approx(1.0, abs=1e-12)


def test_ssim_unit():
    # Golden from scikit-image directly: structural_similarity(t, p, channel_axis=-1,
    # data_range=255) on the same arrays.
    from skimage.metrics import structural_similarity

    truth, pred = _rgb(13, 9, seed=3), _rgb(13, 9, seed=4)
    expected = structural_similarity(truth, pred, channel_axis=-1, data_range=255)
    assert ssim(truth, pred) == pytest.approx(expected, abs=1e-12)
    assert ssim(truth, pred) < 0.5


def test_ssim_exception():
    small = np.zeros((6, 9, 3), np.uint8)
    with pytest.raises(ValueError, match=r"at least 7x7 pixels .*got \(6, 9\)"):
        ssim(small, small)
    with pytest.raises(TypeError, match="pred must be uint8, got int64"):
        ssim(np.zeros((13, 9, 3), np.uint8), np.zeros((13, 9, 3), np.int64))


# --- colourfulness -----------------------------------------------------------


@pytest.mark.parametrize("value", [0, 77, 255])
def test_colourfulness_invariant_grey_is_zero(value):
    grey = np.full((13, 9, 3), value, dtype=np.uint8)
    grey[3:7, 2:5] = 200  # varying but still grey (R = G = B)
    assert colourfulness(grey) == 0.0


def test_colourfulness_unit():
    # By hand: pixels (255, 0, 0) and (0, 0, 0): rg = [255, 0], yb = [127.5, 0];
    # std_rg = mean_rg = 127.5, std_yb = mean_yb = 63.75, so
    # CF = 1.3 * sqrt(127.5**2 + 63.75**2) = 1.3 * 63.75 * sqrt(5).
    image = np.array([[[255, 0, 0], [0, 0, 0]]], dtype=np.uint8)
    assert colourfulness(image) == pytest.approx(1.3 * 63.75 * math.sqrt(5), abs=1e-9)


def test_colourfulness_unit_flat_colour():
    # A flat colour has no spread: CF = 0.3 * |(mean_rg, mean_yb)|.
    # (10, 40, 100): rg = -30, yb = 25 - 100 = -75 -> 0.3 * sqrt(900 + 5625).
    image = np.tile(np.array([10, 40, 100], np.uint8), (13, 9, 1))
    assert colourfulness(image) == pytest.approx(0.3 * math.sqrt(6525), abs=1e-9)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_colourfulness_dtype(dtype):
    # Integers 0-255 are exact in float32, and the computation runs in float64.
    image = _rgb()
    assert colourfulness(image.astype(dtype)) == colourfulness(image)


def test_colourfulness_exception():
    with pytest.raises(ValueError, match=r"rgb must have shape \(H, W, 3\), got \(13, 9\)"):
        colourfulness(np.zeros((13, 9), np.uint8))
    with pytest.raises(ValueError, match=r"rgb must not be empty, got shape \(0, 9, 3\)"):
        colourfulness(np.zeros((0, 9, 3), np.uint8))
    with pytest.raises(TypeError, match="integer or floating dtype, got bool"):
        colourfulness(np.zeros((13, 9, 3), bool))


# --- evaluate_dirs -----------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    """Three pairs in nested folders, truths as PNG/BMP, predictions as JPEG/PNG."""
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    images = {"top": _rgb(13, 9, 0), "a/x": _rgb(9, 13, 1), "a/b/y": _rgb(11, 10, 2)}
    suffixes = {"top": (".png", ".png"), "a/x": (".png", ".jpg"), "a/b/y": (".bmp", ".png")}
    for stem, image in images.items():
        t_suffix, p_suffix = suffixes[stem]
        _save(truth_dir / f"{stem}{t_suffix}", image)
        pred = image.copy()
        pred[0, 0] = 255 - pred[0, 0]  # never identical, so PSNR stays finite
        _save(pred_dir / f"{stem}{p_suffix}", pred)
    return truth_dir, pred_dir, images


def test_evaluate_dirs_pairs_nested_by_stem(tree, tmp_path):
    truth_dir, pred_dir, images = tree
    result = evaluate_dirs(truth_dir, pred_dir)
    assert result.failures == []
    assert sorted(r["stem"] for r in result.rows) == ["a/b/y", "a/x", "top"]
    by_stem = {r["stem"]: r for r in result.rows}
    assert by_stem["a/x"]["pred"].endswith("x.jpg")
    assert (by_stem["a/x"]["height"], by_stem["a/x"]["width"]) == (9, 13)
    # The PNG pair is lossless, so the row matches psnr() on the arrays.
    truth = images["top"]
    pred = truth.copy()
    pred[0, 0] = 255 - pred[0, 0]
    assert by_stem["top"]["psnr"] == pytest.approx(psnr(truth, pred))
    assert by_stem["top"]["cf_truth"] == pytest.approx(colourfulness(truth))
    for row in result.rows:
        assert row["cf_gap"] == pytest.approx(abs(row["cf_pred"] - row["cf_truth"]))
    s = result.summary
    assert s["count"] == 3 and s["n_failures"] == 0
    assert s["conventions"] == CONVENTIONS == "RGB, uint8, native resolution, data_range=255"
    psnrs = [r["psnr"] for r in result.rows]
    assert s["psnr_mean"] == pytest.approx(np.mean(psnrs))
    assert s["psnr_median"] == pytest.approx(np.median(psnrs))
    assert s["psnr_std"] == pytest.approx(np.std(psnrs))
    assert s["ssim_mean"] == pytest.approx(np.mean([r["ssim"] for r in result.rows]))
    assert s["cf_gap_mean"] == pytest.approx(np.mean([r["cf_gap"] for r in result.rows]))


def test_evaluate_dirs_writes_csv_and_json(tree, tmp_path):
    truth_dir, pred_dir, _ = tree
    _save(pred_dir / "extra.png", _rgb())  # one failure, recorded in the JSON
    out = tmp_path / "out" / "run1"
    result = evaluate_dirs(truth_dir, pred_dir, out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "summary.json"]
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    for written, row in zip(rows, result.rows):
        assert written["stem"] == row["stem"]
        assert float(written["psnr"]) == row["psnr"]  # repr keeps full precision
        assert int(written["height"]) == row["height"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] == 3
    assert summary["n_failures"] == 1
    assert len(summary["failures"]) == 1 and "extra.png" in summary["failures"][0]
    assert summary["conventions"] == CONVENTIONS
    assert summary["psnr_mean"] == pytest.approx(result.summary["psnr_mean"])


def test_evaluate_dirs_identical_inf_is_strict_json(tmp_path):
    image = _rgb()
    _save(tmp_path / "t" / "x.png", image)
    _save(tmp_path / "p" / "x.png", image)
    result = evaluate_dirs(tmp_path / "t", tmp_path / "p", out_dir=tmp_path / "o")
    assert result.rows[0]["psnr"] == math.inf
    assert result.summary["psnr_mean"] == math.inf
    text = (tmp_path / "o" / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict {name}"))
    assert float(summary["psnr_mean"]) == math.inf
    assert math.isnan(float(summary["psnr_std"]))
    assert summary["ssim_mean"] == pytest.approx(1.0)
    with open(tmp_path / "o" / "metrics.csv", newline="") as fh:
        assert float(next(csv.DictReader(fh))["psnr"]) == math.inf


def test_evaluate_dirs_parallel_same_as_serial(tree):
    truth_dir, pred_dir, _ = tree
    serial = evaluate_dirs(truth_dir, pred_dir)
    parallel = evaluate_dirs(truth_dir, pred_dir, n_jobs=2)
    assert parallel.rows == serial.rows
    assert parallel.summary == serial.summary


def _one_failure(result):
    assert len(result.failures) == 1, result.failures
    assert result.summary["n_failures"] == 1
    return result.failures[0]


def test_evaluate_dirs_missing_pred(tree):
    truth_dir, pred_dir, _ = tree
    (pred_dir / "a" / "x.jpg").unlink()
    result = evaluate_dirs(truth_dir, pred_dir)
    msg = _one_failure(result)
    assert msg.startswith(str(truth_dir / "a" / "x.png"))
    assert "no prediction with stem 'a/x'" in msg
    assert result.summary["count"] == 2


def test_evaluate_dirs_extra_pred(tree):
    truth_dir, pred_dir, _ = tree
    _save(pred_dir / "a" / "z.png", _rgb())
    result = evaluate_dirs(truth_dir, pred_dir)
    msg = _one_failure(result)
    assert msg.startswith(str(pred_dir / "a" / "z.png"))
    assert "no ground truth with stem 'a/z'" in msg
    assert result.summary["count"] == 3


def test_evaluate_dirs_corrupt_file(tree):
    truth_dir, pred_dir, _ = tree
    (pred_dir / "top.png").write_text("not a png")
    result = evaluate_dirs(truth_dir, pred_dir)
    msg = _one_failure(result)
    assert msg == f"{pred_dir / 'top.png'}: not an image file that Pillow can read"
    assert sorted(r["stem"] for r in result.rows) == ["a/b/y", "a/x"]


def test_evaluate_dirs_size_mismatch(tree):
    truth_dir, pred_dir, _ = tree
    _save(pred_dir / "top.png", _rgb(9, 13))  # transposed size
    result = evaluate_dirs(truth_dir, pred_dir)
    msg = _one_failure(result)
    assert msg.startswith(str(pred_dir / "top.png"))
    assert "size 9x13 (rows x columns) does not match" in msg
    assert f"{truth_dir / 'top.png'} of size 13x9" in msg
    assert result.summary["count"] == 2


def test_evaluate_dirs_too_small_for_ssim(tree):
    truth_dir, pred_dir, _ = tree
    _save(truth_dir / "tiny.png", _rgb(5, 9))
    _save(pred_dir / "tiny.png", _rgb(5, 9, seed=1))
    msg = _one_failure(evaluate_dirs(truth_dir, pred_dir))
    assert msg.startswith(str(truth_dir / "tiny.png"))
    assert "smaller than the 7x7 SSIM window" in msg


@pytest.mark.parametrize("side", ["truth", "pred"])
def test_evaluate_dirs_duplicate_stem(tree, side):
    truth_dir, pred_dir, _ = tree
    folder = truth_dir if side == "truth" else pred_dir
    _save(folder / "a" / "x.tif", _rgb(9, 13, 1))  # a/x.png or a/x.jpg already there
    result = evaluate_dirs(truth_dir, pred_dir)
    msg = _one_failure(result)  # not also reported as a missing or extra partner
    assert f"duplicate stem 'a/x' in the {side} folder" in msg
    assert str(folder / "a" / "x.tif") in msg
    assert sorted(r["stem"] for r in result.rows) == ["a/b/y", "top"]


def test_evaluate_dirs_exception_empty_truth(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "notes.txt").write_text("no images here")
    _save(tmp_path / "p" / "x.png", _rgb())
    with pytest.raises(ValueError, match=r"truth folder '.*t' contains no images"):
        evaluate_dirs(tmp_path / "t", tmp_path / "p")


def test_evaluate_dirs_exception_no_pairs(tmp_path):
    _save(tmp_path / "t" / "x.png", _rgb())
    _save(tmp_path / "p" / "y.png", _rgb())
    with pytest.raises(ValueError, match=r"no image in '.*p' pairs with one in '.*t' by stem"):
        evaluate_dirs(tmp_path / "t", tmp_path / "p")


def test_evaluate_dirs_exception_nothing_evaluable(tmp_path):
    _save(tmp_path / "t" / "x.png", _rgb())
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"could be evaluated \(1 failures.*empty file"):
        evaluate_dirs(tmp_path / "t", tmp_path / "p", out_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("role", ["truth", "pred"])
def test_evaluate_dirs_exception_nonexistent_folder(tree, tmp_path, role):
    truth_dir, pred_dir, _ = tree
    missing = tmp_path / "nowhere"
    args = (missing, pred_dir) if role == "truth" else (truth_dir, missing)
    with pytest.raises(ValueError, match=rf"{role} folder must be an existing folder, "
                                         rf"got '.*nowhere' \(does not exist\)"):
        evaluate_dirs(*args)


def test_evaluate_dirs_exception_file_not_folder(tree):
    truth_dir, pred_dir, _ = tree
    with pytest.raises(ValueError, match=r"pred folder .*top.png' \(is a file, not a folder\)"):
        evaluate_dirs(truth_dir, pred_dir / "top.png")


# --- issue 18: pairing rules, trivial baselines, grey truths -----------------------


def test_evaluate_dirs_pairs_nested_pred_with_flat_truth(tree, tmp_path):
    """A nested output tree against a flat truth folder pairs by unique file name, each file once."""
    _, pred_dir, images = tree
    flat = tmp_path / "flat"
    for stem, image in images.items():
        _save(flat / f"{stem.rsplit('/', 1)[-1]}.png", image)
    result = evaluate_dirs(flat, pred_dir)
    assert result.failures == []
    assert sorted((r["stem"], r["matched_by"]) for r in result.rows) == [
        ("top", "relative path"), ("x", "file name"), ("y", "file name")]
    assert result.summary["pairing"] == {"relative path": 1, "file name": 2}
    assert result.summary["n_unmatched_truth"] == result.summary["n_unmatched_pred"] == 0
    # and the reverse: flat predictions against the nested truths
    reverse = evaluate_dirs(pred_dir, flat)
    assert reverse.failures == [] and reverse.summary["count"] == 3


def test_evaluate_dirs_ambiguous_file_name(tree):
    """A file name shared by two leftovers is not guessed: each file is a failure that says so."""
    truth_dir, pred_dir, _ = tree
    (pred_dir / "a" / "x.jpg").rename(pred_dir / "x.jpg")
    _save(truth_dir / "b" / "x.png", _rgb(9, 13, 5))  # a second truth named x
    result = evaluate_dirs(truth_dir, pred_dir)
    assert sorted(r["stem"] for r in result.rows) == ["a/b/y", "top"]
    assert len(result.failures) == 3  # two truths, one prediction, each once
    for msg in result.failures:
        assert "its file name 'x' is ambiguous (" in msg and "skipped rather than picking one" in msg
    assert result.summary["n_unmatched_truth"] == 2 and result.summary["n_unmatched_pred"] == 1
    assert result.summary["n_failures"] == 3


def test_evaluate_dirs_trivial_baselines_unit(tmp_path):
    """psnr_grey is the truth's 8-bit luma without colour; psnr_mean_colour uses the truths' mean U, V."""
    from deepcolor.color import combine_luma_chroma, rgb_to_gray_u8, rgb_to_yuv, to_uint8

    truths = {"a": _rgb(13, 9, 0), "b": _rgb(11, 10, 1)}
    for stem, image in truths.items():
        _save(tmp_path / "t" / f"{stem}.png", image)
        _save(tmp_path / "p" / f"{stem}.png", 255 - image)
    result = evaluate_dirs(tmp_path / "t", tmp_path / "p")
    mean_uv = np.mean([rgb_to_yuv(t)[..., 1:].reshape(-1, 2).mean(axis=0, dtype=np.float64)
                       for t in truths.values()], axis=0)
    assert result.summary["mean_colour_uv"] == pytest.approx(mean_uv, abs=1e-5)
    for row in result.rows:
        truth = truths[row["stem"]]
        luma = rgb_to_gray_u8(truth)
        assert row["psnr_grey"] == pytest.approx(psnr(truth, np.repeat(luma[..., None], 3, axis=2)))
        y = luma.astype(np.float32) / 255
        constant = to_uint8(combine_luma_chroma(y, np.broadcast_to(mean_uv.astype(np.float32), y.shape + (2,))))
        assert row["psnr_mean_colour"] == pytest.approx(psnr(truth, constant))
        assert row["truth_grey"] is False
    s = result.summary
    assert s["psnr_grey_mean"] == pytest.approx(np.mean([r["psnr_grey"] for r in result.rows]))
    assert s["psnr_mean_colour_mean"] == pytest.approx(np.mean([r["psnr_mean_colour"] for r in result.rows]))


def test_evaluate_dirs_warns_grey_truth(tmp_path):
    colour = _rgb(13, 9, 0)
    grey = np.repeat(_rgb(13, 9, 1)[..., :1], 3, axis=2)
    _save(tmp_path / "t" / "c.png", colour)
    _save(tmp_path / "t" / "g.png", grey)
    _save(tmp_path / "p" / "c.png", colour[::-1])
    _save(tmp_path / "p" / "g.png", grey[::-1])
    result = evaluate_dirs(tmp_path / "t", tmp_path / "p", out_dir=tmp_path / "o")
    assert result.failures == []
    assert result.summary["n_grey_truth"] == 1
    assert result.warnings == [f"{tmp_path / 't'}: 1 of 2 truths are grey (chroma spread below 0.01); their PSNR "
                               f"rewards grey output ({tmp_path / 't' / 'g.png'})"]
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["warnings"] == result.warnings
    (tmp_path / "t" / "c.png").unlink()  # now every truth is grey
    only_grey = evaluate_dirs(tmp_path / "t", tmp_path / "p")
    assert len(only_grey.warnings) == 1
    assert "every truth is grey" in only_grey.warnings[0] and "is --truth the folder of grey inputs?" in \
        only_grey.warnings[0]
