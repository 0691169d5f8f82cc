"""What the commands share: the usage-error type, logging, settings, option types, the parallel backend."""

import argparse
import json
import logging
import math
import sys
from contextlib import nullcontext
from pathlib import Path

from deepcolor.settings import CONFIG_SECTIONS, load_settings
from deepcolor.parallel import BACKENDS, backend

log = logging.getLogger("deepcolor")

class CommandError(Exception):
    """A failure that stops the command; its message is printed as is."""


def setup_logging(verbose, quiet):
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    # The handler filters too: libraries that set their own loggers' level (dask.distributed
    # logs at INFO whatever the root's level) print nothing below it, so -q is quiet.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)


def configs(args):
    """The settings of every stage: the --config file's, else the defaults."""
    if getattr(args, "config", None):
        return load_settings(args.config)
    return {name: cls() for name, cls in CONFIG_SECTIONS.items()}


def jobs_type(value):
    """--jobs' type: a non-zero int (a usage error names the subcommand's usage)."""
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int, got {value!r}") from None
    if jobs == 0:
        raise argparse.ArgumentTypeError("must not be 0 (1: this process; N: N workers; -1: all cores)")
    return jobs


def saturation_type(value):
    """--saturation's type: a finite float >= 0."""
    try:
        factor = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {value!r}") from None
    if not math.isfinite(factor) or factor < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value!r}")
    return factor


def check_model_dir(model_dir):
    """A CommandError with the way on when MODEL_DIR is something else than a model (a features folder)."""
    manifest = Path(model_dir) / "manifest.json"
    if not manifest.is_file():  # a FIFO or device would block or never end: the model loader refuses it
        return
    try:
        kind = json.loads(manifest.read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return  # no readable manifest: the model loader says what is wrong
    if kind == "deepcolor-features":
        raise CommandError(f"{model_dir}: this is a features folder (made by 'deepcolor features'), not a "
                           f"model: run 'deepcolor train {model_dir} --out MODEL_DIR' and pass --model MODEL_DIR")


def parallel_backend(args, n_tasks=None):
    """The parallel backend of `args` (--backend, --scheduler) as a context manager."""
    if args.backend == "loky" and not args.scheduler:
        return nullcontext()
    if args.backend == "dask" and n_tasks == 0:
        return nullcontext()  # nothing to do: no cluster to start
    return backend(args.backend, args.scheduler, n_workers=None if args.jobs < 1 else args.jobs)


def shared_options():
    """The parent parsers of the commands: (common: -v, -q, --config; parallel: --jobs, --backend, --scheduler)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings and errors only")
    tables = ", ".join(f"[{name}]" for name in CONFIG_SECTIONS)
    classes = ", ".join(f"{cls.__module__}.{cls.__name__}" for cls in CONFIG_SECTIONS.values())
    common.add_argument("--config", metavar="TOML", help=f"settings file with {tables} tables (keys: the fields "
                        f"of {classes}); options given on the command line win")
    parallel = argparse.ArgumentParser(add_help=False)
    parallel.add_argument("--jobs", type=jobs_type, default=1,
                          help="parallel worker processes (default 1; -1: all cores)")
    parallel.add_argument("--backend", choices=BACKENDS, default="loky",
                          help="loky: worker processes here (default); dask: a dask.distributed cluster")
    parallel.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler address (tcp://host:8786); "
                          "without one, --backend dask starts a local cluster of --jobs workers")
    return common, parallel
