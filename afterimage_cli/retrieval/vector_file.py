"""The vectors of a local index, one file per corpus content and embedder, shared by every run.

Embedding is the costly part of an index (model calls, or CPU for the sparse default), so it is done
once per folder and kept in a file; each run loads that file into a private in-memory Qdrant
collection, so any number of runs can read one index at once. The file is written under an exclusive
lock of its own (a run that finds another building the same index waits for it, then reads its file)
and appears by an atomic rename, so a reader sees a complete file or none.

Layout: one JSON header line (`kind`, `count`, and `dim` for dense or `nnz` for sparse vectors), then
little-endian arrays: dense, count × dim float32; sparse, count + 1 uint32 offsets, then nnz uint32
term indices and nnz float32 values.
"""

from __future__ import annotations

import fcntl
import os
import sys
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from .embeddings import Vector
from .sparse import SparseVectorData

SUFFIX = ".vectors"


def _little(values: array) -> array:  # type: ignore[type-arg]
    """`values` in little-endian order (a no-op on little-endian machines)."""
    if sys.byteorder == "big":
        values = array(values.typecode, values)
        values.byteswap()
    return values


def _array(typecode: str, data: bytes) -> array:  # type: ignore[type-arg]
    values = array(typecode)
    values.frombytes(data)
    return _little(values)


def encode(kind: str, vectors: Sequence[Vector]) -> bytes:
    """The file's bytes for `vectors` of one kind ("sparse" or "dense")."""
    body: list[array] = []  # type: ignore[type-arg]
    if kind == "sparse":
        offsets, indices, values = array("I", [0]), array("I"), array("f")
        for vector in vectors:
            if not isinstance(vector, SparseVectorData):
                raise TypeError("a sparse index got a dense vector")
            indices.extend(vector.indices)
            values.extend(vector.values)
            offsets.append(len(indices))
        header = {"kind": kind, "count": len(vectors), "nnz": len(indices)}
        body = [offsets, indices, values]
    else:
        first = vectors[0] if vectors else []
        dim = 0 if isinstance(first, SparseVectorData) else len(first)
        flat = array("f")
        for vector in vectors:
            if isinstance(vector, SparseVectorData) or len(vector) != dim:
                raise TypeError(f"a dense index needs vectors of one size ({dim})")
            flat.extend(vector)
        header = {"kind": kind, "count": len(vectors), "dim": dim}
        body = [flat]
    return orjson.dumps(header) + b"\n" + b"".join(_little(part).tobytes() for part in body)


def decode(data: bytes, kind: str, count: int) -> list[Vector] | None:
    """The vectors in `data`, or None unless it holds exactly `count` vectors of `kind`."""
    head, newline, body = data.partition(b"\n")
    try:
        header = orjson.loads(head) if newline else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(header, dict) or header.get("kind") != kind or header.get("count") != count:
        return None
    if kind == "sparse":
        nnz = header.get("nnz")
        if not isinstance(nnz, int) or len(body) != 4 * (count + 1 + 2 * nnz):
            return None
        split = 4 * (count + 1)
        offsets = _array("I", body[:split])
        indices = _array("I", body[split : split + 4 * nnz]).tolist()
        values = _array("f", body[split + 4 * nnz :]).tolist()
        if offsets[0] != 0 or offsets[-1] != nnz:
            return None
        bounds = list(zip(offsets[:-1], offsets[1:], strict=True))
        return [SparseVectorData(indices=indices[a:b], values=values[a:b]) for a, b in bounds]
    dim = header.get("dim")
    if not isinstance(dim, int) or len(body) != 4 * count * dim:
        return None
    flat = _array("f", body).tolist()
    return [flat[i * dim : (i + 1) * dim] for i in range(count)]


def load_vectors(path: Path, kind: str, count: int) -> list[Vector] | None:
    """The vectors stored at `path`, or None when there is no complete file for `count` vectors of `kind`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode(data, kind, count)


def save_vectors(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically and durably: a temp file, fsync, rename, fsync of the folder."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def load_or_build(
    path: Path, kind: str, count: int, embed: Callable[[], Sequence[Vector]]
) -> tuple[list[Vector], bool]:
    """(the vectors of the index at `path`, whether this call embedded them). Many processes may call it
    at once: one embeds and writes the file, the others wait for it and read the file."""
    vectors = load_vectors(path, kind, count)
    if vectors is not None:
        return vectors, False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file closes, or the process dies
        vectors = load_vectors(path, kind, count)
        if vectors is not None:
            return vectors, False
        data = encode(kind, embed())
        save_vectors(path, data)
    # What the file holds (float32), not what the embedder returned: a run that built the index and a
    # run that read it score every query the same.
    built = decode(data, kind, count)
    if built is None:
        raise RuntimeError(f"{path}: the vectors just written do not read back")
    return built, True
