"""Known answers for llm-d's block hashes, computed here from the definition (KV-2).

The expected values are built independently of llmsim's implementation: FNV-1a-64 written
out in the test, and canonical CBOR encoded by hand, byte by byte.
"""

from llmsim.engine.block_hash import block_hashes, fnv1a_64, root_hash


def fnv(data: bytes) -> int:
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) % 2**64
    return h


def cbor_uint(n: int) -> bytes:
    """Canonical CBOR unsigned integer (major type 0), shortest form."""
    if n < 24:
        return bytes([n])
    for marker, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 2 ** (8 * width):
            return bytes([marker]) + n.to_bytes(width, "big")
    raise ValueError(n)


def cbor_array_header(length: int) -> bytes:
    return bytes([0x80 | length]) if length < 24 else bytes([0x98, length])


def cbor_text(text: str) -> bytes:
    """Canonical CBOR text string (major type 3)."""
    raw = text.encode()
    header = bytes([0x60 | len(raw)]) if len(raw) < 24 else bytes([0x78, len(raw)])
    return header + raw


def test_fnv1a_64_known_values() -> None:
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8


def test_root_input_matches_the_documented_bytes_KV_2() -> None:
    documented = bytes.fromhex("831BCBF29CE484222325F6616D")
    assert cbor_array_header(3) + cbor_uint(fnv(b"")) + b"\xf6" + cbor_text("m") == documented
    assert root_hash("", "m") == fnv(documented)


def test_block_chain_matches_the_definition_KV_2() -> None:
    model, seed, size = "Qwen/Qwen2.5-1.5B-Instruct", "42", 4
    ids = [1, 23, 300, 70000, 4294967295, 5, 6, 7, 99]  # 2 full blocks + a partial tail
    root = fnv(cbor_array_header(3) + cbor_uint(fnv(seed.encode())) + b"\xf6" + cbor_text(model))
    expected = []
    parent = root
    for block in (ids[0:4], ids[4:8]):
        encoded = cbor_array_header(3) + cbor_uint(parent) + cbor_array_header(4)
        encoded += b"".join(cbor_uint(i) for i in block) + b"\xf6"
        parent = fnv(encoded)
        expected.append(parent)
    assert root_hash(seed, model) == root
    assert block_hashes(root, ids, size) == expected


def test_only_full_blocks_are_hashed_and_prefixes_share_hashes() -> None:
    root = root_hash("", "m")
    assert block_hashes(root, list(range(15)), 16) == []
    long = block_hashes(root, list(range(40)), 16)
    assert len(long) == 2
    assert block_hashes(root, list(range(32)) + [999] * 8, 16)[:2] == long
    assert block_hashes(root_hash("", "other"), list(range(40)), 16) != long
