"""Checksummed model directories: the one writer and the one reader, without torch.

A model-like directory (a deepcolor model, a scene parser, a comparison
system) is a folder of files plus ``manifest.json``: format, version, settings
and the sha256 of every file. `write_model_dir` writes one and swaps it in
whole (`replace_folder`); `read_verified` reads one back with every checksum
verified, refusing symlinks, FIFOs and paths outside the folder. What a
deepcolor model's settings must be is checked in `deepcolor.modelcheck`.
"""

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import platform
import secrets
import shutil
import stat
import struct
from pathlib import Path

import numpy as np

from deepcolor import __version__
from deepcolor.files import atomic_write_bytes, atomic_write_text

MANIFEST = "manifest.json"


#: The manifest's keys that its settings checksum (``settings_sha256``) does not cover.
_UNCHECKED_KEYS = ("files", "settings_sha256")


class ModelError(Exception):
    """A model directory that cannot be used; the message names the file and the problem."""


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def versions():
    """The versions of deepcolor, Python and the libraries that shape a model's numbers, for its manifest."""
    # lazy: torch, OpenCV, scikit-image and scikit-learn are heavy; only writers need them,
    # and every command imports this module (for ModelError)
    import cv2
    import skimage
    import sklearn
    import torch

    return {"deepcolor": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "opencv": cv2.__version__, "scikit-image": skimage.__version__,
            "scikit-learn": sklearn.__version__}


def write_model_dir(model_dir, manifest, files, what="model", overwrite=True):
    """Write a checksummed directory, replacing any there in one step; the writer of `read_verified`'s folders.

    The files and then the manifest are written into a new folder beside
    `model_dir`, which then takes the place of `model_dir` by an atomic rename
    (an exchange of the two folders where one exists already): a run killed
    at any point leaves either the old directory or the new one, whole
    (`replace_folder`).

    Parameters
    ----------
    model_dir : str or Path
    manifest : dict
        JSON-able content of ``manifest.json`` (``format``, ``format_version``,
        settings...). Its ``files`` entry is set to the table file name ->
        sha256 of `files`: where `manifest` has a ``files`` key already (any
        value) the table takes its place in the key order, else it comes last.
        Written with one space of indent, values JSON cannot hold as floats.
    files : dict of str -> bytes
        The directory's files by plain name, in the order of the table.
    what : str, optional
        What the directory is, for messages ("model", "parser", "baseline").
    overwrite : bool, optional
        False refuses to replace a directory that has a manifest already.

    Returns
    -------
    manifest : dict
        As written, with its table of files.

    Raises
    ------
    FileExistsError
        `overwrite` is False and `model_dir` holds a manifest.
    ModelError
        `model_dir` exists and holds files other than a model-like directory's.
    ValueError
        A name of `files` is not a plain file name, or is ``manifest.json``.
    OSError
        The folder cannot be written.
    """
    model_dir = Path(model_dir)
    for name in files:
        if not isinstance(name, str) or not name or name in (".", "..", MANIFEST) \
                or any(c in name for c in "/\\\0"):
            raise ValueError(f"a {what}'s files must have plain file names other than {MANIFEST}, got {name!r}")
    if not overwrite and (model_dir / MANIFEST).exists():
        raise FileExistsError(f"{model_dir}: a {what} is there already; pass overwrite=True to replace it")
    check_replaceable(model_dir, what)
    manifest = {**manifest, "files": {name: _sha(data) for name, data in files.items()}}
    text = json.dumps(manifest, indent=1, default=float)
    with new_folder_beside(model_dir) as tmp:
        for name, data in files.items():
            atomic_write_bytes(tmp / name, data)
        atomic_write_text(tmp / MANIFEST, text)  # last: a folder with a manifest is whole
        replace_folder(tmp, model_dir)
    return manifest


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
