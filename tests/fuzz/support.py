"""What the fuzz tests check of every answer: no 5xx, and errors in the endpoint's shape."""

from __future__ import annotations

import httpx

from llmsim.server.messages import PATH as MESSAGES


def assert_clean_answer(path: str, response: httpx.Response) -> None:
    """2xx, or 4xx with the endpoint's error shape: Anthropic's on /v1/messages, OpenAI's
    elsewhere."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text}"
    if status < 400:
        return
    body = response.json()
    if path == MESSAGES:
        assert body["type"] == "error", body
        assert set(body["error"]) == {"type", "message"}, body
        assert isinstance(body["error"]["message"], str), body
    else:
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"message", "type", "param", "code"}, body
        assert body["error"]["code"] == status, body
