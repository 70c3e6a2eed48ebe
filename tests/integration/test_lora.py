"""LoRA adapters as gateways and clients see them (LORA-*, API-MODELS-1, MET-2)."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from tests.conftest import ServerFactory
from tests.metrics_support import scrape, value
from tests.support import RunningServer

SCENARIO = """
version: 1
model: {name: base/model, served-model-name: [base, base-alias]}
engine: {max-num-seqs: 4}
latency: {time-to-first-token: 10ms}
lora:
  max-loras: 2
  max-cpu-loras: 4
  lora-modules:
    - {name: sql-lora, path: /adapters/sql, base_model_name: base/model}
    - '{"name": "chat-lora", "path": "/adapters/chat"}'
"""


@pytest.fixture
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


def models(server: RunningServer) -> list[dict[str, object]]:
    return list(httpx.get(f"{server.base_url}/v1/models").json()["data"])


def complete(server: RunningServer, model: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v1/completions",
        json={"model": model, "prompt": "x", "max_tokens": 2},
        timeout=30,
    )


def test_models_list_served_names_then_adapters_API_MODELS_1(server: RunningServer) -> None:
    data = models(server)
    assert [m["id"] for m in data] == ["base", "base-alias", "sql-lora", "chat-lora"]
    sql = data[2]
    assert sql["root"] == "/adapters/sql" and sql["parent"] == "base"
    assert data[0]["root"] == "base/model" and data[0]["parent"] is None


def test_requests_to_an_adapter_are_answered_as_that_adapter_LORA_2(
    server: RunningServer,
) -> None:
    body = complete(server, "sql-lora").json()
    assert body["model"] == "sql-lora"
    assert complete(server, "base-alias").json()["model"] == "base"
    with openai.OpenAI(base_url=server.openai_base_url, api_key="x") as client:
        chat = client.chat.completions.create(
            model="chat-lora", messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
        assert chat.model == "chat-lora"
    families = scrape(server)
    assert {s.labels["model_name"] for s in families["vllm:generation_tokens"].samples} == {"base"}


def test_load_list_request_unload_then_404_LORA_3(server: RunningServer) -> None:
    url = server.base_url
    loaded = httpx.post(
        f"{url}/v1/load_lora_adapter", json={"lora_name": "new-lora", "lora_path": "/a/new"}
    )
    assert loaded.status_code == 200
    assert loaded.text == "Success: LoRA adapter 'new-lora' added successfully."
    assert [m["id"] for m in models(server)][-1] == "new-lora"
    assert complete(server, "new-lora").json()["model"] == "new-lora"
    unloaded = httpx.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": "new-lora"})
    assert unloaded.status_code == 200
    assert unloaded.text == "Success: LoRA adapter 'new-lora' removed successfully."
    assert "new-lora" not in [m["id"] for m in models(server)]
    gone = complete(server, "new-lora")
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == "The model `new-lora` does not exist."


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (
            "/v1/load_lora_adapter",
            {"lora_name": "sql-lora", "lora_path": "/x"},
            400,
            "The lora adapter 'sql-lora' has already been loaded.",
        ),
        (
            "/v1/load_lora_adapter",
            {"lora_name": "x"},
            400,
            "Both 'lora_name' and 'lora_path' must be provided.",
        ),
        ("/v1/load_lora_adapter", {"lora_name": 5, "lora_path": "/x"}, 400, "lora_name"),
        (
            "/v1/unload_lora_adapter",
            {"lora_name": "nope"},
            404,
            "The lora adapter 'nope' cannot be found.",
        ),
    ],
)
def test_bad_load_and_unload_requests_LORA_3(
    server: RunningServer, path: str, body: dict[str, object], status: int, message: str
) -> None:
    response = httpx.post(f"{server.base_url}{path}", json=body)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


def test_unparsable_load_body_is_400_LORA_3(server: RunningServer) -> None:
    response = httpx.post(f"{server.base_url}/v1/load_lora_adapter", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(
        "failed to read and parse load lora request body"
    )


def test_runtime_adapters_survive_admin_updates(server: RunningServer) -> None:
    httpx.post(
        f"{server.base_url}/v1/load_lora_adapter", json={"lora_name": "kept", "lora_path": "/k"}
    )
    update = httpx.post(f"{server.base_url}/admin/config", json={"time-to-first-token": "20ms"})
    assert update.status_code == 200
    assert complete(server, "kept").status_code == 200


def test_max_loras_one_runs_one_adapter_at_a_time_LORA_4_LORA_5_MET_2(
    server_factory: ServerFactory,
) -> None:
    ttft = 0.3
    server = server_factory(
        "version: 1\nmodel: {name: base}\nengine: {max-num-seqs: 4}\n"
        f"latency: {{time-to-first-token: {int(ttft * 1000)}ms}}\n"
        "lora:\n  max-loras: 1\n"
        "  lora-modules: [{name: lora-a, path: /a}, {name: lora-b, path: /b}]\n"
    )

    async def run() -> tuple[dict[str, float], set[str], list[float], float, float]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            await asyncio.gather(*(client.get("/health") for _ in range(4)))

            async def timed(model: str) -> float:
                start = time.perf_counter()
                response = await client.post(
                    "/v1/completions", json={"model": model, "prompt": "x", "max_tokens": 1}
                )
                assert response.status_code == 200
                return time.perf_counter() - start

            tasks = [
                asyncio.create_task(timed(m)) for m in ("lora-a", "lora-a", "lora-b", "lora-b")
            ]
            await asyncio.sleep(ttft / 2)
            families = await asyncio.to_thread(scrape, server)
            times = list(await asyncio.gather(*tasks))
            samples = families["vllm:lora_requests_info"].samples
            info = {
                f"{s.labels['running_lora_adapters']}|{s.labels['waiting_lora_adapters']}": s.value
                for s in samples
            }
            return (
                info,
                {s.labels["max_lora"] for s in samples},
                times,
                value(families, "vllm:num_requests_running"),
                value(families, "vllm:num_requests_waiting"),
            )

    info, max_lora, times, running, waiting = asyncio.run(run())
    assert (running, waiting) == (2, 2)
    latest = max(info, key=lambda k: info[k])
    assert latest == "lora-a|lora-b"
    assert "|" in info  # the initial series, kept
    assert max_lora == {"1"}
    assert sorted(times)[:2] == pytest.approx([ttft, ttft], abs=0.05)
    assert sorted(times)[2:] == pytest.approx([2 * ttft, 2 * ttft], abs=0.05)


@pytest.mark.parametrize(
    ("lora", "fragment"),
    [
        ("{max-loras: 0}", "lora.max-loras"),
        ("{max-loras: 3, max-cpu-loras: 2}", "max-cpu-loras must be at least max-loras"),
        ("{lora-modules: [{name: base}]}", "'base' is already a served model name"),
        ("{lora-modules: [{name: x, base_model_name: other}]}", "must be the base model"),
        ("{lora-modules: [{name: ''}]}", "lora.lora-modules[0].name"),
        ("{lora-modules: ['not json']}", "must be JSON"),
    ],
)
def test_invalid_lora_configuration_is_rejected_LORA_1(lora: str, fragment: str) -> None:
    from llmsim.errors import ScenarioError
    from llmsim.scenario.loader import load_scenario_text

    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(f"version: 1\nmodel: {{name: base}}\nlora: {lora}\n", "s.yaml")
    assert fragment in str(caught.value)
