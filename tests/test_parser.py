"""The old grey-image student of issue 3 (features/greyparser.py): it still loads and runs; photo selection."""

import numpy as np
import pytest
import torch

from deepcolor.features.greyparser import StudentParser, _student_module


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
    from deepcolor.features.labelsets import select_photos

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
    from deepcolor.features.labelsets import select_photos

    tiny_refs(tmp_path / "a", seeds=range(12))
    subsets = {tuple(select_photos([tmp_path / "a"], max_per_folder=4, seed=s)) for s in range(6)}
    assert len(subsets) > 1  # the seed chooses the subset
    assert all(len(s) == 4 for s in subsets)


def test_select_photos_exception(tmp_path):
    from deepcolor.features.labelsets import select_photos

    with pytest.raises(ValueError, match="no such folder"):
        select_photos([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no image files"):
        select_photos([tmp_path / "empty"])
    with pytest.raises(ValueError, match="max_per_folder must be a positive int"):
        select_photos([tmp_path / "empty"], max_per_folder=0)
