"""Tests for the stages' settings (deepcolor.config, deepcolor.settings, each stage's config).

Validation, dict and TOML round trips, the extraction key, the shared validators.
"""

import ast
import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deepcolor.config
from deepcolor.clustering.config import ClusterConfig
from deepcolor.config import (check_bool, check_int, check_non_negative_float, check_one_of, check_positive_float,
                              check_positive_int)
from deepcolor.features.config import FeatureConfig
from deepcolor.networks_config import TrainConfig
from deepcolor.refine.config import RefineConfig
from deepcolor.settings import CONFIG_SECTIONS, load_settings
from deepcolor.ensemble import ModelError


# --- defaults ----------------------------------------------------------------


def test_feature_config_defaults_valid():
    cfg = FeatureConfig()
    assert cfg.features == ("patch", "daisy", "semantic")  # the paper's three levels (issue 16)
    # 7x7 patch (49) + DAISY (1 ring * 3 histograms + 1) * 8 orientations (32) + the bundled parser's
    # 12 colour classes: Cheng et al. 2015, Sec. 3.1
    assert cfg.dim == 49 + 32 + 12
    assert cfg.replace(semantic_groups="coarse").dim == 49 + 32 + 8
    assert cfg.replace(features=("patch", "daisy")).dim == 49 + 32
    assert cfg.params()["patch_size"] == 7


def test_train_and_refine_config_defaults_valid():
    assert TrainConfig().n_hidden_layers == 3  # paper: three hidden layers
    assert 0 < TrainConfig().val_fraction < 0.9
    assert RefineConfig().enabled is True


def test_feature_config_dim_follows_settings():
    cfg = FeatureConfig(features=("patch",), patch_size=5)
    assert cfg.dim == 25
    cfg = FeatureConfig(features=("daisy",), daisy_rings=2, daisy_histograms=4, daisy_orientations=6)
    assert cfg.dim == (2 * 4 + 1) * 6


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FeatureConfig().working_size = 32


# --- validation --------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"working_size": 8}, "working_size must be at least 16, got 8"),
        ({"working_size": 0}, "working_size must be a positive int, got 0"),
        ({"working_size": 64.0}, "working_size must be a positive int, got 64.0"),
        ({"working_size": True}, "working_size must be a positive int, got True"),
        ({"patch_size": 6}, "patch_size must be a positive odd int, got 6"),
        ({"patch_size": -3}, "patch_size must be a positive int, got -3"),
        ({"daisy_radius": 0}, "daisy_radius must be a positive int, got 0"),
        ({"pixels_per_image": 0}, "pixels_per_image must be a positive int, got 0"),
        ({"features": ("patch", "colour")}, "unknown feature(s) ['colour']; known: ['daisy', 'patch', 'semantic']"),
        ({"semantic_parser": ""}, "semantic_parser must be 'default' or a path, got ''"),
        ({"semantic_parser": None}, "semantic_parser must be 'default' or a path, got None"),
        ({"semantic_smoothing": "bilateral"}, "semantic_smoothing must be one of ('guided', 'none'), got 'bilateral'"),
        ({"semantic_groups": "fine"}, "semantic_groups must be one of ['coarse', 'landscape', 'parser'], got 'fine'"),
        ({"semantic_radius": 0}, "semantic_radius must be a positive int, got 0"),
        ({"semantic_eps": 0.0}, "semantic_eps must be a positive finite number, got 0.0"),
        ({"features": ()}, "features must name at least one feature"),
        ({"daisy_backend": "vlfeat"}, "daisy_backend must be one of ('skimage', 'opencv'), got 'vlfeat'"),
        ({"min_chroma_spread": -0.01}, "min_chroma_spread must be a finite number >= 0, got -0.01"),
        ({"min_chroma_spread": "0.02"}, "min_chroma_spread must be a finite number >= 0, got '0.02'"),
        ({"seed": 1.5}, "seed must be an int, got 1.5"),
    ],
)
def test_feature_config_exception(kwargs, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        FeatureConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden": 0}, "hidden must be a positive int, got 0"),
        ({"n_hidden_layers": 2.0}, "n_hidden_layers must be a positive int, got 2.0"),
        ({"batch_size": -1}, "batch_size must be a positive int, got -1"),
        ({"max_epochs": 0}, "max_epochs must be a positive int, got 0"),
        ({"patience": 0}, "patience must be a positive int, got 0"),
        ({"lr": 0}, "lr must be a positive finite number, got 0"),
        ({"lr": -1e-3}, "lr must be a positive finite number, got -0.001"),
        ({"lr": math.nan}, "lr must be a positive finite number, got nan"),
        ({"lr": "1e-3"}, "lr must be a positive finite number, got '1e-3'"),
        ({"weight_decay": -0.1}, "weight_decay must be a finite number >= 0, got -0.1"),
        ({"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
        ({"dropout": -0.5}, "dropout must be in [0, 1), got -0.5"),
        ({"image_weighting": "mse"}, "image_weighting must be 'uniform' or 'psnr', got 'mse'"),
        ({"semantic_dropout": 1.0}, "semantic_dropout must be in [0, 1), got 1.0"),
        ({"semantic_dropout": True}, "semantic_dropout must be in [0, 1), got True"),
        ({"val_fraction": 0}, "val_fraction must be in (0, 0.9), got 0"),
        ({"val_fraction": 0.9}, "val_fraction must be in (0, 0.9), got 0.9"),
        ({"val_fraction": 1.5}, "val_fraction must be in (0, 0.9), got 1.5"),
        ({"val_fraction": -0.1}, "val_fraction must be in (0, 0.9), got -0.1"),
        ({"seed": "0"}, "seed must be an int, got '0'"),
    ],
)
def test_train_config_exception(kwargs, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"diameter": 0}, "diameter must be a positive int, got 0"),
        ({"diameter": 9.0}, "diameter must be a positive int, got 9.0"),
        ({"sigma_color": 0}, "sigma_color must be a positive finite number, got 0"),
        ({"sigma_color": -0.1}, "sigma_color must be a positive finite number, got -0.1"),
        ({"sigma_space": 0.0}, "sigma_space must be a positive finite number, got 0.0"),
        ({"enabled": "yes"}, "enabled must be a bool, got 'yes'"),
    ],
)
def test_refine_config_exception(kwargs, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        RefineConfig(**kwargs)


@pytest.mark.parametrize("diameter", [1, 2])
def test_refine_config_exception_diameter_below_refine_minimum(diameter):
    with pytest.raises(ValueError, match="diameter"):
        RefineConfig(diameter=diameter)


@pytest.mark.parametrize("name", ["sigma_color", "sigma_space"])
def test_refine_config_exception_infinite_sigma(name):
    with pytest.raises(ValueError, match=name):
        RefineConfig(**{name: math.inf})


def test_feature_config_exception_repeated_feature():
    with pytest.raises(ValueError, match="repeat"):
        FeatureConfig(features=("patch", "patch"))


def test_feature_config_exception_features_string():
    with pytest.raises(ValueError, match=r"features must be a (list|sequence)"):
        FeatureConfig(features="patch")


@pytest.mark.parametrize("cls, name", [(FeatureConfig, "min_chroma_spread"), (TrainConfig, "weight_decay")])
def test_config_exception_nan(cls, name):
    with pytest.raises(ValueError, match=name):
        cls(**{name: math.nan})


def test_replace_validates():
    with pytest.raises(ValueError, match=re.escape("working_size must be at least 16, got 8")):
        FeatureConfig().replace(working_size=8)


def test_replace_ignores_none():
    cfg = FeatureConfig(working_size=48)
    assert cfg.replace(working_size=None, seed=3) == FeatureConfig(working_size=48, seed=3)


# --- dict round trip ---------------------------------------------------------

NON_DEFAULT = {
    FeatureConfig: FeatureConfig(features=("daisy", "patch"), working_size=33, patch_size=5,
                                 daisy_radius=3, daisy_backend="opencv", pixels_per_image=17,
                                 min_chroma_spread=0.5, seed=9),
    TrainConfig: TrainConfig(hidden=7, n_hidden_layers=2, dropout=0.25, lr=0.25, weight_decay=1e-4, batch_size=3,
                             max_epochs=2, patience=1, val_fraction=0.5, seed=4),
    RefineConfig: RefineConfig(enabled=False, diameter=5, sigma_color=0.3, sigma_space=1.5),
}


@pytest.mark.parametrize("cls", [FeatureConfig, TrainConfig, RefineConfig])
def test_config_roundtrip(cls):
    cfg = NON_DEFAULT[cls]
    assert cfg != cls()
    data = json.loads(json.dumps(cfg.to_dict()))  # as stored in every artifact
    assert cls.from_dict(data) == cfg


def test_feature_config_to_dict_lists():
    data = FeatureConfig().to_dict()
    assert data["features"] == ["patch", "daisy", "semantic"]
    assert FeatureConfig.from_dict(data).features == ("patch", "daisy", "semantic")


@pytest.mark.parametrize("cls", [FeatureConfig, TrainConfig, RefineConfig])
def test_config_from_dict_partial_uses_defaults(cls):
    assert cls.from_dict({}) == cls()


@pytest.mark.parametrize("cls", [FeatureConfig, TrainConfig, RefineConfig])
def test_config_from_dict_exception_unknown_key(cls):
    match = f"unknown {cls.__name__} setting(s) ['bogus', 'zeta']; known: "
    with pytest.raises(ValueError, match=re.escape(match)):
        cls.from_dict({"zeta": 1, "bogus": 2})


def test_config_from_dict_exception_bad_value():
    with pytest.raises(ValueError, match=re.escape("patch_size must be a positive odd int, got 4")):
        FeatureConfig.from_dict({"patch_size": 4})


# --- TOML --------------------------------------------------------------------


def _toml(tmp_path, text, name="settings.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_toml_unit(tmp_path):
    path = _toml(tmp_path, """
[features]
features = ["patch"]
working_size = 40
daisy_backend = "opencv"

[train]
lr = 0.01
max_epochs = 3
""")
    cfgs = load_settings(path)
    assert set(cfgs) == set(CONFIG_SECTIONS) == {"features", "train", "refine", "clusters"}
    assert cfgs["features"] == FeatureConfig(features=("patch",), working_size=40, daisy_backend="opencv")
    assert cfgs["train"] == TrainConfig(lr=0.01, max_epochs=3)
    assert cfgs["refine"] == RefineConfig()  # section left out: defaults


def test_load_toml_empty_file_gives_defaults(tmp_path):
    cfgs = load_settings(_toml(tmp_path, ""))
    assert cfgs == {"features": FeatureConfig(), "train": TrainConfig(), "refine": RefineConfig(),
                    "clusters": ClusterConfig()}


@pytest.mark.parametrize(
    "text, match",
    [
        ("[training]\nlr = 0.1\n", "unknown section(s) ['training']; known: ['clusters', 'features', 'refine', 'train']"),
        ("[features]\npatch_size = 4\n", "patch_size must be a positive odd int, got 4"),
        ("[train]\nval_fraction = 1.0\n", "val_fraction must be in (0, 0.9), got 1.0"),
        ("[refine]\nsigma = 1.0\n", "unknown RefineConfig setting(s) ['sigma']"),
        ("[features]\nworking_size = 32.5\n", "working_size must be a positive int, got 32.5"),
        ("[features\nworking_size = 32\n", "not valid TOML"),
        ("[train]\nlr = \n", "not valid TOML"),
    ],
)
def test_load_toml_exception(tmp_path, text, match):
    path = _toml(tmp_path, text)
    with pytest.raises(ValueError, match=re.escape(f"{path}: ") + ".*" + re.escape(match)):
        load_settings(path)


# --- extraction key ----------------------------------------------------------

BASE_FEATURES = ("patch", "daisy")  # the semantic settings count even without the feature

CHANGED = {
    "features": ("patch",),
    "working_size": 128,
    "patch_size": 5,
    "daisy_radius": 4,
    "daisy_rings": 2,
    "daisy_histograms": 4,
    "daisy_orientations": 6,
    "daisy_backend": "opencv",
    "daisy_normalization": "off",
    "pixels_per_image": 100,
    "min_chroma_spread": 0.05,
    "semantic_parser": "TINY_PARSER",  # replaced by the tiny_parser_dir fixture: the key loads it
    "semantic_smoothing": "none",
    "semantic_groups": "coarse",
    "histogram_groups": "coarse",
    "semantic_radius": 4,
    "semantic_eps": 1e-3,
    "seed": 1,
}


def test_extraction_key_covers_every_setting():
    assert set(CHANGED) == {f.name for f in dataclasses.fields(FeatureConfig)}


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_extraction_key_changes_with_setting(name, tiny_parser_dir):
    base = FeatureConfig(features=BASE_FEATURES)
    value = str(tiny_parser_dir) if CHANGED[name] == "TINY_PARSER" else CHANGED[name]
    assert getattr(base, name) != value
    assert base.replace(**{name: value}).extraction_key() != base.extraction_key()


def test_extraction_key_exception_missing_parser(tmp_path):
    # the key holds the parser's checksum: every shard holds its histogram and semantic descriptor
    with pytest.raises(ModelError, match=re.escape(f"{tmp_path / 'nowhere'}: no such parser directory")):
        FeatureConfig(semantic_parser=str(tmp_path / "nowhere")).extraction_key()


def test_extraction_key_steady():
    key = FeatureConfig(working_size=48).extraction_key()
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert FeatureConfig(working_size=48).extraction_key() == key
    assert FeatureConfig.from_dict(FeatureConfig(working_size=48).to_dict()).extraction_key() == key


# --- the generic module ------------------------------------------------------


def test_config_module_imports_no_stage():
    # deepcolor.config is what every stage builds on: it imports the standard library only.
    tree = ast.parse(Path(deepcolor.config.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "." for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"dataclasses", "math", "numbers", "tomllib"}


def test_settings_import_no_torch():
    # Reading a settings file (and `deepcolor --help`) does not load torch or scikit-learn.
    code = "import sys, deepcolor.settings; print('torch' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("check, value, match", [
    (check_positive_int, np.int64(3), r"n must be a positive int, got np\.int64\(3\)|n must be a positive int, got 3"),
    (check_positive_float, np.float32(0.5), r"n must be a positive finite number, got"),
    (check_non_negative_float, np.float32(0.5), r"n must be a finite number >= 0, got"),
])
def test_validators_numpy_scalars_only_when_asked(check, value, match):
    # A stored setting must be plain Python (JSON); array functions also take NumPy scalars.
    with pytest.raises(ValueError, match=match):
        check("n", value)
    assert check("n", value, numpy=True) == value


@pytest.mark.parametrize("check, args, match", [
    (check_positive_int, ("n", True), r"n must be a positive int, got True"),
    (check_positive_int, ("n", 0), r"n must be a positive int, got 0"),
    (check_int, ("d", 2, 3), r"d must be an int >= 3, got 2"),
    (check_int, ("d", 3.0, 3), r"d must be an int >= 3, got 3\.0"),
    (check_positive_float, ("s", math.nan), r"s must be a positive finite number, got nan"),
    (check_positive_float, ("s", 0), r"s must be a positive finite number, got 0"),
    (check_non_negative_float, ("s", -1e-9), r"s must be a finite number >= 0, got -1e-09"),
    (check_one_of, ("k", "x", ("a", "b")), r"k must be one of \('a', 'b'\), got 'x'"),
    (check_bool, ("b", 1), r"b must be a bool, got 1"),
])
def test_validators_exception(check, args, match):
    with pytest.raises(ValueError, match=match):
        check(*args)


def test_feature_names_match_the_registry():
    from deepcolor.features import FEATURES
    from deepcolor.features.config import FEATURE_NAMES

    assert tuple(FEATURES) == FEATURE_NAMES


@pytest.mark.parametrize("features", [("patch",), ("daisy",), ("patch", "daisy"), ("patch", "daisy", "semantic")])
def test_feature_config_dim_equals_the_registry(features):
    from deepcolor.features import feature_dim

    cfg = FeatureConfig(features=features, patch_size=5, daisy_rings=2, daisy_histograms=4)
    assert cfg.dim == feature_dim(cfg.features, cfg.params())
