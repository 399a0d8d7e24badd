"""Atomic file writing: readers see the old file or the new one, never half."""
import contextlib
import os
import tempfile
from pathlib import Path

from .errors import InputError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; move it over `path` on success.

    The temporary name keeps the suffix, because Keras and matplotlib choose
    the format from it. On any exception the temporary file is removed and
    `path` is left untouched.
    """
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not path.is_file():  # a device, a folder, a pipe, a dead link
        raise InputError(path, "exists and is not a regular file: refusing to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    except OSError as exc:
        raise InputError(path, f"cannot be written ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text(path, text):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
