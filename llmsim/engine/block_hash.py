"""KV block hashes exactly as llm-d's token processor computes them (KV-2).

``seed = FNV-1a-64(hash seed bytes)``; the chain's root is ``FNV-1a-64(CBOR([seed, null,
model]))``; block i of ``block_size`` prompt token ids hashes ``FNV-1a-64(CBOR([parent, ids,
extra]))`` with parent = the previous block's hash (the root for the first). Only full blocks
count. CBOR is canonical (shortest integers, null = 0xF6); ``extra`` is null for text.
"""

from __future__ import annotations

from collections.abc import Sequence

import cbor2

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF


def fnv1a_64(data: bytes) -> int:
    """The 64-bit FNV-1a hash of ``data``."""
    value = _FNV64_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV64_PRIME) & _MASK64
    return value


def root_hash(hash_seed: str, model_name: str) -> int:
    """The hash every chain of ``model_name`` starts from."""
    seed = fnv1a_64(hash_seed.encode())
    return fnv1a_64(cbor2.dumps([seed, None, model_name], canonical=True))


def block_hashes(root: int, token_ids: Sequence[int], block_size: int) -> list[int]:
    """The chained hashes of every full block of ``token_ids``."""
    hashes: list[int] = []
    parent = root
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        block = list(token_ids[start : start + block_size])
        parent = fnv1a_64(cbor2.dumps([parent, block, None], canonical=True))
        hashes.append(parent)
    return hashes
