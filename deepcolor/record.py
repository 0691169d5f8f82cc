"""The record of a `deepcolor colorize` run: one JSON line per file, appended as each one ends.

OUT/deepcolor-colorize.jsonl names every input and what became of it (done,
skipped, failed, ignored) with the message, the seconds taken and the cluster
chosen. Lines are appended whole, so a killed run leaves a readable record
and a rerun adds its own lines.
"""

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

from deepcolor.images.formats import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

COLORIZE_LOG = "deepcolor-colorize.jsonl"


def colorize_log_path(src, dst):
    """Where `colorize` records each file: OUT/deepcolor-colorize.jsonl (beside a single output file)."""
    dst = Path(dst)
    folder = dst.parent if Path(src).is_file() and dst.suffix.lower() in IMAGE_EXTENSIONS else dst
    return folder / COLORIZE_LOG


def append_record(path, outcome):
    """Append one JSON line (time, source, output, status, message, seconds, cluster) to the colorize record.

    The line goes out in one ``write`` on a file opened for appending, so a
    killed run leaves whole lines (at most the last one cut short, which
    readers skip) and a rerun adds its own.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **asdict(outcome)}) + "\n"
    # O_NOFOLLOW: a symlink planted as the record is never followed out of OUT
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def end_partial_line(path):
    """End the last line of a colorize log that a killed run left cut short."""
    path = Path(path)
    if path.is_file() and not path.is_symlink() and path.stat().st_size:
        with open(path, "rb") as fh:
            fh.seek(-1, 2)
            last = fh.read(1)
        if last != b"\n":
            with open(path, "ab") as fh:
                fh.write(b"\n")


def read_records(path):
    """The records of a colorize log: a list of dicts, a line cut short by a kill skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.debug("%s: skipped a partial line", path)
    return records
