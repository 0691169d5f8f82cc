"""File plumbing: paths shown on one line, atomic writes, folders opened without following symlinks.

A killed process leaves either the old file or the new one, never a
half-written one (`atomic_write_bytes`); the temporary files such a kill
leaves are named by `partial_name_prefix` and removed by
`remove_partial_files`. `open_folder` opens the folders below a user's
output folder one by one, never following a symlink there.
"""

import contextlib
import errno
import hashlib
import os
import unicodedata
from pathlib import Path


def display_path(path):
    """A path as one line of text: control and undecodable characters escaped.

    A file name may hold a newline, a terminal escape or bytes that are not
    UTF-8; printed raw, it would split an error line in two or change the
    terminal. Such characters (and then backslashes too, so the escaping is
    unambiguous) are written as Python escapes (``\\n``, ``\\x1b``,
    ``\\xff`` for an undecodable byte). Other paths are returned unchanged.
    """
    text = os.fsdecode(os.fspath(path))
    if text.isprintable():
        return text
    out = []
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif ch == " " or unicodedata.category(ch)[0] not in "CZ":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


NAME_MAX = 255  # bytes in one file name (Linux, macOS)


def partial_name_prefix(name):
    """The start of the temporary names of an atomic write of the file `name`: ``.NAME.`` (ends ``.part``).

    A name too long to take the temporary name's 14 extra bytes within
    `NAME_MAX` is shortened, with a hash of the whole name kept: an output
    name of 241 to 255 bytes is written like any other.
    """
    prefix = f".{name}."
    if len(os.fsencode(prefix)) + 13 <= NAME_MAX:  # 8 random hex digits and ".part"
        return prefix
    digest = hashlib.sha1(os.fsencode(name)).hexdigest()[:10]
    head = os.fsencode(name)[:NAME_MAX - 13 - 14]
    return f".{os.fsdecode(head.decode('utf-8', 'ignore').encode('utf-8'))}~{digest}."


def open_folder(root, parts, create=False):
    """A file descriptor of the folder `root`/`parts`, never following a symlink below `root`.

    Parameters
    ----------
    root : Path
        The folder named by the user (it may itself be a symlink).
    parts : sequence of str
        The folders below it, opened one by one with ``O_NOFOLLOW``.
    create : bool
        Create missing folders (and `root`).

    Raises
    ------
    OSError
        A part is a symlink or not a folder (the message says so), or missing.
    """
    root = Path(root)
    if create:
        root.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(root, flags)
    try:
        for i, part in enumerate(parts):
            try:
                sub = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                sub = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    where = display_path(root.joinpath(*parts[:i + 1]))
                    raise OSError(exc.errno, f"{where} is a symlink or not a folder; deepcolor writes only "
                                             f"inside OUT and does not follow symlinks there") from None
                raise
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def atomic_write_bytes(path, data, root=None):
    """Write bytes to `path` through a temporary file in the same folder, then rename.

    A killed process leaves either the old file or the new one, never a
    half-written one; the temporary file is removed on failure.

    Parameters
    ----------
    path : str or Path
    data : bytes
    root : str or Path, optional
        A folder that `path` lies in (lexically). The folders between `root`
        and `path` are created if missing and never followed where they are
        symlinks, and the file itself is written and renamed inside the
        folder so opened: nothing is written outside `root`, whatever
        symlinks are planted below it. Without `root`, `path`'s folder is
        opened as it is.

    Raises
    ------
    OSError
        The file cannot be written, or a folder below `root` is a symlink.
    ValueError
        `path` is not inside `root`.
    """
    path = Path(path)
    if root is None:
        root, parts = path.parent, ()
    else:
        parts = path.relative_to(root).parts[:-1]
    dir_fd = open_folder(root, parts, create=True)
    try:
        tmp = f"{partial_name_prefix(path.name)}{os.urandom(4).hex()}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                     0o666, dir_fd=dir_fd)  # the umask applies, as for any new file
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)


def remove_partial_files(path, root=None):
    """Delete the temporary files that a killed `atomic_write_bytes` of `path` left beside it.

    Below `root` no symlink is followed (nothing outside `root` is touched);
    a missing folder or a symlinked one is left alone.
    """
    path = Path(path)
    parts = () if root is None else path.relative_to(root).parts[:-1]
    try:
        dir_fd = open_folder(path.parent if root is None else root, parts)
    except OSError:
        return
    try:
        prefix = partial_name_prefix(path.name)
        for name in os.listdir(dir_fd):
            if name.startswith(prefix) and name.endswith(".part") and "." not in name[len(prefix):-5]:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                    os.unlink(name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))
