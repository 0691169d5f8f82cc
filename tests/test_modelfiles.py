"""The one writer of checksummed model directories (`write_model_dir`) against the one reader."""

import hashlib
import json
from pathlib import Path

import pytest

import deepcolor
from deepcolor.modelfiles import MANIFEST, ModelError, read_verified, write_model_dir

MODELS = Path(deepcolor.__file__).parent / "models"


def _manifest():
    return {"format": "test-dir", "format_version": 1, "settings": {"a": 1}, "files": None, "info": {"b": 2}}


def test_write_model_dir_roundtrip(tmp_path):
    files = {"w.bin": b"weights", "n.npz": b"norm"}
    written = write_model_dir(tmp_path / "m", _manifest(), files, "thing")
    manifest, blobs = read_verified(tmp_path / "m", "test-dir", 1, "thing")
    assert manifest == written
    assert blobs == files
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([MANIFEST, *files])
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left beside it


def test_write_model_dir_unit(tmp_path):
    # the table of checksums takes the place of a "files" key, else it comes last; indent 1, numpy floats as floats
    np = pytest.importorskip("numpy")
    write_model_dir(tmp_path / "m", {**_manifest(), "x": np.float32(0.5)}, {"w.bin": b"abc"}, "thing")
    text = (tmp_path / "m" / MANIFEST).read_text()
    sha = hashlib.sha256(b"abc").hexdigest()
    assert text == json.dumps({"format": "test-dir", "format_version": 1, "settings": {"a": 1},
                               "files": {"w.bin": sha}, "info": {"b": 2}, "x": 0.5}, indent=1)
    write_model_dir(tmp_path / "n", {"format": "f"}, {"w.bin": b"abc"})
    assert list(json.loads((tmp_path / "n" / MANIFEST).read_text())) == ["format", "files"]


def test_write_model_dir_replaces_whole(tmp_path):
    write_model_dir(tmp_path / "m", _manifest(), {"old.bin": b"1", "both.bin": b"2"})
    write_model_dir(tmp_path / "m", _manifest(), {"both.bin": b"3"})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["both.bin", MANIFEST]
    assert (tmp_path / "m" / "both.bin").read_bytes() == b"3"


def test_write_model_dir_exception_overwrite(tmp_path):
    write_model_dir(tmp_path / "m", _manifest(), {"w.bin": b"1"}, "parser")
    with pytest.raises(FileExistsError, match="a parser is there already; pass overwrite=True"):
        write_model_dir(tmp_path / "m", _manifest(), {"w.bin": b"2"}, "parser", overwrite=False)
    assert (tmp_path / "m" / "w.bin").read_bytes() == b"1"


def test_write_model_dir_exception_foreign_files(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="holds files that are not a parser's"):
        write_model_dir(tmp_path / "m", _manifest(), {"w.bin": b"1"}, "parser")
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("name", ["", "..", "a/b", "a\\b", MANIFEST])
def test_write_model_dir_exception_names(tmp_path, name):
    with pytest.raises(ValueError, match="plain file names"):
        write_model_dir(tmp_path / "m", _manifest(), {name: b"1"})
    assert not (tmp_path / "m").exists()


def _sha_of_files(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# parser-v1 was committed by an older writer whose safetensors metadata held two keys (in a random
# order); these are the bytes that the writer before the one-writer refactor gave it
# (StudentParser.load(models/parser-v1).save(out) with the committed versions), as this one must.
PARSER_V1_REWRITTEN = {"manifest.json": "05f1744bdb0e8173263ff348c3cbb92981aa4054b61e8ad0f10e2b7d809d8663",
                       "student.safetensors": "79b6e546919bbaa1a005f0afd48cf0f1772156feefffe018df0d9a2b214f94ec"}


@pytest.mark.parametrize("name, module, cls", [("default", "deepcolor.ensemble", "Model"),
                                               ("parser", "deepcolor.features.greyparser", "GreyParser"),
                                               ("parser-v1", "deepcolor.features.greyparser", "StudentParser")])
def test_bundled_roundtrip(tmp_path, monkeypatch, name, module, cls):
    # Loading a bundled model or parser and saving it again writes the committed bytes, file by file.
    # The versions recorded are the builder's (this machine's libraries may be newer).
    pytest.importorskip("torch")
    import importlib

    mod = importlib.import_module(module)
    committed = json.loads((MODELS / name / MANIFEST).read_text())
    monkeypatch.setattr(mod, "versions", lambda: committed["versions"])
    getattr(mod, cls).load(MODELS / name).save(tmp_path / name)
    expected = PARSER_V1_REWRITTEN if name == "parser-v1" else _sha_of_files(MODELS / name)
    assert _sha_of_files(tmp_path / name) == expected


# --- the parser a model was trained with ------------------------------------------------------------


def test_parser_sha256_unit(tmp_path):
    from deepcolor.features import load_parser
    from deepcolor.features.parsers import parser_sha256

    assert parser_sha256() == load_parser().sha256  # the bundled parser: its weights' sha256
    assert parser_sha256(str(MODELS / "parser-v1")) == load_parser(str(MODELS / "parser-v1")).sha256
    fake = tmp_path / "parser.tflite"
    fake.write_bytes(b"not a model")
    assert parser_sha256(str(fake)) == hashlib.sha256(b"not a model").hexdigest()
    assert parser_sha256(str(tmp_path / "missing")) is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / MANIFEST).write_text("{")
    assert parser_sha256(str(tmp_path / "broken")) is None


def test_model_records_its_parser(tmp_path):
    pytest.importorskip("torch")
    from deepcolor.ensemble import Model
    from deepcolor.features.parsers import parser_sha256

    Model.load(MODELS / "default").save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    assert manifest["parser_sha256"] == parser_sha256("default")
    assert Model.load(tmp_path / "m").networks


def test_model_exception_other_parser(tmp_path, monkeypatch):
    # The same parser name, other weights (a rebuilt `make parser`): refused before colorizing with
    # features the networks never saw, by the torch-free check too.
    pytest.importorskip("torch")
    from deepcolor import modelcheck
    from deepcolor.ensemble import Model

    Model.load(MODELS / "default").save(tmp_path / "m")
    monkeypatch.setattr(modelcheck, "parser_sha256", lambda spec: "f" * 64)
    for load in (Model.load, modelcheck.verify_model):
        with pytest.raises(ModelError, match=r"trained with the scene parser sha256 [0-9a-f]{12}\.\.\., but .* is "
                                             r"ffffffffffff\.\.\.: its semantic features would differ"):
            load(tmp_path / "m")
