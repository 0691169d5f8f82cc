"""Progress bars on stderr, quiet when stderr is not a terminal or when asked."""

import sys

from tqdm import tqdm  # not tqdm.auto: it imports asyncio (25 ms of every command), for notebooks


def progress_bar(total, desc, unit="it", quiet=False):
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr,
                disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True)
