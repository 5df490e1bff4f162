"""Look for a knowledge base's bytes in files on disk: strings (text, names), hexadecimal ids, and
float32 vectors, both as given to the stores and as Chroma's HNSW files hold them (normalised, so not
byte for byte the same). Used to prove that a deleted document leaves nothing behind."""

from __future__ import annotations

import re
import struct
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_HEX_RUN = re.compile(rb"[0-9a-f]{32,}")
_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64: windows of words hash in one pass
_BASE_INVERSE = pow(_BASE, -1, 2**64)


@dataclass
class Found:
    """What a scan found, and in which files."""

    bytes_scanned: int = 0
    files: int = 0
    where: dict[str, set[str]] = field(default_factory=dict)  # item found -> files holding it

    def add(self, items: Iterable[str], path: Path) -> None:
        for item in items:
            self.where.setdefault(item, set()).add(str(path))

    def of(self, items: Collection[str]) -> set[str]:
        return set(self.where) & set(items)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def scan(root: Path, *, strings: Collection[str] = (), ids: Collection[str] = (),
         vectors: dict[str, np.ndarray] | None = None) -> Found:
    """Every byte of every file under ``root``: which ``strings`` occur, which 32-character hex ``ids``,
    which ``vectors`` (name -> float32 vector) byte for byte, at any offset."""
    found = Found()
    hashed = _vector_hashes(vectors or {})
    for path in files_under(root):
        data = path.read_bytes()
        found.bytes_scanned += len(data)
        found.files += 1
        found.add((s for s in strings if s.encode() in data), path)
        found.add(_hex_ids(data) & set(ids), path)
        found.add(_vectors_in(data, hashed), path)
    return found


def names_under(root: Path) -> str:
    """Every path under ``root``, one a line: a name can carry an id too."""
    return "\n".join(str(p.relative_to(root)) for p in root.rglob("*"))


def hnsw_matches(root: Path, vectors: dict[str, np.ndarray], *, cosine: float = 0.9999) -> Found:
    """Which ``vectors`` lie in a slot of an HNSW file under ``root`` (Chroma's ``data_level0.bin``, read
    with its ``header.bin``), used or not: hnswlib stores them normalised, and deleting only marks a slot."""
    found = Found()
    for header in sorted(root.rglob("header.bin")):
        slots = _hnsw_slots(header.parent)
        found.bytes_scanned += slots.nbytes
        found.files += 1
        same_dim = {name: v for name, v in vectors.items() if len(v) == slots.shape[1]}
        if not same_dim or not len(slots):
            continue
        names = list(same_dim)
        wanted = _unit(np.stack([same_dim[n] for n in names]))
        with np.errstate(all="ignore"):  # unused slots hold whatever memory held: NaNs, huge numbers
            similarity = np.nan_to_num(_unit(np.nan_to_num(slots.astype(np.float64))) @ wanted.T)
        found.add((names[i] for i in np.flatnonzero((similarity >= cosine).any(axis=0))), header.parent)
    return found


def _hnsw_slots(segment: Path) -> np.ndarray:
    """The vector of every slot in ``data_level0.bin``. The header is hnswlib's, after a 4-byte version:
    offsetLevel0, max_elements, cur_element_count, size_data_per_element, label_offset, offsetData."""
    header = (segment / "header.bin").read_bytes()
    if len(header) != 100:
        raise AssertionError(f"{segment / 'header.bin'}: {len(header)} bytes, not the 100 of the HNSW header "
                             "layout this scan reads (chromadb changed it?): update tests/helpers/traces.py")
    _, _, _, _, size, label_offset, data_offset = struct.unpack_from("<I6Q", header)
    raw = np.frombuffer((segment / "data_level0.bin").read_bytes(), dtype=np.uint8)
    count = len(raw) // size
    rows = raw[: count * size].reshape(count, size)[:, data_offset:label_offset]
    return np.ascontiguousarray(rows).view(np.float32)


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def _hex_ids(data: bytes) -> set[str]:
    """Every 32-character window of every run of lower-case hex digits."""
    out: set[str] = set()
    for run in _HEX_RUN.finditer(data):
        text = run.group().decode()
        out.update(text[i : i + 32] for i in range(len(text) - 31))
    return out


def _vector_hashes(vectors: dict[str, np.ndarray]) -> dict[int, dict[int, list[tuple[str, bytes]]]]:
    """width in words -> {hash of the vector's words -> [(name, bytes)]}: two chunks can have the same
    vector (a hashing embedder's buckets collide), and each name is found with it."""
    out: dict[int, dict[int, list[tuple[str, bytes]]]] = {}
    for name, vector in vectors.items():
        raw = np.asarray(vector, dtype=np.float32).tobytes()
        words = np.frombuffer(raw, dtype="<u4").astype(np.uint64)
        key = int(_hash_windows(words, len(words))[0])
        out.setdefault(len(words), {}).setdefault(key, []).append((name, raw))
    return out


def _vectors_in(data: bytes, hashed: dict[int, dict[int, list[tuple[str, bytes]]]]) -> set[str]:
    """Names of the vectors whose bytes occur in ``data`` at any offset: every window of words is hashed
    at each of the four byte alignments, and a matching hash is confirmed byte for byte."""
    found: set[str] = set()
    for offset in range(4):
        count = (len(data) - offset) // 4
        if count <= 0:
            continue
        words = np.frombuffer(data, dtype="<u4", count=count, offset=offset).astype(np.uint64)
        for width, targets in hashed.items():
            hashes = _hash_windows(words, width)
            keys = np.fromiter(targets, dtype=np.uint64, count=len(targets))
            for position in np.flatnonzero(np.isin(hashes, keys)):
                start = offset + 4 * int(position)
                found.update(name for name, raw in targets[int(hashes[position])]
                             if data[start : start + len(raw)] == raw)
    return found


def _hash_windows(words: np.ndarray, width: int) -> np.ndarray:
    """For each run of ``width`` consecutive words, sum(word[k] * BASE**-k) modulo 2**64, all at once from
    prefix sums (uint64 arithmetic wraps around, which is the modulo)."""
    if len(words) < width:
        return np.zeros(0, dtype=np.uint64)
    n = len(words)
    inverse = np.cumprod(np.full(n, _BASE_INVERSE, dtype=np.uint64)) * np.uint64(_BASE)  # BASE**-j
    forward = np.cumprod(np.full(n, _BASE, dtype=np.uint64)) * np.uint64(_BASE_INVERSE)  # BASE**j
    prefix = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(words * inverse, dtype=np.uint64)])
    return (prefix[width:] - prefix[: n - width + 1]) * forward[: n - width + 1]
