"""A deepcolor model directory checked without torch: its files, settings and the weights' layout.

`deepcolor colorize --jobs N` checks the model here before its workers load it
(`deepcolor.ensemble.Model.load`), so a broken model stops the command with one
message and the main process never imports torch. The files themselves are
read, and their checksums verified, by `deepcolor.modelfiles.read_verified`.
"""

from pathlib import Path

from deepcolor.clustering.config import ClusterConfig
from deepcolor.features.config import FeatureConfig
from deepcolor.networks_config import TrainConfig
from deepcolor.refine.config import RefineConfig
from deepcolor.features.parsers import default_parser_dir, parser_sha256
from deepcolor.modelfiles import MANIFEST, ModelError, check_safetensors, check_settings_sha, read_verified

FORMAT = "deepcolor-model"
FORMAT_VERSION = 2  # 2: clusters of the ensemble


# Settings a model may carry, checked when it is loaded: beyond these a corrupt or
# edited manifest would make colorizing crawl or exhaust memory (a refinement
# window of 4001 px on a 256 px image), so it is refused as corrupt.
SETTING_LIMITS = {
    ("feature_config", "working_size"): 4096,
    ("feature_config", "patch_size"): 31,
    ("feature_config", "daisy_radius"): 64,
    ("refine_config", "diameter"): 99,
    ("refine_config", "sigma_space"): 1000.0,
    ("refine_config", "sigma_color"): 1000.0,
}
MAX_NETWORKS = 4096
MAX_HIDDEN = 8192
MAX_HIDDEN_LAYERS = 16


def check_settings(manifest, mpath):
    """Refuse settings a model cannot run with: bad configs, absurd sizes, a missing parser.

    Torch-free, so `deepcolor colorize --jobs N` runs it before any worker starts.

    Raises
    ------
    ModelError
        Naming the manifest and the setting.
    """
    try:
        fcfg = FeatureConfig.from_dict(manifest["feature_config"])
        TrainConfig.from_dict(manifest["train_config"])
        RefineConfig.from_dict(manifest["refine_config"])
        nets = manifest["networks"]
        if not isinstance(nets, list) or not 1 <= len(nets) <= MAX_NETWORKS:
            raise ValueError(f"networks must be a list of 1 to {MAX_NETWORKS}")
        for spec in nets:
            for key, top in (("in_dim", 100_000), ("hidden", MAX_HIDDEN), ("n_hidden_layers", MAX_HIDDEN_LAYERS)):
                v = spec[key]
                if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= top:
                    raise ValueError(f"network {key} must be an int in 1..{top}, got {v!r}")
            for key in ("weights", "normalisation"):
                if spec[key] not in manifest["files"]:
                    raise ValueError(f"network file {spec[key]!r} is not in the table of files and checksums")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{mpath}: inconsistent model settings ({type(exc).__name__}: {exc})") from None
    if "clusters" in manifest:
        try:
            ClusterConfig.from_dict(manifest["cluster_config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{mpath}: inconsistent cluster table ({type(exc).__name__}: {exc})") from None
    for (section, key), top in SETTING_LIMITS.items():
        value = manifest[section].get(key)
        if isinstance(value, (int, float)) and value > top:
            raise ModelError(f"{mpath}: {section} {key}={value!r} is beyond what a model may hold "
                             f"(at most {top}); the model is corrupt or was edited")
    uses_parser = "semantic" in fcfg.features or "clusters" in manifest
    if uses_parser:
        _check_parser(fcfg.semantic_parser, mpath, manifest.get("parser_sha256"))


def _check_parser(spec, mpath, expected_sha=None):
    """Refuse a model whose named scene parser cannot be found, or is not the one it was trained with.

    Without loading the parser: `expected_sha` (the model's ``parser_sha256``;
    models before it was recorded have none) against `parser_sha256`. Another
    parser at the same name, a rebuilt `make parser` say, gives other class
    probabilities, and the networks would colour by features they never saw.
    """
    path = default_parser_dir() if spec == "default" else Path(spec)
    if spec == "default" and not (path / MANIFEST).is_file():
        raise ModelError(f"{mpath}: the model needs the bundled parser ({path}), which is missing from this "
                         f"installation; rebuild it with `make parser` or retrain the model")
    if path.suffix == ".tflite" and not path.is_file():
        raise ModelError(f"{path}: no such parser file (the model {mpath} names it)")
    if path.suffix != ".tflite" and not path.is_dir():
        raise ModelError(f"{path}: no such parser directory")
    if path.suffix != ".tflite" and not (path / MANIFEST).is_file():
        raise ModelError(f"{path / MANIFEST}: missing; {path} is not a parser directory (the model {mpath} names it)")
    actual = parser_sha256(spec)
    if expected_sha is not None and actual is not None and actual != expected_sha:
        raise ModelError(f"{mpath}: the model was trained with the scene parser sha256 {expected_sha[:12]}..., but "
                         f"{path} is {actual[:12]}...: its semantic features would differ from the ones the model "
                         f"learnt; install the parser it was trained with, or retrain it with this one")


def verify_model(model_dir, settings_checksum=True):
    """Check a deepcolor model directory without torch: files, checksums, settings, weights' layout.

    Returns
    -------
    manifest : dict
    blobs : dict of file name -> bytes

    Raises
    ------
    ModelError
        Naming the file and the problem.
    """
    model_dir = Path(model_dir)
    manifest, blobs = read_verified(model_dir, FORMAT, FORMAT_VERSION, "model")
    check_settings(manifest, model_dir / MANIFEST)
    for spec in manifest["networks"]:
        check_safetensors(model_dir / spec["weights"], blobs[spec["weights"]])
    if settings_checksum:
        check_settings_sha(manifest, model_dir / MANIFEST)
    return manifest, blobs
