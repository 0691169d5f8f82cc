"""`deepcolor pick`: the references of a pool that are most like a set of target photos.

Cheng et al. (2015, 2016) colorize a photo with a network trained on
references like it: the ensemble clusters the references by a global
descriptor and picks a cluster per photo. `deepcolor pick` applies the same
likeness one step earlier, to choose the references themselves: given grey
target photos (an archive) and a pool of colour photos (folders of any
size), it ranks the pool by its distance to the targets and writes the N
nearest as a list and as a folder of symbolic links for ``deepcolor
features``.

Likeness is measured with the descriptors the clustering already computes
from an image's luminance (`deepcolor.clustering.image_descriptors`, at the
working size of `FeatureConfig`): the GIST-like descriptor (`gist`), the
semantic layout (`semantic`), their concatenation (`gist+semantic`) or the
semantic histogram (`histogram`). The default, and the way targets are
combined, were measured on Intel scenes training photos (docs/DESIGN.md,
"A personal model (issue 17)").

The pool's descriptors are cached per file content (sha256) and per
descriptor setting (working size, parser weights, class merge), so a
second pick from the same pool only hashes its files.
"""

import hashlib
import io
import json
import logging
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from deepcolor.clustering import combine, image_descriptors
from deepcolor.color import rgb_to_yuv, to_float
from deepcolor.extract import chroma_spread, file_sha256
from deepcolor.features import load_parser
from deepcolor.features.config import FeatureConfig
from deepcolor.files import atomic_write_bytes, atomic_write_text
from deepcolor.images.formats import find_images
from deepcolor.images.picture import ImageError
from deepcolor.images.read import read_image
from deepcolor.parallel import run
from deepcolor.progress import progress_bar
from deepcolor.resize import resize_to, working_shape

log = logging.getLogger(__name__)

PICK_DESCRIPTORS = ("gist", "semantic", "gist+semantic", "histogram")
# How the targets' distances to a pool photo are combined (docs/DESIGN.md):
# "nearest": its distance to the nearest target; "mean": to the targets' mean
# descriptor; "each": the targets take turns, each the nearest photo not yet taken.
PICK_RULES = ("nearest", "mean", "each")
DEFAULT_DESCRIPTOR = "gist+semantic"
DEFAULT_RULE = "mean"
CACHE_VERSION = 1
REFERENCES = "references"  # the folder of links in the pick's output folder
LIST = "picked.txt"
RECORD = "pick.json"
_CHUNK = 32  # images per worker task
_SAVE_EVERY = 2048  # newly described images between two writes of the cache


def default_cache_dir():
    """``$DEEPCOLOR_CACHE``, else ``$XDG_CACHE_HOME/deepcolor``, else ``~/.cache/deepcolor``."""
    if os.environ.get("DEEPCOLOR_CACHE"):
        return Path(os.environ["DEEPCOLOR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deepcolor"


def descriptor_key(cfg):
    """Hash of what a descriptor depends on: working size, parser weights, class merge, the chroma floor."""
    settings = {"version": CACHE_VERSION, "working_size": cfg.working_size,
                "parser_sha256": load_parser(cfg.semantic_parser, cfg.histogram_groups).sha256,
                "histogram_groups": cfg.histogram_groups}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def working_luma(image, working_size):
    """Luminance (rows, cols) float32 in [0, 1] at the working size, and the chroma spread.

    A colour image's luminance is BT.601 Y, as `deepcolor features` takes it
    from a reference; a grey image is its own luminance (spread 0).
    """
    shape = working_shape(image.shape, working_size)
    if image.ndim == 2:
        return np.clip(resize_to(to_float(image), shape), 0.0, 1.0), 0.0
    yuv = rgb_to_yuv(resize_to(to_float(image), shape))
    return np.clip(yuv[..., 0], 0.0, 1.0), chroma_spread(yuv[..., 1:])


def _describe(paths, cfg):
    """Worker task: (gist, semantic, histogram, spread) or an error string per path."""
    parser = load_parser(cfg.semantic_parser, cfg.histogram_groups)
    out = []
    for path in paths:
        try:
            y, spread = working_luma(read_image(path), cfg.working_size)
            d = image_descriptors(y, parser)
            out.append((d["gist"], d["semantic"], d["histogram"], spread))
        except (ImageError, ValueError, TypeError) as exc:
            out.append(str(exc) if isinstance(exc, ImageError) else f"{path}: {exc}")
    return out


def _file_sha(path):
    return file_sha256(path)


class DescriptorCache:
    """Descriptors by file content, for one descriptor setting, in one ``.npz`` file.

    Parameters
    ----------
    folder : str or Path or None
        The cache folder (created on save); None: no cache.
    key : str
        `descriptor_key` of the settings; the file is ``descriptors-KEY.npz``.
    """

    def __init__(self, folder, key):
        self.path = None if folder is None else Path(folder) / f"descriptors-{key}.npz"
        self.entries = {}
        self.added = self.saves = 0
        if self.path is not None and self.path.exists():
            try:
                with np.load(self.path, allow_pickle=False) as data:
                    arrays = [data[k] for k in ("sha256", "gist", "semantic", "histogram", "spread")]
                for sha, *record in zip(*arrays):
                    self.entries[str(sha)] = (*record[:3], float(record[3]))
            except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                log.warning("%s: unreadable descriptor cache (%s); computing afresh", self.path, exc)
                self.entries = {}

    def get(self, sha):
        return self.entries.get(sha)

    def put(self, sha, record):
        self.entries[sha] = record
        self.added += 1

    def save(self):
        """Write the cache (atomically) if anything was added."""
        if self.path is None or not self.added or not self.entries:
            return
        shas = sorted(self.entries)
        rec = [self.entries[s] for s in shas]
        buf = io.BytesIO()
        np.savez(buf, sha256=np.array(shas), gist=np.stack([r[0] for r in rec]),
                 semantic=np.stack([r[1] for r in rec]), histogram=np.stack([r[2] for r in rec]),
                 spread=np.array([r[3] for r in rec], np.float32))
        self.saves += 1
        try:
            atomic_write_bytes(self.path, buf.getvalue())
        except OSError as exc:
            log.warning("%s: cannot write the descriptor cache (%s)", self.path, exc.strerror or exc)


def describe_images(paths, cfg=None, cache_dir=None, jobs=1, quiet=False, desc="describe"):
    """Global descriptors of image files, from the cache where it has them.

    Parameters
    ----------
    paths : list of Path
    cfg : FeatureConfig, optional
        Working size, parser and class merge of the descriptors.
    cache_dir : str or Path, optional
        Descriptor cache folder (None: no cache).
    jobs : int
        Worker processes for the images not in the cache.

    Returns
    -------
    found : dict
        ``paths`` (list of Path), ``sha256`` (list of str), ``gist`` (n, 288),
        ``semantic`` (n, 5 K), ``histogram`` (n, K) float32 and ``spread`` (n,)
        for the images that could be read, in the order of `paths`;
        ``failed``: list of messages naming the files that could not.
    """
    cfg = cfg or FeatureConfig()
    cache = DescriptorCache(cache_dir, descriptor_key(cfg))
    shas, records, failed = [], [], []
    for path in paths:
        try:
            shas.append(_file_sha(path))
        except OSError as exc:
            shas.append(None)
            failed.append(f"{path}: cannot read ({exc.strerror or exc})")
        records.append(None)
    first = {}  # one computation per content: copies take their first one's record
    for i, s in enumerate(shas):
        if s is not None and cache.get(s) is None:
            first.setdefault(s, i)
    todo = sorted(first.values())
    if todo:
        bar = progress_bar(total=len(todo), desc=desc, unit="img", quiet=quiet)
        chunks = [todo[i:i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
        for chunk, results in zip(chunks, run(_describe, (([paths[i] for i in c], cfg) for c in chunks), jobs)):
            for i, res in zip(chunk, results):
                if isinstance(res, str):
                    failed.append(res)
                else:
                    records[i] = res
                    cache.put(shas[i], res)
            bar.update(len(chunk))
            if cache.added >= _SAVE_EVERY * (1 + cache.saves):  # a killed run keeps most of a large pool's work
                cache.save()
        bar.close()
        cache.save()
    for i, s in enumerate(shas):
        if s is not None and records[i] is None:
            records[i] = cache.get(s)  # cached before, or computed above for a first copy
    keep = [i for i, r in enumerate(records) if r is not None]
    empty = np.zeros((0,), np.float32)

    def stack(j):
        return np.stack([records[i][j] for i in keep]) if keep else empty

    return {"paths": [paths[i] for i in keep], "sha256": [shas[i] for i in keep],
            "gist": stack(0), "semantic": stack(1), "histogram": stack(2),
            "spread": np.array([records[i][3] for i in keep], np.float32),
            "failed": failed, "cached": sum(s is not None for s in shas) - len(todo)}


def descriptor_matrix(found, descriptor):
    """The rows compared by `descriptor` (one of `PICK_DESCRIPTORS`), float64 (n, D).

    Each is a vector whose Euclidean distance is the measure: the GIST-like
    descriptor has unit norm, the semantic layout and the square-rooted
    histogram are square roots of shares (Hellinger distance).
    """
    if descriptor not in PICK_DESCRIPTORS:
        raise ValueError(f"descriptor must be one of {PICK_DESCRIPTORS}, got {descriptor!r}")
    if descriptor == "histogram":
        return np.sqrt(np.maximum(np.asarray(found["histogram"], np.float64), 0.0))
    return np.asarray(combine(found["gist"], found["semantic"], descriptor), np.float64)


def _distances(targets, pool):
    """Euclidean distances (n_targets, n_pool)."""
    sq = (targets ** 2).sum(1)[:, None] + (pool ** 2).sum(1)[None, :] - 2.0 * targets @ pool.T
    return np.sqrt(np.maximum(sq, 0.0))


def rank_pool(targets, pool, n, rule=DEFAULT_RULE):
    """Indices of the `n` pool rows most like the targets, best first, and their distances.

    Parameters
    ----------
    targets : ndarray (T, D)
        Descriptors of the target photos.
    pool : ndarray (P, D)
        Descriptors of the candidate references.
    n : int
        How many to pick (all of the pool if it is smaller).
    rule : {"nearest", "mean", "each"}
        "nearest": by the distance to the nearest target; "mean": by the
        distance to the targets' mean descriptor; "each": the targets take
        turns, each taking its nearest pool row not yet taken (every target
        gets references of its own).

    Returns
    -------
    order : ndarray (min(n, P),) int
    distance : ndarray (min(n, P),) float64
        The distance each row was picked by.
    """
    targets, pool = np.atleast_2d(np.asarray(targets, np.float64)), np.atleast_2d(np.asarray(pool, np.float64))
    if rule not in PICK_RULES:
        raise ValueError(f"rule must be one of {PICK_RULES}, got {rule!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if len(targets) == 0 or len(pool) == 0 or targets.shape[1] != pool.shape[1]:
        raise ValueError(f"need targets and pool descriptors of one length, got shapes {targets.shape} and "
                         f"{pool.shape}")
    n = min(int(n), len(pool))
    if rule == "mean":
        d = _distances(targets.mean(axis=0, keepdims=True), pool)[0]
    else:
        dist = _distances(targets, pool)  # (T, P)
        if rule == "nearest":
            d = dist.min(axis=0)
        else:
            per_target = np.argsort(dist, axis=1, kind="stable")  # (T, P)
            taken, order, pos = np.zeros(len(pool), bool), [], np.zeros(len(targets), int)
            while len(order) < n:
                for t in range(len(targets)):
                    while taken[per_target[t, pos[t]]]:
                        pos[t] += 1
                    j = per_target[t, pos[t]]
                    taken[j] = True
                    order.append((j, dist[t, j]))
                    if len(order) == n:
                        break
            return np.array([j for j, _ in order]), np.array([v for _, v in order])
    order = np.argsort(d, kind="stable")[:n]
    return order, d[order]


def _list_images(folders, role):
    paths = []
    for folder in folders:
        try:
            found = find_images(folder)
        except ImageError as exc:
            raise ValueError(f"{role} {exc}") from None
        if not found:
            log.warning("%s: no image files found", folder)
        paths += found
    if not paths:
        raise ValueError(f"no {role} images found in {', '.join(map(str, folders))}")
    return paths


def pick_references(target_dirs, pool_dirs, n=50, cfg=None, descriptor=DEFAULT_DESCRIPTOR, rule=DEFAULT_RULE,
                    cache_dir=None, jobs=1, quiet=False, exclude=()):
    """The `n` colour photos of the pool most like the target photos.

    Parameters
    ----------
    target_dirs : list of str or Path
        Folders (searched recursively) or files of the photos to colorize
        (grey or colour; their luminance is what counts).
    pool_dirs : list of str or Path
        Folders or files of candidate colour references. Grey and near-grey
        photos (`FeatureConfig.min_chroma_spread`, as ``deepcolor features``
        skips them) and copies of a target or of another pool photo are left out.
    n : int
    cfg : FeatureConfig, optional
    descriptor : str
        One of `PICK_DESCRIPTORS`.
    rule : str
        One of `PICK_RULES` (see `rank_pool`).
    cache_dir : str or Path, optional
        Descriptor cache (None: none).
    jobs : int
    exclude : collection of Path
        Pool files to leave out (compared after resolving links).

    Returns
    -------
    result : dict
        ``picked``: list of (path, distance), best first; ``counts`` and ``seconds``.
    """
    cfg = cfg or FeatureConfig()
    if descriptor not in PICK_DESCRIPTORS:
        raise ValueError(f"descriptor must be one of {PICK_DESCRIPTORS}, got {descriptor!r}")
    start = time.perf_counter()
    target_paths = _list_images(target_dirs, "target")
    pool_paths = _list_images(pool_dirs, "pool")
    if exclude:
        exclude = {Path(p).resolve() for p in exclude}
        pool_paths = [p for p in pool_paths if p.resolve() not in exclude]
    targets = describe_images(target_paths, cfg, cache_dir, jobs, quiet, desc="pick: targets")
    pool = describe_images(pool_paths, cfg, cache_dir, jobs, quiet, desc="pick: pool")
    for message in targets["failed"] + pool["failed"]:
        log.error("%s", message)
    if not targets["paths"]:
        raise ValueError(f"none of the {len(target_paths)} target images could be read")
    target_shas = set(targets["sha256"])
    seen, keep, counts = set(), [], {"grey": 0, "duplicate": 0, "target": 0}
    for i, (sha, spread) in enumerate(zip(pool["sha256"], pool["spread"])):
        if sha in target_shas:
            counts["target"] += 1
        elif sha in seen:
            counts["duplicate"] += 1
        elif spread < cfg.min_chroma_spread:
            counts["grey"] += 1
        else:
            keep.append(i)
        seen.add(sha)
    if not keep:
        raise ValueError(f"no colour photo in the pool {', '.join(map(str, pool_dirs))} "
                         f"({len(pool_paths)} images: {counts['grey']} grey or near-grey, "
                         f"{len(pool['failed'])} unreadable)")
    pool_x = descriptor_matrix(pool, descriptor)[keep]
    order, dist = rank_pool(descriptor_matrix(targets, descriptor), pool_x, n, rule)
    picked = [(pool["paths"][keep[j]], float(d)) for j, d in zip(order, dist)]
    counts.update(targets=len(targets["paths"]), pool=len(pool_paths), candidates=len(keep),
                  failed=len(targets["failed"]) + len(pool["failed"]), picked=len(picked),
                  cached=targets["cached"] + pool["cached"])
    return {"picked": picked, "counts": counts, "seconds": round(time.perf_counter() - start, 3),
            "descriptor": descriptor, "rule": rule}


def write_pick(out_dir, result, settings=None):
    """Write a pick: ``OUT/references/`` (symbolic links), ``OUT/picked.txt`` and ``OUT/pick.json``.

    The links are named ``RANK-NAME`` (rank from 001, best first) and point
    to the pool files by absolute path; ``deepcolor features OUT/references``
    reads them. ``picked.txt`` lists the same files, one absolute path a
    line. A rerun replaces the links of an earlier pick.

    Raises
    ------
    ValueError
        ``OUT/references`` holds something other than symbolic links (the
        files of someone else, never deleted).
    """
    out_dir = Path(out_dir)
    links = out_dir / REFERENCES
    if links.exists():
        if not links.is_dir() or links.is_symlink():
            raise ValueError(f"{links}: not a folder; choose another --out")
        others = [p for p in links.iterdir() if not p.is_symlink()]
        if others:
            raise ValueError(f"{others[0]}: not a link of an earlier pick; {links} must hold only the links "
                             f"'deepcolor pick' writes (choose another --out)")
        for p in links.iterdir():
            p.unlink()
    links.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(len(result["picked"]))))
    lines = []
    for rank, (path, _) in enumerate(result["picked"], 1):
        target = Path(path).resolve()
        os.symlink(target, links / f"{rank:0{width}d}-{target.name}")
        lines.append(str(target))
    atomic_write_text(out_dir / LIST, "".join(f"{line}\n" for line in lines))
    record = {"descriptor": result["descriptor"], "rule": result["rule"], "counts": result["counts"],
              "seconds": result["seconds"], "settings": settings or {},
              "picked": [{"rank": r, "path": line, "distance": round(d, 6)}
                         for r, (line, (_, d)) in enumerate(zip(lines, result["picked"]), 1)]}
    atomic_write_text(out_dir / RECORD, json.dumps(record, indent=1))
    return links
