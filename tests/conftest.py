"""Shared test settings: one tolerance table and a seeded random generator.

With ``--import-mode=importlib`` (setup.cfg) test modules cannot import this file,
so both are served as fixtures.
"""

import logging

import numpy as np
import pytest

# Tolerances for ``np.testing.assert_allclose``, by the dtype of the computation under
# test: float32 for anything that runs in float32 (OpenCV, our float32 outputs), float64
# for numpy float64 arithmetic.
TOLERANCES = {
    np.float32: {"rtol": 1e-5, "atol": 1e-6},
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
}


@pytest.fixture
def tol():
    """``tol(dtype)`` -> keyword tolerances for ``np.testing.assert_allclose``."""
    return lambda dtype: TOLERANCES[np.dtype(dtype).type]


@pytest.fixture
def rng():
    """A fresh seeded generator per test, so results do not depend on test order."""
    return np.random.default_rng(20150101)


# =============================================================================
# Shared by test_pipeline.py and test_cli.py: tiny synthetic scenes, tiny
# settings and one tiny trained model. (Added with those files; the block
# above belongs to the colour/feature/io tests.)
# =============================================================================

# Odd, non-square (rows, cols) of the training references: a swapped axis shows.
TINY_SIZES = [(40, 33), (37, 45), (41, 39), (35, 43), (43, 37), (39, 47)]


def _tiny_scene(h, w, seed):
    """uint8 RGB (h, w, 3): two regions whose colour follows their luminance and texture.

    Left of a seeded vertical split: bright (Y 0.60..0.76), horizontal ripples,
    reddish (U -0.10, V 0.20). Right of it: dark (Y 0.24..0.40), vertical
    ripples, bluish (U 0.15, V -0.08). Both colours are inside the RGB gamut,
    so the truth's chrominance is exactly the intended one up to 8-bit rounding;
    a network that sees the luminance patch can learn the colour.
    """
    from deepcolor.color import yuv_to_rgb

    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    left = cols < rng.uniform(0.35, 0.65) * w
    phase = rng.uniform(0.0, 2.0 * np.pi)
    y = np.where(left, 0.68 + 0.08 * np.sin(rows / 2.5 + phase), 0.32 + 0.08 * np.sin(cols / 2.5 + phase))
    u = np.where(left, -0.10, 0.15)
    v = np.where(left, 0.20, -0.08)
    rgb = yuv_to_rgb(np.stack([y, u, v], axis=-1))  # (h, w, 3) float64
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_scene():
    """``tiny_scene(h, w, seed)`` -> uint8 RGB (h, w, 3); see `_tiny_scene`."""
    return _tiny_scene


def _write_tiny_refs(folder, seeds=range(len(TINY_SIZES)), suffix=".png"):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        h, w = TINY_SIZES[seed % len(TINY_SIZES)]
        paths.append(folder / f"r{seed}{suffix}")
        Image.fromarray(_tiny_scene(h, w, seed)).save(paths[-1])
    return paths


@pytest.fixture(scope="session")
def tiny_refs():
    """``tiny_refs(folder, seeds=range(6), suffix='.png')`` writes scene ``seed`` as ``r{seed}{suffix}``.

    Scene sizes cycle through `TINY_SIZES`; returns the paths written.
    """
    return _write_tiny_refs


@pytest.fixture(scope="session")
def tiny_configs():
    """Small settings: features at most 32 px wide, a network that learns in a fraction of a second."""
    from deepcolor.clustering.config import ClusterConfig
    from deepcolor.features.config import FeatureConfig
    from deepcolor.networks_config import TrainConfig
    from deepcolor.refine.config import RefineConfig

    return {
        # patch + DAISY; a test that adds "semantic" with `tiny_parser_dir` keeps its 3 classes
        "features": FeatureConfig(features=("patch", "daisy"), working_size=32, daisy_radius=3,
                                  pixels_per_image=200, semantic_groups="parser"),
        "train": TrainConfig(hidden=16, lr=1e-2, batch_size=128, max_epochs=20, patience=4,
                             val_fraction=0.3),
        "refine": RefineConfig(),
        # two top-layer clusters of at least 2 of the 6 tiny references
        "clusters": ClusterConfig(n_clusters=2, mu=2),
    }


@pytest.fixture
def torch_one_thread():
    """One torch thread for the test: tiny batches run ~10x slower with 2 threads on 2 cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_features_dir(tmp_path_factory, tiny_configs):
    """Features of the six `TINY_SIZES` scenes (seeds 0..5) under `tiny_configs`. Read-only."""
    from deepcolor.extract import extract_folder

    root = tmp_path_factory.mktemp("tiny_features")
    _write_tiny_refs(root / "refs")
    extract_folder([root / "refs"], root / "features", tiny_configs["features"], quiet=True)
    return root / "features"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_configs, tiny_features_dir):
    """A model trained on `tiny_features_dir` with `tiny_configs`. Read-only: copy it to change it."""
    import torch

    from deepcolor.train import train_model

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train_model(tiny_features_dir, tiny_configs["train"], tiny_configs["refine"], quiet=True)
    finally:
        torch.set_num_threads(before)
    model_dir = tmp_path_factory.mktemp("tiny_model") / "model"
    model.save(model_dir)
    return model_dir


@pytest.fixture(scope="session")
def tiny_parser_dir(tmp_path_factory):
    """A saved untrained student parser: width 4, input 32 px, classes ("dark", "bright", "other"). Read-only."""
    import torch

    from deepcolor.features.greyparser import StudentParser, _student_module

    torch.manual_seed(0)
    parser = StudentParser(_student_module(3, width=4), ("dark", "bright", "other"), input_size=32)
    path = tmp_path_factory.mktemp("tiny_parser") / "parser"
    parser.save(path)
    return path


@pytest.fixture
def run(capsys):
    """``run(*argv)`` -> (return code, stdout, stderr) of ``deepcolor argv`` run in-process.

    `main` reconfigures the root logger (``basicConfig(force=True)``) onto the
    captured stderr; the root logger's handlers and level are put back after.
    """

    def _run(*argv):
        capsys.readouterr()
        root = logging.getLogger()
        before, level = list(root.handlers), root.level
        try:
            from deepcolor import cli

            rc = cli.main([str(a) for a in argv])
        finally:
            for h in root.handlers[:]:
                if h not in before:
                    root.removeHandler(h)
            for h in before:
                if h not in root.handlers:
                    root.addHandler(h)
            root.setLevel(level)
        out, err = capsys.readouterr()
        return rc, out, err

    return _run


def _toml_text(cfgs):
    import json

    lines = []
    for section, cfg in cfgs.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in cfg.to_dict().items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def config_toml(tmp_path, tiny_configs):
    """The tiny settings of `tiny_configs` as a TOML file (what a user passes with --config)."""
    path = tmp_path / "tiny.toml"
    path.write_text(_toml_text(tiny_configs))
    return path
