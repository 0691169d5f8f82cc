"""Loading a scene parser by the name a feature setting gives it, once per process.

``semantic_parser = "default"`` is the grey-image parser bundled with
deepcolor (`default_parser_dir`); a parser directory (`deepcolor.features.greyparser`)
or the ADE20K ``.tflite`` file (`deepcolor.features.teacher`) may be named
instead. ``semantic_groups`` merges the parser's classes into groups
(`deepcolor.features.classprob.GROUP_MERGES`).

A parser is any object with ``class_names`` (or ``classes_``, the same tuple)
and ``predict_proba(gray) -> (H, W, K)``.

A format-2 parser directory (the bundled parser) runs in OpenCV by default
(``runtime="opencv"``, `deepcolor.features.cvparser`): loading and running it
does not import torch. ``runtime="torch"`` gives the torch network of the
same directory (`deepcolor.features.greyparser.GreyParser`), for code that
trains it or needs its gradients. Both give the same probabilities to float32
rounding, and neither depends on its thread count. The old format-1 student
(``deepcolor/models/parser-v1``) is run in torch whatever the runtime.
"""

import contextlib
import contextvars
import functools
import hashlib
import json
from pathlib import Path

import deepcolor

from .classprob import GROUP_MERGES, GroupedParser, merge_matrix
from .labelsets import ADE20K_TO_SHARED, SHARED_GROUPS, group_matrix
from .teacher import TFLiteParser

RUNTIMES = ("opencv", "torch")


def _parser_format_version(path):
    """The ``format_version`` a parser directory's manifest claims (None if unreadable: the loader says why)."""
    try:
        return json.loads((Path(path) / "manifest.json").read_text()).get("format_version")
    except (OSError, ValueError, AttributeError):
        return None


def _manifest_digest(path):
    """sha256 of a parser directory's manifest (None if unreadable): a parser rewritten in place is reloaded."""
    try:
        return hashlib.sha256((Path(path) / "manifest.json").read_bytes()).hexdigest()
    except OSError:
        return None


@functools.lru_cache(maxsize=4)
def _load_parser_dir(path, manifest_digest, runtime):
    """A parser directory, loaded once per process (per manifest and runtime) whatever merges of its classes."""
    # lazy: torch only when asked for (or for the old student); OpenCV's parser not for a TFLite parser or --help
    if _parser_format_version(path) == 1:  # the small student of issue 3, torch only
        from .greyparser import StudentParser

        return StudentParser.load(path)
    if runtime == "torch":
        from .greyparser import GreyParser

        return GreyParser.load(path)
    from .cvparser import OpenCVGreyParser

    return OpenCVGreyParser.load(path)


def parser_sha256(spec="default"):
    """The sha256 that identifies the parser `spec` names (its ``sha256``), read without loading it.

    A parser directory's weights file, as its manifest's table of files gives
    it (for the weights of the bundled parser: ``deeplab.safetensors``); a
    ``.tflite`` file's own bytes. None when the parser cannot be read: its
    loader says why.
    """
    path = default_parser_dir() if spec == "default" else Path(spec)
    try:
        if path.suffix == ".tflite":
            return hashlib.sha256(path.read_bytes()).hexdigest()
        files = json.loads((path / "manifest.json").read_text())["files"]
        weights = [sha for name, sha in files.items() if name.endswith(".safetensors")]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return weights[0] if len(weights) == 1 else None


def default_parser_dir():
    """The grey-image parser that ships with deepcolor (``deepcolor/models/parser``)."""
    return Path(deepcolor.__file__).parent / "models" / "parser"


# What `load_parser` runs a parser directory with when not told (`parser_runtime`); a context
# variable, so that threads of one process (a dask worker's) each keep their own.
_RUNTIME = contextvars.ContextVar("parser_runtime", default="opencv")


@contextlib.contextmanager
def parser_runtime(runtime):
    """Inside the block, `load_parser` runs parser directories with `runtime` unless told otherwise.

    `deepcolor.extract` computes the features of training references with
    torch's parser: the bundled model was trained on those features, and
    ``make default-model`` rebuilds it byte for byte only from the same floats
    (OpenCV's differ by up to 4e-6). Colorizing keeps OpenCV's, without torch.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    token = _RUNTIME.set(runtime)
    try:
        yield
    finally:
        _RUNTIME.reset(token)


def load_parser(spec="default", groups="parser", threads=1, runtime=None):
    """The parser named by a feature setting, loaded once per process.

    Parameters
    ----------
    spec : str
        ``"default"`` (the bundled grey-image parser, `default_parser_dir`), a parser
        directory written by ``deepcolor parser train``, or the ADE20K
        ``.tflite`` file (its 151 classes summed into `SHARED_GROUPS` + other).
    groups : str
        A key of `GROUP_MERGES`: "parser" keeps the parser's classes, another
        merge sums them into its groups.
    threads : int
        Threads of the TFLite interpreter.
    runtime : {"opencv", "torch"}, optional
        What runs a format-2 parser directory (default: "opencv", or that of
        the enclosing `parser_runtime` block): OpenCV's dnn module
        (`deepcolor.features.cvparser.OpenCVGreyParser`, no torch) or torch
        (`deepcolor.features.greyparser.GreyParser`, for training). Not used
        for a ``.tflite`` file or a format-1 directory (torch).

    Returns
    -------
    parser : object with ``class_names``, ``sha256`` and ``predict_proba(gray) -> (H, W, K)``
    """
    return _load_parser(spec, groups, threads, _RUNTIME.get() if runtime is None else runtime)


@functools.lru_cache(maxsize=4)
def _load_parser(spec, groups, threads, runtime):
    if spec == "default":
        spec = default_parser_dir()
        if not (spec / "manifest.json").is_file():
            raise FileNotFoundError(f"{spec}: the bundled parser is missing from this installation; "
                                    f"rebuild it with `make parser` or name one with semantic_parser")
    if groups not in GROUP_MERGES:
        raise ValueError(f"groups must be one of {sorted(GROUP_MERGES)}, got {groups!r}")
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    path = Path(spec)
    if path.suffix == ".tflite":
        teacher = TFLiteParser(path, threads=threads)
        parser = GroupedParser(teacher, group_matrix(teacher.n_classes, ADE20K_TO_SHARED, SHARED_GROUPS),
                               SHARED_GROUPS + ("other",))
    else:
        parser = _load_parser_dir(str(path), _manifest_digest(path), runtime)
    merge = GROUP_MERGES[groups]
    if merge is None:
        return parser
    return GroupedParser(parser, merge_matrix(parser.class_names, merge), tuple(merge) + ("other",))


load_parser.cache_clear = _load_parser.cache_clear  # tests reload a parser rewritten under the same name
