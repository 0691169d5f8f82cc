"""`deepcolor features`: training samples from a folder of colour reference photos.

Each reference is brought to the working size, converted to BT.601 YUV, and
`pixels_per_image` pixels are sampled with a seed derived from the image's
content; their features (from Y) and true chrominance (U, V) are written as
one shard per image, with the image's global descriptors and semantic
histogram (from Y; `deepcolor.clustering.image_descriptors`) for the
clustering. A manifest lists every reference with its status, so a
rerun skips images whose content and feature settings are unchanged.
"""

import hashlib
import io
import json
import logging
import time
import zipfile
from pathlib import Path

import numpy as np

from deepcolor import __version__
from deepcolor.clustering import image_descriptors
from deepcolor.color import rgb_to_yuv, to_float
from deepcolor.features.config import FeatureConfig
from deepcolor.features import compute_features, load_parser
from deepcolor.features.parsers import parser_runtime
from deepcolor.files import atomic_write_bytes, atomic_write_text
from deepcolor.images.formats import find_images
from deepcolor.images.picture import ImageError
from deepcolor.images.read import read_image
from deepcolor.parallel import run
from deepcolor.progress import progress_bar
from deepcolor.resize import resize_to, working_shape

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "deepcolor-features"
FORMAT_VERSION = 2  # 2: shards hold the global descriptors


def file_sha256(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def reference_yuv(image, working_size):
    """YUV float32 (h, w, 3) of an RGB reference at the working size.

    Raises ValueError for a grey image: a reference must be in colour.
    """
    if image.ndim == 2:
        raise ValueError("grey image, a reference must be in colour")
    rgb = resize_to(to_float(image), working_shape(image.shape, working_size))
    return rgb_to_yuv(rgb)


def chroma_spread(uv):
    """RMS distance of an image's (U, V) from its mean chroma: 0 for grey and for a uniform tint."""
    uv = uv.reshape(-1, 2)
    return float(np.sqrt(((uv - uv.mean(axis=0)) ** 2).sum(axis=1).mean()))


def extract_samples(yuv, cfg, rng):
    """Sample pixels of one reference: features (n, D) and chrominance (n, 2), float32."""
    y, uv = yuv[..., 0], yuv[..., 1:]
    feats = compute_features(np.clip(y, 0.0, 1.0), cfg.features, cfg.params())  # (h, w, D)
    n_pix = y.size
    n = min(cfg.pixels_per_image, n_pix)
    idx = rng.choice(n_pix, size=n, replace=False)
    return feats.reshape(n_pix, -1)[idx], uv.reshape(n_pix, 2)[idx].astype(np.float32)


def _shard_name(sha, cfg):
    return f"{sha[:24]}-{cfg.extraction_key()}.npz"


def _process(path, sha, out_dir, cfg):
    """Extract one reference; returns its manifest entry (never raises for a bad image).

    The scene parser runs in torch here (`deepcolor.features.parsers.parser_runtime`).
    """
    with parser_runtime("torch"):
        return _extract(path, sha, out_dir, cfg)


def _extract(path, sha, out_dir, cfg):
    entry = {"source": str(path), "sha256": sha}
    try:
        image = read_image(path)
        if image.ndim == 2:  # a grey file: skipped as a near-grey one is, not a failure
            entry.update(status="near-grey", chroma_spread=0.0)
            return entry
        yuv = reference_yuv(image, cfg.working_size)
        spread = chroma_spread(yuv[..., 1:])
        entry["chroma_spread"] = round(spread, 5)
        if spread < cfg.min_chroma_spread:
            entry["status"] = "near-grey"
            return entry
        seed = [cfg.seed, int(sha[:15], 16)]  # per image, independent of order and workers
        x, uv = extract_samples(yuv, cfg, np.random.default_rng(seed))
        desc = image_descriptors(np.clip(yuv[..., 0], 0.0, 1.0),
                                 load_parser(cfg.semantic_parser, cfg.histogram_groups))
        buf = io.BytesIO()
        np.savez(buf, x=x, uv=uv, **desc)
        name = _shard_name(sha, cfg)
        atomic_write_bytes(Path(out_dir) / "shards" / name, buf.getvalue())
        entry.update(status="ok", shard=f"shards/{name}", n_pixels=int(len(x)),
                     size=list(yuv.shape[:2]))
    except (ImageError, ValueError) as exc:
        entry.update(status="failed", error=str(exc) if isinstance(exc, ImageError) else f"{path}: {exc}")
    return entry


def load_manifest(features_dir):
    """Read a features manifest; raises ValueError naming the file if it is missing or malformed."""
    path = Path(features_dir) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no features manifest here; run 'deepcolor features' first") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable features manifest ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a deepcolor features manifest (a JSON {type(data).__name__})")
    if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: not a deepcolor features manifest of format version {FORMAT_VERSION} "
            f"(format={data.get('format')!r}, version={data.get('format_version')!r})"
        )
    if not isinstance(data.get("images"), list):
        raise ValueError(f"{path}: features manifest without a list of images")
    return data


def extract_folder(ref_dirs, out_dir, cfg=None, jobs=1, quiet=False):
    """Extract training samples from every image under `ref_dirs` into `out_dir`.

    Returns the manifest dict. References whose content hash and feature
    settings match an existing shard are not processed again.
    """
    cfg = cfg or FeatureConfig()
    out_dir = Path(out_dir)
    paths = []
    for ref in ref_dirs:
        found = find_images(ref)  # raises ImageError for a missing folder
        if not found:
            log.warning("%s: no image files found", ref)
        paths += found
    if not paths:
        raise ValueError(f"no reference images found in {', '.join(map(str, ref_dirs))}")

    previous = {}
    if (out_dir / MANIFEST).exists():
        try:
            old = load_manifest(out_dir)
            if old["feature_config"] == cfg.to_dict():
                previous = {e["sha256"]: e for e in old["images"] if e["status"] in ("ok", "near-grey")}
        except ValueError as exc:
            log.warning("%s; starting afresh", exc)

    start = time.perf_counter()
    entries, todo, seen = [], [], {}
    for path in paths:
        try:
            sha = file_sha256(path)
        except OSError as exc:
            entries.append({"source": str(path), "status": "failed",
                            "error": f"{path}: cannot read ({exc.strerror})"})
            continue
        if sha in seen:
            entries.append({"source": str(path), "sha256": sha, "status": "duplicate",
                            "duplicate_of": seen[sha]})
            continue
        seen[sha] = str(path)
        old = previous.get(sha)
        if old and (old["status"] == "near-grey" or (out_dir / old["shard"]).exists()):
            entries.append({**old, "source": str(path), "reused": True})
        else:
            todo.append((path, sha))

    bar = progress_bar(total=len(todo), desc="features", unit="img", quiet=quiet)
    results = run(_process, ((path, sha, out_dir, cfg) for path, sha in todo), jobs, ordered=False)
    for entry in results:
        bar.update(1)
        if entry["status"] == "failed":
            log.error("%s", entry["error"])
        elif entry["status"] == "near-grey":
            log.info("%s: skipped, near-grey reference (chroma spread %.4f < %.4f)",
                     entry["source"], entry["chroma_spread"], cfg.min_chroma_spread)
        entries.append(entry)
    bar.close()
    entries.sort(key=lambda e: e["source"])

    counts = {}
    for e in entries:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "deepcolor_version": __version__,
        "feature_config": cfg.to_dict(),
        "feature_dim": cfg.dim,
        "counts": counts,
        "reused": sum(1 for e in entries if e.get("reused")),
        "seconds": round(time.perf_counter() - start, 3),
        "images": entries,
    }
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def read_shard(path, keys=("x", "uv")):
    """The arrays `keys` of one shard, as a tuple; ValueError naming the file if it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return tuple(data[k] for k in keys)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: unreadable feature shard ({exc}); rerun 'deepcolor features'") from None


def ok_entries(manifest):
    """The manifest entries of the references that have a shard, in manifest order."""
    return [e for e in manifest["images"] if e["status"] == "ok"]


def load_shards(features_dir, manifest=None, keys=("x", "uv")):
    """Load every ok shard: list of (source, *arrays) in manifest order, arrays as named by `keys`."""
    features_dir = Path(features_dir)
    manifest = manifest or load_manifest(features_dir)
    return [(e["source"], *read_shard(features_dir / e["shard"], keys)) for e in ok_entries(manifest)]


