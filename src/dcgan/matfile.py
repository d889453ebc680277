"""A minimal reader for MATLAB v5 .mat files (the SVHN format): numeric matrices only, zlib
compressed or not, streamed so a 1.3 GB array is copied in chunks instead of loaded whole.
Enough for SVHN without making scipy a dependency; anything else raises DataError.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

MI_MATRIX, MI_COMPRESSED = 14, 15
# storage types of data elements (miINT8 ... miUINT64) -> numpy dtype
_MI_DTYPES = {
    1: "i1",
    2: "u1",
    3: "i2",
    4: "u2",
    5: "i4",
    6: "u4",
    7: "f4",
    9: "f8",
    12: "i8",
    13: "u8",
}
_NUMERIC_CLASSES = set(range(6, 16))  # mxDOUBLE_CLASS .. mxUINT64_CLASS


class _Reader:
    """Exact reads from a file, or from a zlib stream inside it, never holding all of it."""

    def __init__(self, f, compressed_bytes: int | None = None):
        self.f, self.left = f, compressed_bytes
        self.z = zlib.decompressobj() if compressed_bytes is not None else None
        self.buf = b""

    def read(self, n: int) -> bytes:
        if self.z is None:
            data = self.f.read(n)
        else:
            while len(self.buf) < n:
                feed = self.z.unconsumed_tail
                if not feed:
                    feed = self.f.read(min(self.left, 1 << 20)) if self.left else b""
                    if not feed:
                        break
                    self.left -= len(feed)
                # bounded output: a huge array comes out a chunk at a time
                self.buf += self.z.decompress(feed, max(n - len(self.buf), 1 << 16))
            data, self.buf = self.buf[:n], self.buf[n:]
        if len(data) != n:
            raise DataError("the .mat file is truncated")
        return data


@dataclass
class MatArray:
    """One numeric variable: `read_rows(k)` returns the next k slices along the last axis (the
    data are column-major, so those are contiguous), shaped dims[:-1] in Fortran order."""

    name: str
    dims: tuple[int, ...]
    dtype: np.dtype
    _reader: _Reader
    _left: int

    def read_rows(self, k: int) -> np.ndarray:
        per_row = int(np.prod(self.dims[:-1])) * self.dtype.itemsize
        k = min(k, self._left // per_row)
        raw = self._reader.read(k * per_row)
        self._left -= len(raw)
        flat = np.frombuffer(raw, self.dtype)
        return flat.reshape((*self.dims[:-1], k), order="F")

    def read_all(self) -> np.ndarray:
        return self.read_rows(self.dims[-1] if self.dims else 0)


def _tag(r: _Reader, little: bool) -> tuple[int, int, bytes | None]:
    """(type, nbytes, inline data) of the next data element. A small element packs its type and
    size into the first word and up to 4 bytes of data into the second."""
    e = "<" if little else ">"
    mtype, nbytes = struct.unpack(e + "II", raw := r.read(8))
    if mtype >> 16:
        return mtype & 0xFFFF, mtype >> 16, raw[4 : 4 + (mtype >> 16)]
    return mtype, nbytes, None


def _element(r: _Reader, little: bool) -> tuple[int, bytes]:
    mtype, nbytes, inline = _tag(r, little)
    if inline is not None:
        return mtype, inline
    return mtype, r.read(nbytes + (-nbytes % 8))[:nbytes]


def iter_arrays(path: Path) -> Iterator[MatArray]:
    """The numeric matrices of a v5 .mat file, in file order. Consume (or skip) each one before
    asking for the next: the file is read as a stream."""
    with open(path, "rb") as f:
        header = f.read(128)
        if len(header) < 128 or not header.startswith(b"MATLAB 5.0 MAT-file"):
            raise DataError(f"{path} is not a MATLAB v5 .mat file")
        little = header[126:128] == b"IM"
        e = "<" if little else ">"
        while True:
            head = f.read(8)
            if len(head) < 8:
                return
            outer, size = struct.unpack(e + "II", head)
            start = f.tell()
            compressed = outer == MI_COMPRESSED
            r = _Reader(f, size) if compressed else _Reader(f)
            mtype = _tag(r, little)[0] if compressed else outer
            if mtype == MI_MATRIX:
                array = _matrix(r, little, path)
                if array is not None:
                    yield array
            f.seek(start + size + (0 if compressed else -size % 8))


def _matrix(r: _Reader, little: bool, path: Path) -> MatArray | None:
    e = "<" if little else ">"
    _, flags = _element(r, little)
    mclass = struct.unpack(e + "I", flags[:4])[0] & 0xFF
    if mclass not in _NUMERIC_CLASSES or struct.unpack(e + "I", flags[:4])[0] & 0x800:
        return None  # cells, structs, sparse or complex: not needed here
    _, dims_raw = _element(r, little)
    dims = tuple(int(d) for d in np.frombuffer(dims_raw, e + "i4"))
    _, name = _element(r, little)
    mtype, nbytes, inline = _tag(r, little)
    if inline is not None:  # a tiny array stored inside its tag
        r = _Reader(io.BytesIO(inline))
    if mtype not in _MI_DTYPES:
        raise DataError(f"{path}: unsupported .mat data type {mtype}")
    dtype = np.dtype(e + _MI_DTYPES[mtype])
    if nbytes != int(np.prod(dims)) * dtype.itemsize:
        raise DataError(f"{path}: variable {name.decode(errors='replace')} has a wrong size")
    return MatArray(name.decode("latin-1"), dims, dtype, r, nbytes)
