"""Command line: ``deepcolor {features,train,pick,colorize,evaluate,report,parser}``.

Each command is declared by one small function (``add_<command>``) beside the
one that runs it (``cmd_<command>``), in the module of its kind: learning
(features, train, pick, parser train), colorizing, scoring (evaluate,
report). Option choices come from the registries of the stages (features,
DAISY backends, clustering descriptors, colorizing methods, parallel
backends), never repeated here.

Exit status: 0 when everything succeeded, 1 when some files failed (each is
named on stderr and counted in the final summary), 2 for a usage error or a
failure that stops the whole command (a missing folder, a corrupt model).
"""

import argparse
import importlib
import logging
import sys

from deepcolor import __version__
from deepcolor.cli.common import CommandError, setup_logging, shared_options
from deepcolor.images.picture import ImageError
from deepcolor.modelfiles import ModelError

log = logging.getLogger("deepcolor")

# The commands in the order of `deepcolor --help`, each with the module (of deepcolor.cli) that
# declares it (``add_<command>``) and runs it.
COMMANDS = {"features": "learning", "train": "learning", "pick": "learning", "colorize": "colorizing",
            "evaluate": "scoring", "report": "scoring"}
PARSER_COMMANDS = {"train": "learning"}  # the steps of `deepcolor parser` (``add_parser_<step>``)


def _adder(module, name):
    return getattr(importlib.import_module(f"deepcolor.cli.{module}"), f"add_{name}")


def command_of(argv):
    """The command `argv` asks for (its first word that is not an option), or None."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(command=None):
    """The argument parser of ``deepcolor`` and its commands.

    With `command` (a name of `COMMANDS`, or "parser"), only that command is
    declared, and only its module imported: ``deepcolor colorize`` does not
    pay for the imports of training and scoring (a third of its start-up).
    Any other value declares them all (``deepcolor --help``, a mistyped
    command named among the choices).
    """
    only = command if command in COMMANDS or command == "parser" else None
    parser = argparse.ArgumentParser(
        prog="deepcolor",
        description="Deep Colorization (Cheng, Yang, Sheng, ICCV 2015): train on colour photos, "
                    "colorize grey ones.")
    parser.add_argument("--version", action="version", version=f"deepcolor {__version__}")
    # -v and -q also before the command (deepcolor -v colorize ...); their own dests, since a
    # subcommand's defaults would overwrite the top level's value of the same dest
    parser.add_argument("-v", "--verbose", action="store_true", dest="top_verbose", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", dest="top_quiet",
                        help="no progress bar, warnings and errors only")
    common, parallel = shared_options()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # none: the help is printed
    for name, module in COMMANDS.items():
        if only in (None, name):
            _adder(module, name)(sub, common, parallel)
    psub = argparse.ArgumentParser().add_subparsers()  # no steps unless `deepcolor parser` is declared
    if only in (None, "parser"):
        p = sub.add_parser("parser", help="make the grey-image scene parser (the ADE20K parser adapted to grey)")
        psub = p.add_subparsers(dest="parser_command", metavar="STEP")  # none: the help is printed
        p.set_defaults(func=None)
        for name, module in PARSER_COMMANDS.items():
            _adder(module, f"parser_{name}")(psub, common, parallel)
    for p in [*sub.choices.values(), *psub.choices.values()]:  # each command's usage for its own errors
        p.set_defaults(_parser=p)
    return parser


def main(argv=None):
    parser = build_parser(command_of(sys.argv[1:] if argv is None else argv))
    # --help and --version end here, before torch is imported; an unknown option is named with
    # the usage of the subcommand it was given to
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "func", None) is None:  # `deepcolor` or `deepcolor parser` alone: the help
        getattr(args, "_parser", parser).print_help()
        return 0
    args.verbose = args.verbose or args.top_verbose
    args.quiet = args.quiet or args.top_quiet
    setup_logging(args.verbose, args.quiet)
    try:
        return args.func(args)
    except (CommandError, ModelError, ImageError, ValueError, OSError, ImportError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
