"""Reading FER2013 files into Faces: the Kaggle homework CSVs, the original fer2013.csv, arrays files.

Formats (told apart by the header line):
    label,feature           training rows, label 0-6
    id,feature              test rows, labels withheld
    emotion,pixels,Usage    the original file; Usage is Training/PublicTest/PrivateTest
and `.npz` arrays files holding `x` (N,48,48 uint8) and `y`. Any of them may be
plain, `.gz` or `.xz`.

Speed: a per-row `split()` over 28,709 rows of 2,304 pixels takes ~20 s. Here a
reader thread decompresses (lzma and zlib release the GIL) while the main thread
parses whole chunks of lines with NumPy, digit by digit, so parsing hides behind
decompression. (fer.data caches what this module parses.)
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import itertools
import lzma
import queue
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import CLASSES, IMAGE_SIZE, PIXELS
from .errors import InputError

HEADERS = {
    ("label", "feature"): "train",
    ("id", "feature"): "test",
    ("emotion", "pixels", "usage"): "fer2013",
}
EXPECTED_HEADERS = "'label,feature', 'id,feature' or 'emotion,pixels,Usage'"
USAGES = ("Training", "PublicTest", "PrivateTest")
PARSER_VERSION = "1"
CHUNK_BYTES = 8 << 20

_NL, _SPACE, _COMMA = 10, 32, 44
_PIXEL_BYTES = np.zeros(256, bool)  # what may appear in a pixel list
_PIXEL_BYTES[[_NL, _SPACE, *range(48, 58)]] = True

@dataclass
class Faces:
    """Images and whatever the file says about them."""

    x: np.ndarray  # (n, 48, 48) uint8, raw pixels
    y: np.ndarray | None = None  # (n,) int64 labels 0-6; None when withheld
    ids: np.ndarray | None = None  # (n,) int64 Kaggle test ids
    usage: np.ndarray | None = None  # (n,) str, fer2013.csv's Usage column
    source: str = ""
    digest: str = ""  # content key of the file it came from

    def __len__(self):
        return len(self.x)

    def content(self):
        """A key of the faces themselves (pixels, labels, Usage), the same whichever file or format held them:
        equal keys mean equal splits, since a split is drawn from the faces alone."""
        key = hashlib.blake2b(digest_size=16)
        for part in (self.x, None if self.y is None else self.y.astype("int64"), self.usage):
            key.update(b"none" if part is None else np.ascontiguousarray(part).tobytes() + str(part.shape).encode())
        return key.hexdigest()

    def subset(self, index):
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return Faces(self.x[index], pick(self.y), pick(self.ids), pick(self.usage), self.source, self.digest)


def read_faces(path) -> Faces:
    """Parse an arrays file or a CSV, labels checked; raise InputError naming the file and line on bad input."""
    faces = _parse_arrays(path) if _is_arrays_file(path) else _parse_csv(path)
    faces.source = str(path)
    check_labels(faces)
    return faces


def file_digest(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()[:32]


def _is_arrays_file(path):
    return ".npz" in path.suffixes


def _open_decompressed(path):
    """Open for reading, undoing .gz/.xz/.bz2 by the file's magic bytes, not its name."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def _archive_error(path, exc):
    kind = {".xz": "xz", ".gz": "gzip", ".bz2": "bzip2"}.get(path.suffix, "compressed")
    return InputError(path, f"truncated or corrupt {kind} archive ({exc})")


# ----------------------------------------------------------------------------- CSV

def _line_chunks(path):
    """Yield (bytes of whole lines, each ending in '\\n') from a reader thread.

    Blank lines at the very end are dropped; blank lines elsewhere reach the
    parser, which refuses them.
    """
    blocks: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()  # set when the parser gives up, so the reader lets go of the file

    def hand_over(item):
        while not stop.is_set():
            try:
                blocks.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def read():
        try:
            with _open_decompressed(path) as f:
                while block := f.read(CHUNK_BYTES):
                    if not hand_over(block):
                        return
            hand_over(None)
        except (EOFError, lzma.LZMAError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            hand_over(_archive_error(path, exc))

    threading.Thread(target=read, daemon=True).start()
    try:
        yield from _whole_lines(blocks)
    finally:
        stop.set()


def _whole_lines(blocks):
    pending = b""
    while True:
        block = blocks.get()
        if isinstance(block, Exception):
            raise block
        if block is None:
            break
        data = pending + block
        cut = data.rfind(b"\n") + 1
        body, pending = data[:cut], data[cut:]
        # Hold back a run of blank lines at the end: they may be the file's end.
        kept = body.rstrip(b" \t\r\n")
        if kept:
            end = body.find(b"\n", len(kept)) + 1
            yield body[:end]
            pending = body[end:] + pending
        else:
            pending = body + pending
    tail = pending.rstrip(b" \t\r\n")
    if tail:
        yield tail + b"\n"


def _parse_csv(path) -> Faces:
    chunks = _line_chunks(path)
    first = next(chunks, None)
    if first is None:
        raise InputError(path, "file is empty")
    if first.startswith(b"\xef\xbb\xbf"):
        first = first[3:]
    header_end = first.index(b"\n") + 1
    kind = _parse_header(path, first[:header_end])
    ncols = 3 if kind == "fer2013" else 2
    first_column = {"train": "label", "test": "id", "fer2013": "emotion"}[kind]

    parts, line = [], 2
    rest = first[header_end:]
    # Each chunk is parsed as it arrives, while the reader thread decompresses the next.
    for chunk in itertools.chain([rest] if rest else [], chunks):
        part = _parse_lines(path, chunk, ncols, line, first_column)
        line += len(part[0])
        parts.append(part)
    if not parts:
        raise InputError(path, "no data rows after the header")

    x = np.concatenate([p[0] for p in parts]).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    first_field = np.concatenate([p[1] for p in parts])
    faces = Faces(x)
    if kind == "test":
        faces.ids = first_field
        _refuse_duplicate_ids(path, first_field)
    else:
        faces.y = first_field
    if kind == "fer2013":
        faces.usage = np.concatenate([p[2] for p in parts])
    return faces


def _parse_header(path, raw: bytes) -> str:
    if b"\x00" in raw:
        raise InputError(path, "binary data, not a CSV text file", 1)
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InputError(path, "binary data, not a CSV text file", 1) from None
    names = tuple(name.strip().strip('"').lower() for name in text.split(","))
    if names in HEADERS:
        return HEADERS[names]
    for delimiter, label in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
        if delimiter in text and "," not in text:
            raise InputError(path, f"columns are separated by {label}; expected ',' (header {text[:60]!r})", 1)
    if text[:1].isdigit():
        raise InputError(path, f"missing header line; expected {EXPECTED_HEADERS}", 1)
    raise InputError(path, f"unknown header {text[:60]!r}; expected {EXPECTED_HEADERS}", 1)


def _parse_lines(path, chunk: bytes, ncols: int, first_line: int, first_column: str):
    """Parse whole lines: returns (pixels (n, 2304) uint8, first column, Usage or None)."""
    if b"\r" in chunk:
        chunk = chunk.replace(b"\r\n", b"\n")
    if b'"' in chunk:  # a fully quoted CSV: no field of these files can hold a quote or a comma, so drop them
        chunk = chunk.replace(b'"', b"")
    buf = np.frombuffer(chunk, np.uint8)
    ends = np.flatnonzero(buf == _NL)
    starts = np.concatenate(([0], ends[:-1] + 1))
    n = len(ends)
    lineno = lambda row: first_line + int(row)  # noqa: E731

    # Columns: every row must hold exactly ncols-1 commas.
    commas = np.flatnonzero(buf == _COMMA)
    per_row = np.bincount(np.searchsorted(ends, commas), minlength=n)[:n]
    bad = np.flatnonzero(per_row != ncols - 1)
    if len(bad):
        row = bad[0]
        text = chunk[starts[row]:ends[row]]
        raise InputError(path, _column_problem(text, per_row[row] + 1, ncols), lineno(row))
    commas = commas.reshape(n, ncols - 1)
    pix_start = commas[:, 0] + 1
    pix_end = commas[:, 1] if ncols == 3 else ends

    first = _parse_first_column(path, chunk, starts, commas[:, 0], first_column, first_line)
    usage = _parse_usage(path, chunk, commas[:, 1], ends, first_line) if ncols == 3 else None

    # Blank out everything but the pixel lists; rows stay separated by '\n'.
    pix = buf.copy()
    for s, e in zip(starts, pix_start):
        pix[s:e] = _SPACE
    if ncols == 3:
        for s, e in zip(pix_end, ends):
            pix[s:e] = _SPACE
    ok = _PIXEL_BYTES[pix]
    first_bad = int(np.argmin(ok))
    if not ok[first_bad]:
        row = int(np.searchsorted(ends, first_bad))
        raise InputError(path, _pixel_char_problem(chunk, first_bad), lineno(row))

    # Tokens are runs of digits; value = digits combined, at most 3 (longer ones checked apart).
    digit = pix - 48  # uint8: non-digits wrap to >= 10
    is_digit = digit < 10
    begins = is_digit.copy()
    begins[1:] &= ~is_digit[:-1]
    finish = is_digit.copy()
    finish[:-1] &= ~is_digit[1:]
    tok = np.flatnonzero(begins)
    length = np.flatnonzero(finish) - tok + 1
    counts = np.diff(np.searchsorted(tok, ends), prepend=0)
    bad = np.flatnonzero(counts != PIXELS)
    if len(bad):
        row = bad[0]
        raise InputError(path, f"expected {PIXELS} pixels, found {counts[row]}", lineno(row))
    value = digit[tok].astype(np.int32)
    for k in (1, 2):
        longer = length > k
        nxt = digit[np.minimum(tok + k, len(digit) - 1)]
        value = np.where(longer, value * 10 + nxt, value)
    for i in np.flatnonzero(length > 3):  # e.g. '0255' or '1000': rare, exact
        digits = chunk[tok[i]:tok[i] + length[i]].lstrip(b"0") or b"0"
        value[i] = int(digits) if len(digits) <= 6 else 10**6
    over = np.flatnonzero(value > 255)
    if len(over):
        i = over[0]
        row = int(np.searchsorted(ends, tok[i]))
        token = chunk[tok[i]:tok[i] + min(length[i], 12)].decode() + ("..." if length[i] > 12 else "")
        raise InputError(path, f"pixel value {token} out of range 0-255 (pixel {i - row * PIXELS + 1})",
                         lineno(row))
    return value.astype(np.uint8).reshape(n, PIXELS), first, usage


def _column_problem(text: bytes, found: int, ncols: int) -> str:
    want = "emotion,pixels,Usage" if ncols == 3 else "2 columns"
    if not text.strip():
        return "empty line"
    for delimiter, label in ((b";", "';'"), (b"\t", "a tab")):
        if delimiter in text:
            return f"found {label} where ',' separates columns (wrong delimiter); expected {want}"
    if found < ncols:
        return f"missing column: found {found} of {ncols} ({want})"
    return f"too many columns: found {found}, expected {ncols} ({want})"


def _pixel_char_problem(chunk: bytes, pos: int) -> str:
    start = max(chunk.rfind(b" ", 0, pos), chunk.rfind(b",", 0, pos), chunk.rfind(b"\n", 0, pos)) + 1
    stop = min(p for p in (chunk.find(b" ", pos), chunk.find(b"\n", pos), len(chunk)) if p >= 0)
    token = chunk[start:stop][:20].decode("utf-8", "replace")
    byte = chunk[pos]
    if byte == ord("-"):
        return f"negative pixel value {token!r}; pixels are integers 0-255"
    if byte in b";\t|":
        return f"unexpected {chr(byte)!r} in the pixel list; pixels are separated by spaces"
    if byte >= 128 or (byte < 32 and byte != 9):
        return f"unexpected byte 0x{byte:02x}: binary data, not a CSV text file"
    return f"non-numeric pixel value {token!r}; pixels are integers 0-255"


def _parse_first_column(path, chunk, starts, stops, name, first_line):
    values = np.empty(len(starts), np.int64)
    for row, (s, e) in enumerate(zip(starts, stops)):
        field = chunk[s:e].strip()
        try:
            values[row] = int(field)
        except ValueError:
            shown = field[:20].decode("utf-8", "replace")
            what = f"missing {name}" if not field else f"{name} {shown!r} is not an integer"
            raise InputError(path, what, first_line + row) from None
        except OverflowError:  # more digits than a 64-bit integer holds
            raise InputError(path, f"{name} {field[:20].decode()}... is too large ({len(field)} digits)",
                             first_line + row) from None
    return values


def _parse_usage(path, chunk, starts, stops, first_line):
    usage = np.array([chunk[s + 1:e].strip().decode("utf-8", "replace") for s, e in zip(starts, stops)])
    bad = np.flatnonzero(~np.isin(usage, USAGES))
    if len(bad):
        row = bad[0]
        raise InputError(path, f"unknown Usage {usage[row][:20]!r}; expected one of {', '.join(USAGES)}",
                         first_line + row)
    return usage


def check_labels(faces: Faces):
    """Labels must be 0-6: refused with the line that holds the first bad one."""
    if faces.y is None:
        return
    bad = np.flatnonzero((faces.y < 0) | (faces.y >= len(CLASSES)))
    if len(bad):
        row = bad[0]
        line = row + 2 if not _is_arrays_file(Path(faces.source)) else None
        where = "" if line else f" (row {row})"
        raise InputError(faces.source, f"label {faces.y[row]} outside 0-6{where}", line)


def _refuse_duplicate_ids(path, ids):
    order = np.argsort(ids, kind="stable")
    same = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if len(same):
        first, again = sorted((order[same[0]], order[same[0] + 1]))
        raise InputError(path, f"duplicate id {ids[again]} (first on line {first + 2})", again + 2)


# ----------------------------------------------------------------------------- arrays file

def _parse_arrays(path) -> Faces:
    try:
        with _open_decompressed(path) as f:
            raw = f.read()
    except (EOFError, lzma.LZMAError, gzip.BadGzipFile, zlib.error) as exc:
        raise _archive_error(path, exc) from None
    if not raw:
        raise InputError(path, "file is empty")
    try:
        arrays = np.load(io.BytesIO(raw), allow_pickle=False)
        names = set(arrays.files)
        x = arrays["x"] if "x" in names else None
        y = arrays["y"] if "y" in names else None
    except Exception as exc:  # numpy and zipfile raise many kinds: a broken zip, a bad CRC, pickled objects
        raise InputError(path, f"not a readable NumPy .npz arrays file ({type(exc).__name__}: {str(exc)[:80]})"
                         ) from None
    if x is None:
        raise InputError(path, f"arrays file lacks 'x' (has {', '.join(sorted(names)) or 'nothing'})")
    if x.dtype != np.uint8 or x.shape[1:] not in ((IMAGE_SIZE, IMAGE_SIZE), (PIXELS,), (IMAGE_SIZE, IMAGE_SIZE, 1)):
        raise InputError(path, f"'x' must be uint8 images of 48x48, got {x.dtype} {x.shape}")
    if len(x) == 0:
        raise InputError(path, "no faces: 'x' has 0 rows")
    faces = Faces(x.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), source=str(path))
    if y is not None:
        if y.shape != (len(x),):
            raise InputError(path, f"'y' has shape {y.shape}, expected ({len(x)},)")
        if y.dtype.kind not in "iu":
            raise InputError(path, f"labels 'y' must be integers 0-6, got {y.dtype}")
        faces.y = y.astype(np.int64)
    return faces
