"""Known answers for llm-d's block hashes, computed here from the definition (KV-2).

The expected values are built independently of llmsim's implementation: FNV-1a-64 written
out in the test support, and canonical CBOR encoded by hand, byte by byte.
"""

from llmsim.engine.block_hash import block_hashes, fnv1a_64, root_hash
from tests.kv_support import cbor_array_header, cbor_text, cbor_uint, expected_chain
from tests.kv_support import fnv64 as fnv


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
    expected = expected_chain(seed, model, ids, size)
    assert len(expected) == 2
    assert root_hash(seed, model) == root
    assert block_hashes(root, ids, size) == expected


def test_only_full_blocks_are_hashed_and_prefixes_share_hashes() -> None:
    root = root_hash("", "m")
    assert block_hashes(root, list(range(15)), 16) == []
    long = block_hashes(root, list(range(40)), 16)
    assert len(long) == 2
    assert block_hashes(root, list(range(32)) + [999] * 8, 16)[:2] == long
    assert block_hashes(root_hash("", "other"), list(range(40)), 16) != long
