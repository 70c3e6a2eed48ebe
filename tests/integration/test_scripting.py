"""Failure injection, rules and phases as a client sees them (FAIL-*, HDR-*, rules, phases)."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.metrics_support import scrape, value
from tests.support import RunningServer

EXPECTED_FAILURES = {
    "rate_limit": (
        429,
        "RateLimitError",
        None,
        "Rate limit reached for base/model in organization org-xxx on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1.",
    ),
    "invalid_api_key": (401, "AuthenticationError", None, "Incorrect API key provided."),
    "context_length": (
        400,
        "BadRequestError",
        "messages",
        "This model's maximum context length is 4096 tokens. However, your messages resulted in "
        "4500 tokens.",
    ),
    "server_error": (
        503,
        "InternalServerError",
        None,
        "The server is overloaded or not ready yet.",
    ),
    "invalid_request": (
        400,
        "BadRequestError",
        "model",
        "Invalid request: missing required parameter 'model'.",
    ),
    "model_not_found": (
        404,
        "NotFoundError",
        "model",
        "The model 'base/model-nonexistent' does not exist",
    ),
}


def chat(server: RunningServer, content: str = "hi", **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", None)
    return httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": content}], **extra},
        headers=headers,
        timeout=30,
    )


@pytest.fixture(scope="module")
def plain(server_factory: ServerFactory) -> RunningServer:
    return server_factory(
        "version: 1\nseed: 9\nmodel: {name: base/model, served-model-name: [m]}\n"
        "engine: {max-num-seqs: 64}\n"
    )


@pytest.mark.parametrize("kind", sorted(EXPECTED_FAILURES))
def test_each_failure_type_has_upstreams_status_and_body_FAIL_2(
    plain: RunningServer, kind: str
) -> None:
    update = {"failure-injection-rate": 100, "failure-types": [kind]}
    assert httpx.post(f"{plain.base_url}/admin/config", json=update).status_code == 200
    try:
        for path, body in (
            (
                "/v1/chat/completions",
                {"model": "m", "messages": [{"role": "user", "content": "x"}]},
            ),
            ("/v1/completions", {"model": "whatever", "prompt": "x"}),
        ):
            response = httpx.post(f"{plain.base_url}{path}", json=body)
            status, kind_type, param, message = EXPECTED_FAILURES[kind]
            assert response.status_code == status
            assert response.json() == {
                "error": {"message": message, "type": kind_type, "param": param, "code": status}
            }
    finally:
        httpx.post(f"{plain.base_url}/admin/config", json={"failure-injection-rate": 0})


def failing_indices(server: RunningServer, count: int) -> list[int]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        return [
            index
            for index in range(count)
            if client.post(
                "/v1/completions", json={"model": "m", "prompt": "x", "max_tokens": 1}
            ).status_code
            != 200
        ]


def test_rate_30_fails_30_percent_the_same_requests_every_run_FAIL_1(
    server_factory: ServerFactory,
) -> None:
    scenario = "version: 1\nseed: 77\nmodel: {name: m}\nfailures: {failure-injection-rate: 30%}\n"
    first = failing_indices(server_factory(scenario), 1000)
    assert len(first) / 1000 == pytest.approx(0.30, abs=0.04)
    assert failing_indices(server_factory(scenario), 1000) == first


@pytest.mark.parametrize(
    ("value", "status", "message"),
    [
        ("429", 429, "Simulated error triggered by X-Return-Error header (code 429)"),
        ("503", 503, "Simulated error triggered by X-Return-Error header (code 503)"),
        ("soon", 400, 'Invalid X-Return-Error header value "soon": must be an integer'),
        ("200", 400, "must be between 400 and 599"),
    ],
)
def test_x_return_error_header_FAIL_3(
    plain: RunningServer, value: str, status: int, message: str
) -> None:
    for path, body in (
        ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        ("/v1/completions", {"model": "m", "prompt": "x"}),
    ):
        response = httpx.post(
            f"{plain.base_url}{path}", json=body, headers={"X-Return-Error": value}
        )
        assert response.status_code == status
        assert message in response.json()["error"]["message"]


RULES = """
version: 1
seed: 1
model: {name: base/model, served-model-name: [m, m-alias]}
latency: {time-to-first-token: 10ms, inter-token-latency: 10ms}
rules:
  - name: weather
    when: {prompt-matches: '(?i)weather', endpoint: chat}
    reply: >-
      It is {{ rng.choice(['sunny', 'rainy']) }} for {{ model }}:
      {{ prompt | truncate(12, true, '') }}|{{ request.max_tokens }}
  - when: {header: {X-Scenario-Case: throttle}}
    error: rate_limit
  - when: {header: {X-Scenario-Case: custom}}
    error: {status: 418, type: TeapotError, message: "short and stout"}
  - when: {model: m-ali*}
    latency: {time-to-first-token: 300ms}
  - when: {prompt-matches: stall}
    stream: {stall-after-tokens: 3, stall: 400ms}
  - when: {prompt-matches: drop}
    stream: {disconnect-after-tokens: 4}
  - when: {prompt-matches: broken}
    reply: "{{ rng.not_a_method() }}"
  - when: {prompt-matches: echo-it}
    reply: "{{ prompt }} {{ lorem(3) }}"
"""


@pytest.fixture(scope="module")
def scripted(server_factory: ServerFactory) -> RunningServer:
    return server_factory(RULES)


def test_rule_reply_renders_with_the_request_fields(scripted: RunningServer) -> None:
    body = chat(scripted, "What is the weather in Paris?", max_tokens=50).json()
    text = body["choices"][0]["message"]["content"]
    assert text in (
        "It is sunny for m: What is the |50",
        "It is rainy for m: What is the |50",
    )
    assert body["usage"]["completion_tokens"] > 0
    cut = chat(scripted, "weather?", max_tokens=3).json()
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 3
    not_chat = httpx.post(
        f"{scripted.base_url}/v1/completions", json={"model": "m", "prompt": "weather"}
    ).json()
    assert not not_chat["choices"][0]["text"].startswith("It is")


def test_request_content_is_data_never_a_template(scripted: RunningServer) -> None:
    body = chat(scripted, "echo-it {{ 7*7 }} {% for x in range(3) %}x{% endfor %}").json()
    text = body["choices"][0]["message"]["content"]
    assert text.startswith("echo-it {{ 7*7 }} {% for x in range(3) %}x{% endfor %} ")
    assert "49" not in text


def test_rule_errors_by_type_or_spelled_out(scripted: RunningServer) -> None:
    throttled = chat(scripted, headers={"X-Scenario-Case": "throttle"})
    assert throttled.status_code == 429
    assert throttled.json()["error"]["type"] == "RateLimitError"
    custom = chat(scripted, headers={"X-Scenario-Case": "custom"})
    assert custom.status_code == 418
    assert custom.json()["error"] == {
        "message": "short and stout",
        "type": "TeapotError",
        "param": None,
        "code": 418,
    }
    assert chat(scripted, headers={"X-Scenario-Case": "other"}).status_code == 200


def test_rule_latency_applies_to_matching_requests(scripted: RunningServer) -> None:
    with httpx.Client(base_url=scripted.base_url, timeout=10) as client:

        def elapsed(model: str) -> float:
            start = time.perf_counter()
            response = client.post(
                "/v1/completions", json={"model": model, "prompt": "x", "max_tokens": 1}
            )
            assert response.status_code == 200
            return time.perf_counter() - start

        elapsed("m")  # open the connection; warm the server up
        assert elapsed("m-alias") == pytest.approx(0.300, abs=0.04)
        assert elapsed("m") == pytest.approx(0.010, abs=0.04)


def test_stalled_stream_pauses_between_the_configured_tokens(scripted: RunningServer) -> None:
    arrivals = []
    with httpx.stream(
        "POST",
        f"{scripted.base_url}/v1/completions",
        json={
            "model": "m",
            "prompt": "stall please",
            "max_tokens": 6,
            "ignore_eos": True,
            "stream": True,
        },
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {") and '"finish_reason":null' in line:
                arrivals.append(time.perf_counter())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(gaps) == 5
    assert gaps[2] == pytest.approx(0.410, abs=0.03)
    assert all(gap == pytest.approx(0.010, abs=0.008) for i, gap in enumerate(gaps) if i != 2)


def test_disconnect_rule_cuts_the_stream_and_counts_an_abort(scripted: RunningServer) -> None:
    before = value(scrape(scripted), "vllm:request_success", "_total", finished_reason="abort")
    lines: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            f"{scripted.base_url}/v1/chat/completions",
            json={
                "model": "m",
                "messages": [{"role": "user", "content": "drop it"}],
                "max_tokens": 10,
                "ignore_eos": True,
                "stream": True,
            },
        ) as response,
    ):
        for line in response.iter_lines():
            lines.append(line)
    data = [line for line in lines if line.startswith("data: ")]
    assert "data: [DONE]" not in data
    contents = [json.loads(d[6:])["choices"][0]["delta"].get("content") for d in data]
    assert len([c for c in contents if c]) == 4
    after = scrape(scripted)
    assert value(after, "vllm:request_success", "_total", finished_reason="abort") == before + 1
    assert chat(scripted).status_code == 200


def test_template_render_error_is_a_500_naming_the_rule_and_logged_once(
    scripted: RunningServer,
) -> None:
    for _ in range(3):
        response = chat(scripted, "this is broken")
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["message"].startswith("rule 6: reply template failed")
        assert error["type"] == "InternalServerError"
    assert chat(scripted).status_code == 200


PHASES = """
version: 1
model: {name: m}
latency: {time-to-first-token: 20ms}
phases:
  - {name: calm, start: 0s}
  - {name: slow, start: 2s, latency: {time-to-first-token: 400ms}}
  - name: broken
    start: 4s
    duration: 2s
    failures: {failure-injection-rate: 100, failure-types: [server_error]}
"""


def test_phases_change_behaviour_in_their_windows(server_factory: ServerFactory) -> None:
    server = server_factory(PHASES)
    ready = time.monotonic()  # the server became ready just before the factory returned
    client = httpx.Client(base_url=server.base_url, timeout=10)

    def probe() -> tuple[int, float, str | None]:
        start = time.perf_counter()
        response = client.post(
            "/v1/completions", json={"model": "m", "prompt": "x", "max_tokens": 1}
        )
        elapsed = time.perf_counter() - start
        phase = client.get("/admin/config").json()["active-phase"]
        return response.status_code, elapsed, phase

    def at(offset: float) -> tuple[int, float, str | None]:
        delay = ready + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return probe()

    with client:
        client.get("/health")  # open the connection before timing
        calm = at(0.5)
        slow = at(2.5)
        broken = at(4.6)
        after = at(6.8)
    assert calm[0] == 200 and calm[1] == pytest.approx(0.020, abs=0.05) and calm[2] == "calm"
    assert slow[0] == 200 and slow[1] == pytest.approx(0.400, abs=0.05) and slow[2] == "slow"
    assert broken[0] == 503 and broken[2] == "broken"
    assert after[0] == 200 and after[2] is None
    info = scrape(server)["llmsim:scenario_info"].samples[0].labels
    assert info["phase"] == ""


def test_after_requests_switches_at_exactly_the_next_request(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m}\nphases:\n"
        "  - name: failing\n    after-requests: 5\n"
        "    failures: {failure-injection-rate: 100, failure-types: [rate_limit]}\n"
    )
    statuses = [
        httpx.post(
            f"{server.base_url}/v1/completions", json={"model": "m", "prompt": "x", "max_tokens": 1}
        ).status_code
        for _ in range(8)
    ]
    assert statuses == [200] * 5 + [429] * 3
    assert scrape(server)["llmsim:scenario_info"].samples[0].labels["phase"] == "failing"


def test_unsafe_templates_are_refused_by_validate(tmp_path: object) -> None:
    import pathlib
    import subprocess
    import sys

    from tests.support import PROJECT_ROOT

    path = pathlib.Path(str(tmp_path)) / "unsafe.yaml"
    path.write_text(
        "version: 1\nrules:\n  - reply: ok\n"
        '  - reply: "{{ request.__class__.__mro__ }}"\n'
        '  - reply: "{{ lorem.__globals__ }}"\n'
        '  - reply: "{% if %}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "llmsim", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    assert (
        "rules[1].reply: template line 1 reaches for '__mro__'" in lines[0]
        or "__class__" in lines[0]
    )
    assert "rules[2].reply" in lines[1] and "__globals__" in lines[1]
    assert "rules[3].reply: template error at line 1" in lines[2]
