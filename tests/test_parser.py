"""The distilled grey-image parser (deepcolor/parser.py): shapes, training step, evaluation split."""

import numpy as np
import pytest
import torch

from deepcolor.parser import StudentParser, _block_mean, _student_module, msrc_split, train_student


def test_block_mean_unit():
    # 6x6 -> 3x3 blocks of 2x2; a 7x7 input drops its last row and column, as for 513 -> 128
    stack = np.arange(7 * 7 * 2, dtype=np.float32).reshape(7, 7, 2)
    out = _block_mean(stack, 3)
    assert out.shape == (3, 3, 2)
    np.testing.assert_allclose(out[1, 2, 1], stack[2:4, 4:6, 1].mean())


def test_msrc_split_unit(tmp_path):
    for i in range(7):
        (tmp_path / f"{i}_s.jpg").write_bytes(b"x")
    train, ev = msrc_split(tmp_path)
    assert [p.name for p in ev] == ["0_s.jpg", "3_s.jpg", "6_s.jpg"]
    assert len(train) == 4 and not set(train) & set(ev)


def test_msrc_split_exception(tmp_path):
    with pytest.raises(ValueError, match="no MSRC-v2 .jpg photos"):
        msrc_split(tmp_path)


@pytest.mark.parametrize("size", [32, 48])
def test_student_shape(size):
    net = _student_module(5, width=4)
    out = net(torch.zeros(2, 1, size, size))
    assert out.shape == (2, 5, size // 4, size // 4)


def test_student_parser_predict_proba_shape():
    parser = StudentParser(_student_module(3, width=4), ("a", "b", "c"), input_size=32)
    gray = np.random.default_rng(0).random((13, 9)).astype(np.float32)
    prob = parser.predict_proba(gray)
    assert prob.shape == (13, 9, 3) and prob.dtype == np.float32
    np.testing.assert_allclose(prob.sum(-1), 1.0, atol=1e-5)


def test_train_student_learns_a_constant_scene(torch_one_thread):
    # Bright images are class 0, dark ones class 1: a learnable rule; the held-out loss must fall.
    rng = np.random.default_rng(0)
    bright = rng.random(24) < 0.5
    grey = np.where(bright[:, None, None], 200, 40).astype(np.uint8) + rng.integers(0, 10, (24, 32, 32)).astype(np.uint8)
    targets = np.zeros((24, 8, 8, 2), np.float32)
    targets[bright, ..., 0] = 1
    targets[~bright, ..., 1] = 1
    torch.manual_seed(0)
    parser, hist = train_student(grey, targets, ("bright", "dark"), width=4, epochs=8, batch_size=8,
                                 lr=1e-2, val_fraction=0.25)
    assert hist["best_val"] < hist["val"][0]
    assert hist["best_val"] < np.log(2)  # better than the uniform guess
    prob = parser.predict_proba(np.full((20, 30), 200 / 255, np.float32))
    assert prob[..., 0].mean() > 0.5


# --- save / load -------------------------------------------------------------


def test_student_parser_save_load_unit(tmp_path, rng):
    import json

    parser = StudentParser(_student_module(3, width=4), ("a", "b", "c"), input_size=32, info={"k": 1})
    parser.save(tmp_path / "p")
    loaded = StudentParser.load(tmp_path / "p")
    assert loaded.class_names == ("a", "b", "c") and loaded.width == 4 and loaded.input_size == 32
    assert loaded.info == {"k": 1}
    gray = rng.random((21, 17)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_proba(gray), parser.predict_proba(gray))
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["format"] == "deepcolor-parser" and loaded.sha256 == manifest["files"]["student.safetensors"]


def test_student_parser_load_exception_checksum(tiny_parser_dir, tmp_path):
    import shutil

    from deepcolor.ensemble import ModelError

    shutil.copytree(tiny_parser_dir, tmp_path / "p")
    weights = tmp_path / "p" / "student.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="student.safetensors: checksum mismatch"):
        StudentParser.load(tmp_path / "p")


def test_student_parser_load_exception_not_a_parser(tiny_model_dir, tmp_path):
    from deepcolor.ensemble import ModelError

    with pytest.raises(ModelError, match="not a deepcolor parser manifest"):
        StudentParser.load(tiny_model_dir)
    with pytest.raises(ModelError, match="no such parser directory"):
        StudentParser.load(tmp_path / "nothing")


def test_student_parser_load_exception_inconsistent(tiny_parser_dir, tmp_path):
    import json
    import shutil

    from deepcolor.ensemble import ModelError

    shutil.copytree(tiny_parser_dir, tmp_path / "p")
    mpath = tmp_path / "p" / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["class_names"] = ["a", "b"]  # the weights predict 3
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="inconsistent parser"):
        StudentParser.load(tmp_path / "p")


def test_student_parser_exception_names():
    with pytest.raises(ValueError, match="predicts 3 classes, 2 class names"):
        StudentParser(_student_module(3, width=4), ("a", "b"))


# --- photo selection ----------------------------------------------------------


def test_select_photos_unit(tmp_path, tiny_refs):
    from deepcolor.parser import select_photos

    a = tiny_refs(tmp_path / "a", seeds=range(6))
    b = tiny_refs(tmp_path / "b", seeds=range(2))
    msrc = tmp_path / "msrc"
    msrc.mkdir()
    for i in range(6):
        (msrc / f"{i}_s.jpg").write_bytes(b"x")
    paths = select_photos([tmp_path / "a", tmp_path / "b"], msrc, max_per_folder=3, seed=0)
    assert len(paths) == 3 + 2 + 4
    assert set(paths[:3]) < set(a) and paths[3:5] == b
    assert [p.name for p in paths[5:]] == ["1_s.jpg", "2_s.jpg", "4_s.jpg", "5_s.jpg"]
    assert paths == select_photos([tmp_path / "a", tmp_path / "b"], msrc, max_per_folder=3, seed=0)


def test_select_photos_invariant_seed(tmp_path, tiny_refs):
    from deepcolor.parser import select_photos

    tiny_refs(tmp_path / "a", seeds=range(12))
    subsets = {tuple(select_photos([tmp_path / "a"], max_per_folder=4, seed=s)) for s in range(6)}
    assert len(subsets) > 1  # the seed chooses the subset
    assert all(len(s) == 4 for s in subsets)


def test_select_photos_exception(tmp_path):
    from deepcolor.parser import select_photos

    with pytest.raises(ValueError, match="no such folder"):
        select_photos([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no image files"):
        select_photos([tmp_path / "empty"])
    with pytest.raises(ValueError, match="max_per_folder must be a positive int"):
        select_photos([tmp_path / "empty"], max_per_folder=0)


# --- msrc_parsing_scores ------------------------------------------------------


def _fake_msrc(root, tiny_scene, label_shape=None):
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(3):
        Image.fromarray(tiny_scene(20, 30, i)).save(root / "images" / f"{i}_s.jpg")
    labels = np.full(label_shape or (20, 30), 6, np.uint8)  # MSRC 6: sky
    labels[:, :10] = 255  # unlabelled
    Image.fromarray(labels).save(root / "labels" / "0_s.png")  # only the evaluation photo needs labels
    return root


def test_msrc_parsing_scores_unit(tmp_path, tiny_scene):
    from deepcolor.features.semantic import SHARED_GROUPS
    from deepcolor.parser import msrc_parsing_scores

    root = _fake_msrc(tmp_path / "msrc", tiny_scene)
    sky = SHARED_GROUPS.index("sky")
    always_sky = lambda rgb: np.eye(len(SHARED_GROUPS) + 1, dtype=np.float32)[np.full(rgb.shape[:2], sky)]
    scores = msrc_parsing_scores(always_sky, root)
    assert scores["n_images"] == 1 and scores["pixel_accuracy"] == 1.0 and scores["mean_iou"] == 1.0
    never = lambda rgb: np.eye(len(SHARED_GROUPS) + 1, dtype=np.float32)[np.full(rgb.shape[:2], len(SHARED_GROUPS))]
    assert msrc_parsing_scores(never, root)["pixel_accuracy"] == 0.0  # "other" is always a miss


def test_msrc_parsing_scores_exception(tmp_path, tiny_scene):
    from deepcolor.parser import msrc_parsing_scores

    root = _fake_msrc(tmp_path / "a", tiny_scene)
    (root / "labels" / "0_s.png").unlink()
    with pytest.raises(ValueError, match="0_s.png: cannot read the MSRC-v2 labels of 0_s.jpg"):
        msrc_parsing_scores(lambda rgb: None, root)
    root = _fake_msrc(tmp_path / "b", tiny_scene, label_shape=(21, 30))
    with pytest.raises(ValueError, match=r"labels \(21, 30\) do not match the photo \(20, 30\)"):
        msrc_parsing_scores(lambda rgb: None, root)
