"""Reference sets as folders of links (deepcolor.refsets) and the multi-set quality bench (deepcolor.bench_quality)."""

import os

import numpy as np
import pytest

from deepcolor.refsets import link_folder, main, reference_paths


def test_link_folder_unit(tmp_path, tiny_refs):
    photos = tiny_refs(tmp_path / "photos", seeds=range(3))
    n = link_folder({"a": photos[:2], "b": photos[2:]}, tmp_path / "refs")
    assert n == 3
    links = sorted((tmp_path / "refs").rglob("*.png")) + sorted((tmp_path / "refs").rglob("*.jpg"))
    assert len(links) == 3 and all(p.is_symlink() for p in links)
    assert {os.path.realpath(p) for p in links} == {os.path.realpath(p) for p in photos}
    # a folder of links is replaced by the next run
    assert link_folder({"a": photos[:1]}, tmp_path / "refs") == 1
    assert not (tmp_path / "refs" / "b").exists()


def test_link_folder_exception(tmp_path, tiny_refs):
    photos = tiny_refs(tmp_path / "photos", seeds=range(1))
    with pytest.raises(FileExistsError, match="holds files that are not links"):
        link_folder({"a": photos}, tmp_path / "photos")  # never deletes real photos
    assert all(p.exists() for p in photos)


def test_reference_paths_exception(tmp_path):
    with pytest.raises(ValueError, match="reference set must be one of"):
        reference_paths("everything", tmp_path)


def test_refsets_main_exception(tmp_path, capsys):
    assert main(["bsds500", "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "refsets:" in capsys.readouterr().err


def test_score_set_unit(tiny_model_dir, tiny_scene):
    # The model beats the grey input on scenes like its references; the report's fields are consistent.
    from deepcolor.bench_quality import score_set
    from deepcolor.color import rgb_to_gray_u8
    from deepcolor.ensemble import Model

    items = []
    for seed in (101, 102):
        truth = tiny_scene(41, 37, seed)
        items.append((str(seed), rgb_to_gray_u8(truth).astype(np.float32) / 255, truth))
    out = score_set({"tiny": Model.load(tiny_model_dir)}, items, (0.02, 0.05))
    assert out["n"] == 2 and out["truth_colourfulness"] > 0
    assert out["tiny"]["psnr_mean"] > out["grey"]["psnr_mean"]
    assert out["tiny"]["minus_grey_db"] == pytest.approx(out["tiny"]["psnr_mean"] - out["grey"]["psnr_mean"], abs=2e-3)
    assert 0 < out["tiny"]["ssim_mean"] <= 1 and out["mean_colour"]["colourfulness"] >= 0


def test_score_set_leaves_out_grey_truths(tiny_model_dir, tiny_scene):
    from deepcolor.bench_quality import score_set
    from deepcolor.color import rgb_to_gray_u8
    from deepcolor.ensemble import Model

    truth = tiny_scene(41, 37, 101)
    grey = np.repeat(rgb_to_gray_u8(truth)[..., None], 3, axis=2)
    items = [(n, rgb_to_gray_u8(t).astype(np.float32) / 255, t) for n, t in (("c", truth), ("g", grey))]
    out = score_set({"tiny": Model.load(tiny_model_dir)}, items, (0.0, 0.0))
    assert out["n"] == 1 and out["n_grey_truth_left_out"] == 1 and np.isfinite(out["grey"]["psnr_mean"])


def test_test_sets_unit(tmp_path, tiny_refs):
    # Only the sets whose folders exist; Intel categories cut to their first photos by name.
    from deepcolor.bench_quality import test_sets

    tiny_refs(tmp_path / "bsds500" / "test", seeds=range(2))
    tiny_refs(tmp_path / "intel_scenes" / "test" / "sea", seeds=range(4))
    sets = test_sets(tmp_path, intel_per_category=3)
    assert set(sets) == {"bsds500_test", "intel_sea"}
    assert len(sets["bsds500_test"]) == 2 and len(sets["intel_sea"]) == 3
    assert sets["intel_sea"] == sorted(sets["intel_sea"])
    assert set(test_sets(tmp_path, names=["intel_sea"])) == {"intel_sea"}


@pytest.mark.parametrize("spec, match", [("nomodel", "--model must be NAME=MODEL_DIR, got 'nomodel'"),
                                         ("a=/nonexistent/model", "no such model directory")])
def test_bench_quality_main_exception(tmp_path, capsys, spec, match):
    from deepcolor.bench_quality import main

    with pytest.raises(SystemExit) as exc:
        main(["--model", spec, "--features", str(tmp_path)])
    assert exc.value.code == 2 and match in capsys.readouterr().err


def test_bench_quality_main_exception_features(tmp_path, capsys, tiny_model_dir):
    from deepcolor.bench_quality import main

    with pytest.raises(SystemExit) as exc:
        main(["--model", f"m={tiny_model_dir}", "--features", str(tmp_path / "nope")])
    assert exc.value.code == 2 and "nope" in capsys.readouterr().err
