"""A model directory's files, checked without torch: format, version and the checksum of every file.

`deepcolor colorize --jobs N` checks the model here before its workers load it
(`deepcolor.ensemble.Model.load`), so a broken model stops the command with one
message and the main process never imports torch.
"""

import hashlib
import json
from pathlib import Path

FORMAT = "deepcolor-model"
FORMAT_VERSION = 2  # 2: clusters of the ensemble
MANIFEST = "manifest.json"


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
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise ModelError(f"{mpath}: missing; {model_dir} is not a deepcolor {what} directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
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
        path = model_dir / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None
        if _sha(data) != sha:
            raise ModelError(f"{path}: checksum mismatch (sha256 differs from {mpath}); the {what} is corrupt")
        blobs[name] = data
    return manifest, blobs
