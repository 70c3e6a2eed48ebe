"""Real tokenizers: exact prompt counts, tokenize endpoints, token-exact streams (TOK-*)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from tokenizers import Tokenizer

from tests.conftest import ServerFactory
from tests.support import RunningServer
from tests.tokenizer_support import make_word_tokenizer, qwen_tokenizer_dir


@pytest.fixture(scope="module")
def word_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_word_tokenizer(tmp_path_factory.mktemp("tok") / "word-model")


@pytest.fixture(scope="module")
def word_server(server_factory: ServerFactory, word_dir: Path) -> RunningServer:
    return server_factory(
        "version: 1\n"
        f"model: {{name: word, max-model-len: 512, tokenizer: {{path: '{word_dir}'}}}}\n"
    )


def post(server: RunningServer, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=30)


def test_prompt_tokens_equal_the_tokenizers_count(
    word_server: RunningServer, word_dir: Path
) -> None:
    reference = Tokenizer.from_file(str(word_dir / "tokenizer.json"))
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hello world"},
                {"type": "text", "text": "how are you?"},
            ],
        },
    ]
    rendered = "[SYSTEM] be brief [END] [USER] hello world\nhow are you? [END] [ASSISTANT]"
    chat = post(word_server, "/v1/chat/completions", {"model": "word", "messages": messages})
    assert chat.json()["usage"]["prompt_tokens"] == len(reference.encode(rendered).ids)
    text = "the quick brown fox jumps over the lazy dog."
    completion = post(word_server, "/v1/completions", {"model": "word", "prompt": text})
    assert completion.json()["usage"]["prompt_tokens"] == len(reference.encode(text).ids)
    tokenized = post(word_server, "/tokenize", {"model": "word", "messages": messages}).json()
    assert tokenized["tokens"] == reference.encode(rendered).ids
    assert tokenized["count"] == len(tokenized["tokens"])
    assert tokenized["max_model_len"] == 512
    prompt_ids = post(word_server, "/tokenize", {"prompt": text, "return_token_strs": True}).json()
    assert prompt_ids["tokens"] == reference.encode(text).ids
    assert prompt_ids["token_strs"][:3] == ["the", "quick", "brown"]
    detokenized = post(word_server, "/detokenize", {"tokens": prompt_ids["tokens"]}).json()
    assert detokenized["prompt"] == reference.decode(prompt_ids["tokens"])


def test_render_endpoints_API_RENDER_1(word_server: RunningServer, word_dir: Path) -> None:
    reference = Tokenizer.from_file(str(word_dir / "tokenizer.json"))
    completions = post(
        word_server, "/v1/completions/render", {"model": "word", "prompt": ["hello world", "test"]}
    ).json()
    assert completions == [
        {"token_ids": reference.encode("hello world").ids},
        {"token_ids": reference.encode("test").ids},
    ]
    ids = post(word_server, "/v1/completions/render", {"model": "word", "prompt": [[5, 6], [7]]})
    assert ids.json() == [{"token_ids": [5, 6]}, {"token_ids": [7]}]
    chat = post(
        word_server,
        "/v1/chat/completions/render",
        {"model": "word", "messages": [{"role": "user", "content": "hello"}]},
    ).json()
    assert chat == {"token_ids": reference.encode("[USER] hello [END] [ASSISTANT]").ids}
    assert (
        post(word_server, "/v1/completions/render", {"model": "nope", "prompt": "x"}).status_code
        == 404
    )
    assert (
        post(
            word_server, "/v1/chat/completions/render", {"model": "word", "messages": []}
        ).status_code
        == 400
    )


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (
            {"prompt": "x", "messages": [{"role": "user", "content": "x"}]},
            400,
            "both prompt and messages",
        ),
        ({}, 400, "either prompt or messages"),
        ({"model": "other", "prompt": "x"}, 404, "does not exist"),
        ({"prompt": 5}, 400, "prompt"),
    ],
)
def test_bad_tokenize_requests_API_TOK_1(
    word_server: RunningServer, body: dict[str, object], status: int, fragment: str
) -> None:
    response = post(word_server, "/tokenize", body)
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]
    assert post(word_server, "/detokenize", {"tokens": "x"}).status_code == 400


@pytest.fixture(scope="module")
def qwen_server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(
        "version: 1\nmodel: {name: Qwen/Qwen2.5-1.5B-Instruct, max-model-len: 200000, "
        f"tokenizer: {{path: '{qwen_tokenizer_dir()}'}}}}\n"
        "engine: {max-num-seqs: 16}\n"
        "latency: {time-to-first-token: 20ms, inter-token-latency: 10ms}\n"
    )


def test_qwen_chat_prompt_count_matches_transformers(qwen_server: RunningServer) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir()))
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Explain KV caching in one line."},
    ]
    rendered = reference.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = len(reference(rendered, add_special_tokens=False)["input_ids"])
    body = post(
        qwen_server,
        "/v1/chat/completions",
        {"model": "Qwen/Qwen2.5-1.5B-Instruct", "messages": messages, "max_tokens": 3},
    ).json()
    assert body["usage"]["prompt_tokens"] == expected


def test_each_streamed_chunk_is_exactly_one_qwen_token(qwen_server: RunningServer) -> None:
    reference = Tokenizer.from_file(str(qwen_tokenizer_dir() / "tokenizer.json"))
    response = post(
        qwen_server,
        "/v1/chat/completions",
        {
            "model": "Qwen/Qwen2.5-1.5B-Instruct",
            "messages": [{"role": "user", "content": "Tell me a story."}],
            "max_tokens": 200,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    chunks = [json.loads(f[6:]) for f in response.text.split("\n\n") if f.startswith("data: {")]
    texts = [
        c["choices"][0]["delta"]["content"]
        for c in chunks
        if c["choices"] and c["choices"][0]["delta"].get("content")
    ]
    assert len(texts) == 200
    assert all(len(reference.encode(t, add_special_tokens=False).ids) == 1 for t in texts)
    assert (
        sum(len(reference.encode(t, add_special_tokens=False).ids) for t in texts)
        == chunks[-1]["usage"]["completion_tokens"]
    )


def test_a_100k_token_prompt_does_not_delay_other_streams(qwen_server: RunningServer) -> None:
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 10_000  # ~100k tokens

    async def run() -> tuple[float, int]:
        async with httpx.AsyncClient(base_url=qwen_server.base_url, timeout=60) as client:
            gaps: list[float] = []

            async def stream() -> None:
                last = None
                payload = {
                    "model": "Qwen/Qwen2.5-1.5B-Instruct",
                    "prompt": "hi",
                    "max_tokens": 60,
                    "ignore_eos": True,
                    "stream": True,
                }
                async with client.stream("POST", "/v1/completions", json=payload) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: {"):
                            now = time.perf_counter()
                            if last is not None:
                                gaps.append(now - last)
                            last = now

            streams = [asyncio.create_task(stream()) for _ in range(4)]
            await asyncio.sleep(0.2)
            big = await client.post(
                "/v1/completions",
                json={
                    "model": "Qwen/Qwen2.5-1.5B-Instruct",
                    "prompt": long_prompt,
                    "max_tokens": 1,
                },
            )
            await asyncio.gather(*streams)
            return max(gaps), big.json()["usage"]["prompt_tokens"]

    worst_gap, prompt_tokens = asyncio.run(run())
    assert prompt_tokens > 99_000
    assert worst_gap - 0.010 <= 0.020, (
        f"a stream waited {worst_gap * 1000:.1f} ms for a 10 ms token"
    )


def test_model_id_is_found_in_the_local_hf_cache(
    server_factory: ServerFactory, word_dir: Path, tmp_path: Path
) -> None:
    snapshot = tmp_path / "hf" / "hub" / "models--acme--word-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (snapshot / name).write_bytes((word_dir / name).read_bytes())
    server = server_factory(
        "version: 1\nmodel: {name: acme/word-model, tokenizer: {model-id: acme/word-model}}\n",
        env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"},
    )
    body = post(server, "/tokenize", {"prompt": "hello world"}).json()
    assert body["count"] == 2


def test_missing_tokenizer_is_a_clear_startup_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support import PROJECT_ROOT, free_port

    scenario = tmp_path / "s.yaml"
    scenario.write_text("version: 1\nmodel: {tokenizer: {model-id: nobody/nothing}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "llmsim", "run", str(scenario), "--port", str(free_port())],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
        env={"HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "tokenizer for 'nobody/nothing': not in the local HuggingFace cache" in result.stderr
