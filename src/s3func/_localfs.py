"""Local files written atomically: a temporary file beside the target, then a rename.

Shared by ``download_file`` and :mod:`s3func.sync`. The temporary file is created the way
``open(path, "wb")`` would create the target (mode ``0o666`` less the umask, applied by the
kernel), so renaming it into place needs no ``chmod``, and only an existing target's own mode
has to be copied over.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat

__all__ = ["copy_mode", "create_temp", "unlink_quietly"]

_FLAGS = (
    os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)
_TAG = os.urandom(4).hex()
_COUNTER = itertools.count()


def create_temp(directory: str, prefix: str, suffix: str = "") -> tuple[int, str]:
    """Create a new, empty file in ``directory``, open for reading and writing.

    Names are ``prefix`` + a per-process random tag and pid + a counter + ``suffix``;
    ``O_EXCL`` guarantees the file is new (another name is tried if one exists).

    Returns:
        The file descriptor and the path.
    """
    while True:
        # next() on itertools.count is atomic under the GIL, so threads never share a name.
        name = f"{prefix}{_TAG}{os.getpid()}-{next(_COUNTER)}{suffix}"
        path = os.path.join(directory, name)
        try:
            return os.open(path, _FLAGS, 0o666), path
        except FileExistsError:  # pragma: no cover - a leftover from a previous process
            continue


def copy_mode(fd: int, path: str, like: str) -> None:
    """Give the temporary file the permission bits of ``like``, when ``like`` exists."""
    try:
        mode = stat.S_IMODE(os.stat(like).st_mode)
    except OSError:
        return
    with contextlib.suppress(OSError):
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        else:  # pragma: no cover - Windows before 3.13
            os.chmod(path, mode)


def unlink_quietly(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` if it exists; errors are ignored (cleanup after a failure)."""
    with contextlib.suppress(OSError):
        os.unlink(path)
