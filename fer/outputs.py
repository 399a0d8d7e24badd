"""Where a script may write, checked before any work: an output never replaces one of the inputs (whatever
the path that names it), never replaces something that is not a regular file, and its folder can take it, so
that no run fails after an hour of training because of where it was told to write."""
import os
from pathlib import Path

from .errors import InputError


def check_outputs(outputs, inputs=()):
    """Refuse in one line, before anything is read or trained, any output that is one of the inputs, exists as
    something other than a regular file, or lies in a folder that cannot be created or written."""
    inputs = [Path(p) for p in inputs if p is not None]
    outputs = [Path(p) for p in outputs if p is not None]
    for i, out in enumerate(outputs):
        for source in inputs:
            if same_file(out, source):
                raise InputError(out, f"is also an input ({source}): refusing to overwrite it; write elsewhere")
        for other in outputs[:i]:
            if same_file(out, other):
                raise InputError(out, f"is named twice as an output (also as {other})")
        if out.is_symlink() or out.exists():
            if not out.is_file():
                raise InputError(out, "exists and is not a regular file: refusing to replace it")
        check_folder(out.parent)


def check_folder(folder):
    """A folder that exists and is writable, or can be created: the nearest existing ancestor must be a
    writable folder."""
    folder = Path(folder)
    existing = folder
    while not existing.exists():
        if existing.is_symlink():  # a dangling link where a folder should be
            raise InputError(existing, "is a broken link, not a folder")
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file, not a folder" if existing.is_file() else "exists and is not a folder"
        raise InputError(existing, what if existing == folder else f"{what}, so {folder} cannot be made")
    if str(existing.resolve()).startswith(("/proc", "/sys", "/dev")):
        raise InputError(folder, "is in a kernel file system (/proc, /sys or /dev), not a place for outputs")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(existing, "is not writable")


def same_file(a, b):
    """True when the two paths name one file: the same inode for files that exist, else the same path once
    links and '..' are resolved."""
    a, b = Path(a), Path(b)
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()
