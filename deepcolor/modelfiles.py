"""A model directory's files, checked without torch: format, version and the checksum of every file.

`deepcolor colorize --jobs N` checks the model here before its workers load it
(`deepcolor.ensemble.Model.load`), so a broken model stops the command with one
message and the main process never imports torch.
"""

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import secrets
import shutil
import stat
import struct
from pathlib import Path

FORMAT = "deepcolor-model"
FORMAT_VERSION = 2  # 2: clusters of the ensemble
MANIFEST = "manifest.json"


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

#: The manifest's keys that its settings checksum (``settings_sha256``) does not cover.
_UNCHECKED_KEYS = ("files", "settings_sha256")


class ModelError(Exception):
    """A model directory that cannot be used; the message names the file and the problem."""


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def read_verified(model_dir, fmt, version, what):
    """A model-like directory's manifest and the bytes of every file it lists, checksums verified.

    Parameters
    ----------
    model_dir : Path
        Holds ``manifest.json`` with ``format``, ``format_version`` and
        ``files`` (file name -> sha256).
    fmt, version : str, int
        The expected format and version.
    what : str
        What the directory is, for messages ("model", "parser").

    Returns
    -------
    manifest : dict
    blobs : dict of file name -> bytes

    Raises
    ------
    ModelError
        Naming the file and the problem: missing, unreadable, another format
        or version, or a file whose sha256 differs from the manifest's.
    """
    model_dir = Path(model_dir)
    mpath = model_dir / MANIFEST
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: no such {what} directory")
    if not mpath.exists() and not mpath.is_symlink():
        raise ModelError(f"{mpath}: missing; {model_dir} is not a deepcolor {what} directory")
    try:
        manifest = json.loads(_read_regular(mpath, what).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"{mpath}: unreadable {what} manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{mpath}: not a deepcolor {what} manifest (a JSON {type(manifest).__name__})")
    if manifest.get("format") != fmt:
        raise ModelError(f"{mpath}: not a deepcolor {what} manifest (format={manifest.get('format')!r})")
    if manifest.get("format_version") != version:
        raise ModelError(f"{mpath}: {what} format version {manifest.get('format_version')!r}, "
                         f"this deepcolor reads version {version}")
    if not isinstance(manifest.get("files"), dict):
        raise ModelError(f"{mpath}: {what} manifest without a table of files and checksums")
    blobs = {}
    for name, sha in manifest["files"].items():
        path = model_dir / name if isinstance(name, str) else model_dir
        _check_file_name(name, mpath, what)
        data = _read_regular(path, what)
        if _sha(data) != sha:
            raise ModelError(f"{path}: checksum mismatch (sha256 differs from {mpath}); the {what} is corrupt")
        blobs[name] = data
    return manifest, blobs


def check_settings_sha(manifest, mpath, what="model"):
    """Refuse a manifest whose settings do not match their checksum (``settings_sha256``), if it has one.

    Checked last, after the specific checks, so that a manifest broken in a
    way they name is reported by them.
    """
    if "settings_sha256" in manifest and manifest["settings_sha256"] != settings_sha(manifest):
        raise ModelError(f"{mpath}: the settings do not match their checksum (settings_sha256); "
                         f"the {what} is corrupt or was edited")


def settings_sha(manifest):
    """sha256 of a manifest's content but its file table: its settings, networks, clusters and record."""
    covered = {k: v for k, v in manifest.items() if k not in _UNCHECKED_KEYS}
    return _sha(json.dumps(json.loads(json.dumps(covered, default=float)), sort_keys=True).encode())


def _check_file_name(name, mpath, what):
    """Refuse a manifest's file name that is not a plain name inside the folder."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or "\0" in name or name == MANIFEST:
        raise ModelError(f"{mpath}: names the file {name!r}; a {what}'s files must be plain file names "
                         f"inside its folder (no path, no '..'); the {what} is corrupt")


def _read_regular(path, what):
    """The bytes of a regular file, not following a symlink and never blocking on a FIFO or device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelError(f"{path}: is a symlink; a {what}'s files must be regular files in its folder") from None
        raise ModelError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ModelError(f"{path}: not a regular file; a {what}'s files must be regular files in its folder")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def check_safetensors(path, data):
    """Refuse bytes that are not a well-formed safetensors file (header, dtypes, offsets), without torch.

    Raises
    ------
    ModelError
        Naming `path` and what is wrong.
    """
    sizes = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
             "BOOL": 1}
    problem = None
    if len(data) < 8:
        problem = "shorter than a safetensors header"
    else:
        (n,) = struct.unpack("<Q", data[:8])
        if n > len(data) - 8:
            problem = f"header length {n} exceeds the file"
        else:
            try:
                header = json.loads(data[8:8 + n])
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                header, problem = None, f"header is not JSON ({exc})"
            if header is not None and not isinstance(header, dict):
                problem = "header is not a JSON object"
            elif header is not None:
                body = len(data) - 8 - n
                for key, t in header.items():
                    if key == "__metadata__":
                        continue
                    try:
                        start, stop = t["data_offsets"]
                        count = 1
                        for d in t["shape"]:
                            count *= int(d)
                        ok = t["dtype"] in sizes and 0 <= start <= stop <= body \
                            and stop - start == count * sizes[t["dtype"]]
                    except (KeyError, TypeError, ValueError):
                        ok = False
                    if not ok:
                        problem = f"tensor {key!r} has a bad dtype, shape or offsets"
                        break
    if problem:
        raise ModelError(f"{path}: not a valid safetensors file ({problem}); the model is corrupt")


def check_settings(manifest, mpath):
    """Refuse settings a model cannot run with: bad configs, absurd sizes, a missing parser.

    Torch-free, so `deepcolor colorize --jobs N` runs it before any worker starts.

    Raises
    ------
    ModelError
        Naming the manifest and the setting.
    """
    from deepcolor.clustering.config import ClusterConfig
    from deepcolor.features.config import FeatureConfig
    from deepcolor.networks_config import TrainConfig
    from deepcolor.refine.config import RefineConfig

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
        _check_parser(fcfg.semantic_parser, mpath)


def _check_parser(spec, mpath):
    """Refuse a model whose named scene parser cannot be found (without loading it)."""
    from deepcolor.features.semantic import default_parser_dir

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


# --- replacing a model in one step ------------------------------------------------------


def check_replaceable(folder, what):
    """Refuse to replace a folder that holds anything but a model-like directory's own files.

    A missing or empty folder, or one holding a manifest and the files it
    lists (and temporary files of our atomic writes), may be replaced.
    """
    folder = Path(folder)
    if not folder.exists():
        return
    if folder.is_symlink() or not folder.is_dir():
        raise ModelError(f"{folder}: not a folder; a {what} is written as a folder of its own")
    names = set(os.listdir(folder))
    if not names:
        return
    try:
        listed = set(json.loads((folder / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()
    other = sorted(n for n in names - listed - {MANIFEST} if not n.endswith(".part"))
    if other:
        raise ModelError(f"{folder}: holds files that are not a {what}'s ({', '.join(map(repr, other[:3]))}"
                         f"{', ...' if len(other) > 3 else ''}); write the {what} to a new or empty folder")


@contextlib.contextmanager
def new_folder_beside(folder):
    """A new empty folder beside `folder` (hidden name), removed on exit if it is still there.

    Folders that an earlier killed run left beside `folder` are removed first.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{folder.name}.new-"
    for stale in folder.parent.glob(prefix.replace("[", "[[]") + "*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = folder.parent / f"{prefix}{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a, b):
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where not supported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_folder(new, folder):
    """Put the folder `new` in the place of `folder` in one atomic step, then delete the old one.

    Where `folder` does not exist, or is empty, one rename does it. Where it
    holds a model, the two are exchanged atomically (renameat2 with
    RENAME_EXCHANGE) and the old one, now at `new`, is deleted: at no moment
    is there no model, or a mix of two, at `folder`. Without that call (not
    Linux, or a file system without it) the old folder is renamed aside first,
    which leaves a short moment without a model but never a mixed one.
    """
    new, folder = Path(new), Path(folder)
    if not folder.exists():
        os.rename(new, folder)
        return
    try:
        os.rmdir(folder)  # an empty folder: the rename below replaces it
    except OSError:
        pass
    else:
        os.rename(new, folder)
        return
    if not _exchange(new, folder):
        aside = new.with_name(new.name + "-old")
        os.rename(folder, aside)
        os.rename(new, folder)
        new = aside
    shutil.rmtree(new, ignore_errors=True)


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
