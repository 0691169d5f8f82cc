"""Tests for `deepcolor report` on a tiny split: every method scored, the report written and self-contained."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from deepcolor import report
from deepcolor.color import rgb_to_gray_u8


@pytest.fixture
def split(tmp_path, tiny_refs, tiny_scene):
    refs = tmp_path / "refs"
    tiny_refs(refs)
    test = tmp_path / "test"
    test.mkdir()
    for i in range(3):
        Image.fromarray(tiny_scene(30, 40, 900 + i)).save(test / f"t{i}.png")
    return refs, test


def test_run_report_deepcolor_ablation(split, tmp_path, tiny_configs, torch_one_thread):
    refs, test = split
    out = tmp_path / "report"
    summary = report.run_report([refs], test, out, baselines=[], configs=tiny_configs, quiet=True)
    names = [r["method"] for r in summary]
    assert names == ["grey input", "patch", "patch+DAISY", "patch+DAISY+semantic", "patch+DAISY, no refinement",
                     "ensemble, nearest centre", "deepcolor"]
    grey, *trained = summary
    assert grey["kind"] == "reference" and grey["cf_mean"] == 0 and grey["train_s"] == 0
    for r in summary:
        assert r["n_images"] == 3 and np.isfinite(r["psnr_mean"]) and 0 < r["ssim_mean"] <= 1
        assert r["seconds_per_image"] > 0
        if r["method"] == "deepcolor":
            assert r["better_than_main"] is None
        else:
            assert r["better_than_main"] in (0, 1 / 3, 2 / 3, 1)
    assert all(r["train_s"] > 0 for r in trained)
    page = (out / "report.html").read_text()
    assert page.count("<tr>") == 1 + len(summary)
    # plot + gallery rows (3 fixed photos, 2 best, 2 worst): the grey input, every trained method, the truth
    assert page.count("data:image/png;base64,") == 1 + (3 + 2 + 2) * (len(trained) + 2)
    assert "http://" not in page and "https://" not in page  # self-contained
    for label in ("fixed", "best", "worst"):  # the gallery's labels are explained (issue 18)
        assert f"<b>{label}</b>" in page
    with open(out / "per_image.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * len(summary) and {r["stem"] for r in rows} == {"t0", "t1", "t2"}
    saved = json.loads((out / "summary.json").read_text())
    assert [m["method"] for m in saved["methods"]] == names
    with open(out / "summary.csv") as fh:
        assert [r["method"] for r in csv.DictReader(fh)] == names


def test_score_matches_evaluate_psnr(tiny_scene):
    """The report's PSNR of a method is the project's psnr of its output against the truth."""
    from deepcolor.metrics import psnr

    truth = tiny_scene(30, 40, 950)
    y = rgb_to_gray_u8(truth).astype(np.float32) / 255
    grey = np.repeat(rgb_to_gray_u8(truth)[..., None], 3, axis=2)
    method = report.Method("grey", "baseline", "zero chroma", lambda _: grey, 0.0)
    report.score(method, [("a", y, truth)], quiet=True)
    assert method.rows[0]["psnr"] == psnr(truth, grey)
    assert method.rows[0]["cf"] == 0.0 and method.rows[0]["cf_gap"] > 0


def test_gallery_stems_fixed_then_best_and_worst():
    items = [(f"s{i}", None, None) for i in range(10)]
    rows = [{"stem": f"s{i}", "psnr": float(p)} for i, p in enumerate([5, 9, 1, 7, 3, 8, 2, 6, 4, 0])]
    picks = report.gallery_stems(items, rows, n_fixed=3, n_extremes=2)
    assert picks == [("fixed", "s0"), ("fixed", "s4"), ("fixed", "s9"), ("best", "s1"), ("best", "s5"),
                     ("worst", "s9"), ("worst", "s2")]


def test_run_report_exception_no_test_images(split, tmp_path):
    refs, _ = split
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no test images found"):
        report.run_report([refs], tmp_path / "empty", tmp_path / "out", baselines=[])


def test_run_report_exception_unknown_baseline(split, tmp_path):
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        report.baseline_methods([], tmp_path, ["nope"])


def test_run_report_with_baselines(split, tmp_path, tiny_configs, torch_one_thread):
    refs, test = split
    out = tmp_path / "report"
    summary = report.run_report([refs], test, out, baselines=["autoencoder", "iizuka"], baseline_epochs=1,
                                configs=tiny_configs, quiet=True)
    rows = {r["method"]: r for r in summary}
    assert rows["autoencoder"]["kind"] == rows["iizuka"]["kind"] == "baseline"
    assert rows["iizuka"]["train_s"] > 0 and np.isfinite(rows["iizuka"]["psnr_mean"])
    assert (out / "work" / "baselines" / "iizuka" / "manifest.json").is_file()
    assert "iizuka" in (out / "report.html").read_text()


def test_folder_labels_from_category_folders(tmp_path):
    paths = [tmp_path / "street" / "a.jpg", tmp_path / "forest" / "b.jpg", tmp_path / "street" / "c.jpg"]
    label = report.folder_labels(paths)
    assert [label(p) for p in paths] == [1, 0, 1]
    assert label(tmp_path / "sea" / "d.jpg") is None


# --- colorize --method ----------------------------------------------------------------------


@pytest.fixture
def autoencoder_dir(tmp_path, tiny_refs, torch_one_thread):
    from deepcolor.baselines import Autoencoder

    paths = tiny_refs(tmp_path / "refs")
    model = Autoencoder(size=32, epochs=1, seed=0).fit(paths)
    model.save(tmp_path / "ae")
    return tmp_path / "ae"


def test_cli_colorize_method_baseline(run, tmp_path, tiny_scene, autoencoder_dir):
    truth = tiny_scene(30, 40, 960)
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    Image.fromarray(rgb_to_gray_u8(truth)).save(src)
    rc, _, err = run("colorize", src.parent, tmp_path / "out", "--method", "autoencoder", "--model",
                     autoencoder_dir, "-q")
    assert rc == 0, err
    out = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert out.shape == truth.shape
    assert np.abs(rgb_to_gray_u8(out).astype(int) - rgb_to_gray_u8(truth)).max() <= 1  # luminance kept


def test_cli_colorize_method_exception_wrong_baseline(run, tmp_path, autoencoder_dir, tiny_scene):
    src = tmp_path / "a.png"
    Image.fromarray(rgb_to_gray_u8(tiny_scene(30, 40, 961))).save(src)
    rc, _, err = run("colorize", src, tmp_path / "out", "--method", "palette", "--model", autoencoder_dir)
    assert rc == 2 and "holds the 'autoencoder' baseline, not 'palette'" in err
    rc, _, err = run("colorize", src, tmp_path / "out", "--method", "palette")
    assert rc == 2 and "--method palette needs --model" in err


def test_run_report_exception_no_references(split, tmp_path):
    _, test = split
    (tmp_path / "no_refs").mkdir()
    with pytest.raises(ValueError, match="no reference images found in .*no_refs"):
        report.run_report([tmp_path / "no_refs"], test, tmp_path / "out", baselines=[])


def test_cli_report_exception_missing_test_folder(run, split, tmp_path):
    refs, _ = split
    rc, _, err = run("report", refs, "--test", tmp_path / "nowhere", "--out", tmp_path / "out", "--baselines")
    assert rc == 2 and f"ERROR: {tmp_path / 'nowhere'}: no such file or folder" in err


def test_cli_report_exception_bad_baseline_epochs(run, split, tmp_path, tiny_configs):
    refs, test = split
    rc, _, err = run("report", refs, "--test", test, "--out", tmp_path / "out", "--baselines", "autoencoder",
                     "--baseline-epochs", "-3", "--limit", "1")
    assert rc == 2 and "ERROR: baseline epochs must be a positive int, got -3" in err
    assert not (tmp_path / "out" / "work").exists()  # refused before any training


@pytest.mark.parametrize("changes, message", [
    ({"limit": 0}, "limit must be a positive int, got 0"),
    ({"limit": -2}, "limit must be a positive int, got -2"),
    ({"baselines": ["palette"], "baseline_images": 0}, "baseline images must be a positive int, got 0"),
    ({"baselines": ["palette"], "baseline_epochs": 2.5}, "baseline epochs must be a positive int, got 2.5"),
])
def test_run_report_exception_bad_counts_before_training(split, tmp_path, changes, message):
    refs, test = split
    with pytest.raises(ValueError, match=message):
        report.run_report([refs], test, tmp_path / "out", **{"baselines": [], **changes})
    assert not (tmp_path / "out" / "work").exists()


def test_run_report_exception_unknown_baseline_before_training(split, tmp_path):
    refs, test = split
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        report.run_report([refs], test, tmp_path / "out", baselines=["nope"])
    assert not (tmp_path / "out" / "work").exists()


def test_colorize_methods_are_deepcolor_and_every_baseline():
    from deepcolor.baselines import BASELINES
    from deepcolor.colorize import METHODS

    assert METHODS == ("deepcolor", *BASELINES)


def test_summarise_share_of_photos_above_main():
    def scored(name, psnrs):
        m = report.Method(name, "ablation", name, None, 1.0)
        m.rows = [{"stem": f"s{i}", "psnr": p, "ssim": 0.9, "cf": 1.0, "cf_gap": 0.0, "seconds": 0.1}
                  for i, p in enumerate(psnrs)]
        return m

    main = scored("deepcolor", [20.0, 25.0, 30.0, 22.0])
    other = scored("other", [21.0, 24.0, 30.0, 23.0])  # above on s0 and s3, equal on s2
    assert report.summarise(other, main)["better_than_main"] == 0.5
    assert report.summarise(main, main)["better_than_main"] is None
    assert report.summarise(other)["better_than_main"] is None
    assert report.summarise(other)["psnr_mean"] == pytest.approx(24.5)


def test_cli_report_prints_the_summary(run, split, tmp_path, config_toml, torch_one_thread):
    refs, test = split
    out = tmp_path / "out"
    rc, stdout, err = run("report", refs, "--test", test, "--out", out, "--baselines", "--limit", "2",
                          "--config", config_toml, "-q")
    assert rc == 0, err
    lines = stdout.splitlines()
    assert lines[0].split()[:3] == ["method", "PSNR", "mean"] and "above deepcolor" in lines[0]
    saved = json.loads((out / "summary.json").read_text())["methods"]
    assert [line.split("  ")[0].strip() for line in lines[1:]] == [m["method"] for m in saved]
    grey_line = lines[1]
    assert grey_line.startswith("grey input") and f"{saved[0]['psnr_mean']:9.2f}" in grey_line
    assert f"report: {out / 'report.html'}" in err


def test_cli_report_help_states_the_patience(capsys):
    from deepcolor import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["report", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"after {report.REPORT_PATIENCE} epochs without a lower held-out loss" in " ".join(out.split())
