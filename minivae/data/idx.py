r"""The IDX format of LeCun's MNIST files: read it, parse it, and gunzip it in bounded steps.

IDX layout (LeCun's MNIST page): two zero bytes, a type code, the number of dimensions d, then d big-endian
uint32 sizes, then exactly ∏ sizes items. Files may be gzip-compressed; :class:`Inflater` gunzips a stream in
steps of at most 1 MiB and never past a cap, so a gzip bomb cannot fill the memory. Downloads use it too.
"""

from __future__ import annotations

import hashlib
import math
import os
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy

from minivae.files import open_regular

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"
IDX_MAX_HEADER = 4 + 4 * 255  # the magic number, then at most 255 big-endian uint32 sizes
INT64_MAX = 2**63 - 1


def read_idx(path: str | os.PathLike) -> numpy.ndarray:
    r"""Read an IDX file (gzip-compressed or raw) into a numpy array of its native shape and type.

    IDX layout (LeCun's MNIST page): two zero bytes, a type code, the number of dimensions d, then d
    big-endian uint32 sizes, then exactly ∏ sizes items. Anything else (a bad magic number, a truncated
    file, trailing bytes, sizes whose product overflows int64, an HTML error page saved under a ``.gz``
    name) is a ``ValueError`` naming the file. A gzip file is inflated in steps, never past the size its
    header declares (plus 64 KiB, to count trailing bytes), so a gzip bomb cannot fill the memory.
    """
    path = Path(path)
    dtype, shape, header = _idx_layout(_head(path), path)
    declared = header + math.prod(shape) * dtype.itemsize
    data, _ = inflate_file(path, declared + (1 << 16), f"its header declares {declared:,} bytes")
    return parse_idx(data, path)


def parse_idx(data: bytes, path: str | os.PathLike = "<bytes>") -> numpy.ndarray:
    r"""Parse the uncompressed bytes of an IDX file; ``path`` only names the file in error messages."""
    dtype, shape, header = _idx_layout(data[:IDX_MAX_HEADER], path)
    expected = math.prod(shape) * dtype.itemsize
    payload = len(data) - header
    if payload < expected:
        raise ValueError(f"{path} is truncated: shape {shape} needs {expected} bytes of data but only "
                         f"{payload} are there; delete it and download it again.")
    if payload > expected:
        raise ValueError(f"{path} has {payload - expected} trailing bytes after the {expected} bytes that "
                         f"shape {shape} needs; it is not a valid IDX file.")
    array = numpy.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _idx_layout(head: bytes, path: Any) -> tuple[numpy.dtype, tuple, int]:
    """The item type, shape and header length that an IDX file's first bytes declare; else a ValueError."""
    head = bytes(head)
    if head[:16].lstrip()[:1] == b"<":
        raise ValueError(f"{path} is an HTML or XML page, not an IDX file (a download that returned an "
                         "error page?); delete it and download it again.")
    if len(head) < 4 or head[:2] != b"\x00\x00":
        raise ValueError(f"{path} is not an IDX file: it must start with two zero bytes, a type code and "
                         f"the number of dimensions, but starts with {head[:4]!r}.")
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"{path} has the unknown IDX type code 0x{code:02X}; known codes are "
                         f"{', '.join(f'0x{c:02X}' for c in IDX_DTYPES)}.")
    if ndim == 0:
        raise ValueError(f"{path} declares 0 dimensions; an IDX file needs at least one.")
    header = 4 + 4 * ndim
    if len(head) < header:
        raise ValueError(f"{path} is truncated: its header declares {ndim} dimensions but the file ends "
                         f"after {len(head)} bytes.")
    shape = tuple(int(s) for s in numpy.frombuffer(head, ">u4", count=ndim, offset=4))
    dtype = numpy.dtype(IDX_DTYPES[code])
    # ∏ sizes in Python integers, which cannot overflow, then the int64 limit numpy's shapes live under
    if math.prod(shape) * dtype.itemsize > INT64_MAX:
        raise ValueError(f"{path} declares the shape {shape}, whose {math.prod(shape):,} items overflow int64; "
                         "no file holds that much, so it is damaged or not an IDX file.")
    return dtype, shape, header


def open_idx(path: Path) -> BinaryIO:
    """Open a data file on disk for reading: the one place ``minivae.data`` opens a file it reads."""
    # regular files only: a FIFO, device or socket is one sentence, never a read that blocks forever
    return open_regular(path, "IDX file")


def _head(path: Path) -> bytes:
    """The first uncompressed bytes of ``path``, enough for any IDX header."""
    with open_idx(path) as f:
        raw = f.read(1 << 16)
    if raw[:2] != GZIP_MAGIC:
        return raw[:IDX_MAX_HEADER]
    try:
        return zlib.decompressobj(31).decompress(raw, IDX_MAX_HEADER)
    except zlib.error as err:
        raise ValueError(f"{path} is a damaged gzip file ({err}); delete it and download it again.") from None


def inflate_file(path: Path, limit: int, why: str) -> tuple[bytearray, str]:
    """The uncompressed bytes of ``path`` and their MD5, read in 1 MiB steps and never past ``limit``."""
    inflater = Inflater(limit, why, keep=True)
    try:
        with open_idx(path) as f:
            while chunk := f.read(1 << 20):
                inflater.feed(chunk)
        digest = inflater.finish()
    except RefusedError as err:
        raise ValueError(f"{path} {err}; delete it and download it again.") from None
    return inflater.out, digest


class RefusedError(Exception):
    """What is wrong with a file or a download, as a predicate ("is a damaged gzip file") for a subject."""


class Inflater:
    """Gunzips a byte stream in steps (raw IDX bytes pass through), never producing more than ``limit`` bytes.

    Keeps the MD5 of what comes out, and the output itself when ``keep``. A stream that would inflate past
    ``limit`` (a gzip bomb) stops at ``limit + 1`` bytes with ``RefusedError``, whose text ends with ``why``.
    """

    def __init__(self, limit: int, why: str, keep: bool) -> None:
        self.limit, self.why, self.size, self.md5 = limit, why, 0, hashlib.md5()
        self.out = bytearray() if keep else None
        self.gzip: bool | None = None  # decided by the first two bytes
        self.start, self.decoder = b"", zlib.decompressobj(31)

    def feed(self, chunk: bytes) -> None:
        if self.gzip is None:
            self.start += chunk
            if len(self.start) < 2:
                return
            chunk, self.start, self.gzip = self.start, b"", self.start[:2] == GZIP_MAGIC
        if not self.gzip:
            self._emit(chunk)
            return
        try:
            self._inflate(chunk)
        except zlib.error as err:
            raise RefusedError(f"is a damaged gzip file ({err})") from None

    def _inflate(self, chunk: bytes) -> None:
        while True:
            if self.decoder.eof:  # another gzip member may follow (zero bytes between members are padding)
                chunk = chunk.lstrip(b"\x00")
                if not chunk:
                    return
                self.decoder = zlib.decompressobj(31)
            # at most 1 MiB per step, and at most one byte past the limit: enough to tell that it is too big
            step = min(self.limit - self.size + 1, 1 << 20)
            out = self.decoder.decompress(chunk, step)
            self._emit(out)
            chunk = self.decoder.unconsumed_tail or self.decoder.unused_data
            if not chunk and len(out) < step:
                return

    def _emit(self, out: bytes) -> None:
        self.size += len(out)
        if self.size > self.limit:
            raise RefusedError(f"inflates to more than {self.limit:,} bytes ({self.why})")
        self.md5.update(out)
        if self.out is not None:
            self.out += out

    def finish(self) -> str:
        """The MD5 of the whole output, once the stream has ended."""
        if self.gzip is None:
            self.gzip = False
            self._emit(self.start)
        if self.gzip and not self.decoder.eof:
            raise RefusedError("is a damaged gzip file (it ends in the middle of the compressed stream)")
        return self.md5.hexdigest()
