"""Tests for `deepcolor.bench`'s baselines section on tiny data (the section's numbers: docs/DESIGN.md)."""

import numpy as np
import pytest
from PIL import Image

from deepcolor import bench, report, testsets
from deepcolor.color import rgb_to_gray_u8
from deepcolor.images.read import read_image
from deepcolor.images.write import write_image


@pytest.fixture
def scenes(tmp_path, tiny_scene):
    """An Intel-scenes-like folder: train/ and test/ with one folder per category."""
    root = tmp_path / "intel"
    for split, n in (("train", 3), ("test", 2)):
        for c, category in enumerate(("forest", "sea")):
            folder = root / split / category
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(tiny_scene(40, 40, 700 + 10 * c + i + (0 if split == "train" else 5))).save(
                    folder / f"{i}.png")
    return root


def test_bench_baselines(tmp_path, tiny_refs, tiny_scene, scenes, torch_one_thread):
    refs = tiny_refs(tmp_path / "refs")
    test = tmp_path / "test.png"
    Image.fromarray(tiny_scene(30, 40, 990)).save(test)
    items = testsets.load_test_set([test])
    out = bench.bench_baselines(refs, items, scenes, intel_refs=4, intel_test_per_class=1,
                                flip_epochs={"autoencoder": 2}, scene_epochs=1)
    flip_off, flip_on = out["flip"]["autoencoder"]
    assert (flip_off["flip"], flip_on["flip"]) == (False, True)
    for row in (flip_off, flip_on):
        assert row["n_images"] == 6 and row["epochs_run"] == 2 and 1 <= row["best_epoch"] <= 2
        assert np.isfinite(row["psnr_mean"]) and row["train_s"] > 0
    assert flip_off["psnr_mean"] != flip_on["psnr_mean"]  # mirroring changed what was learned
    no_labels, labels = out["scene_loss"]
    assert (no_labels["scene_labels"], labels["scene_labels"]) == (False, True)
    assert no_labels["n_images"] == labels["n_images"] == 4  # the same seeded subset of the 6 train photos
    assert out["scene_loss_test_images"] == 2  # the first photo of each category
    assert out["patience"] == report.REPORT_PATIENCE


def test_bench_baselines_without_intel(tmp_path, tiny_refs, tiny_scene, torch_one_thread):
    refs = tiny_refs(tmp_path / "refs")
    test = tmp_path / "test.png"
    Image.fromarray(tiny_scene(30, 40, 991)).save(test)
    out = bench.bench_baselines(refs, testsets.load_test_set([test]), tmp_path / "nowhere",
                                flip_epochs={"iizuka": 1})
    assert out["scene_loss"] == f"skipped: {tmp_path / 'nowhere'} not found"
    assert [r["flip"] for r in out["flip"]["iizuka"]] == [False, True]


def test_write_grey_inputs_roundtrip(tmp_path):
    """The one grey-input recipe: the PNG written holds exactly the truth's 8-bit BT.601 luma."""
    truth = np.random.default_rng(0).integers(0, 256, (13, 9, 3), dtype=np.uint8)
    write_image(tmp_path / "t.png", truth)
    items = testsets.load_test_set([tmp_path / "t.png"])
    (path,) = testsets.write_grey_inputs(items, tmp_path / "grey")
    assert path == tmp_path / "grey" / "t.png"
    np.testing.assert_array_equal(read_image(path), rgb_to_gray_u8(truth))
    write_image(path, np.zeros((13, 9), np.uint8))  # an existing file is kept unless overwrite
    testsets.write_grey_inputs(items, tmp_path / "grey")
    assert read_image(path).max() == 0
    testsets.write_grey_inputs(items, tmp_path / "grey", overwrite=True)
    np.testing.assert_array_equal(read_image(path), rgb_to_gray_u8(truth))
