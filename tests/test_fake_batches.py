"""The fake batch endpoints over plain HTTP: their objects have the shapes of the official SDKs' types (a
vendored schema generated from them), batches move one step per poll, and the knobs misbehave as said."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.fakeserver import FakeOpenAIServer

SCHEMAS = json.loads((Path(__file__).parent / "data" / "batch_wire_schemas.json").read_text())
HEADERS = {"Authorization": "Bearer sk-test", "x-api-key": "sk-test", "anthropic-version": "2023-06-01"}


@pytest.fixture
def http(fake_server: FakeOpenAIServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_server.url, headers=HEADERS, timeout=10) as client:
        yield client


def check(kind: str, obj: Any) -> Any:
    """`obj`, once it validated against the SDK-derived schema of `kind`."""
    jsonschema.validate(obj, SCHEMAS[kind])
    return obj


def jsonl(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


def openai_batch(http: httpx.Client, lines: int, long: int | None = None, prefix: str = "/v1") -> dict[str, Any]:
    """Upload `lines` chat requests (line `long` with a long prompt) and create their batch."""
    endpoint = "/v1/chat/completions" if prefix == "/v1" else "/chat/completions"
    content = b""
    for i in range(lines):
        body = {"model": "m", "messages": [{"role": "user", "content": "word " * (100 if i == long else 2)}]}
        line = {"custom_id": f"c{i}", "method": "POST", "url": endpoint, "body": body}
        content += json.dumps(line).encode() + b"\n"
    params = {"api-version": "2024-10-21"} if prefix == "/openai" else None
    upload = http.post(
        f"{prefix}/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", content)}, params=params
    )
    file = check("FileObject", upload.json())
    assert (file["bytes"], file["purpose"]) == (len(content), "batch")
    create = {"input_file_id": file["id"], "endpoint": endpoint, "completion_window": "24h", "metadata": {"k": "v"}}
    return check("Batch", http.post(f"{prefix}/batches", json=create, params=params).json())


def anthropic_batch(http: httpx.Client, lines: int, long: int | None = None) -> dict[str, Any]:
    requests = [
        {
            "custom_id": f"a{i}",
            "params": {"model": "claude", "max_tokens": 50, "messages": [{"role": "user", "content": "w " * 2}]},
        }
        for i in range(lines)
    ]
    if long is not None:
        requests[long]["params"]["messages"][0]["content"] = "word " * 100
    return check("MessageBatch", http.post("/v1/messages/batches", json={"requests": requests}).json())


def test_openai_objects_have_the_sdk_shapes_in_every_state(fake_server: FakeOpenAIServer, http: httpx.Client) -> None:
    fake_server.context_tokens = 40
    knobs = fake_server.batch_api
    knobs.batch_polls_to_finish, knobs.batch_line_fail_rate = 3, 0.3
    batch = openai_batch(http, 6, long=1)
    statuses = [batch["status"]]
    for _ in range(3):
        batch = check("Batch", http.get(f"/v1/batches/{batch['id']}").json())
        statuses.append(batch["status"])
    assert statuses == ["validating", "in_progress", "finalizing", "completed"]
    assert batch["request_counts"]["total"] == 6 and batch["request_counts"]["failed"] >= 1
    lines = jsonl(http.get(f"/v1/files/{batch['output_file_id']}/content").text)
    lines += jsonl(http.get(f"/v1/files/{batch['error_file_id']}/content").text)
    assert sorted(check("BatchRequestOutput", line)["custom_id"] for line in lines) == [f"c{i}" for i in range(6)]
    assert {line["response"]["status_code"] for line in lines} >= {200, 400}

    knobs.batch_polls_to_finish, knobs.batch_line_fail_rate, knobs.batch_expire_after = 0, 0.0, 2
    expired = check("Batch", http.get(f"/v1/batches/{openai_batch(http, 4)['id']}").json())
    unrun = jsonl(http.get(f"/v1/files/{expired['error_file_id']}/content").text)
    assert expired["status"] == "expired"
    assert {check("BatchRequestOutput", u)["error"]["code"] for u in unrun} == {"batch_expired"}

    knobs.batch_expire_after, knobs.batch_fail_validation = None, 2
    failed = check("Batch", http.get(f"/v1/batches/{openai_batch(http, 3)['id']}").json())
    assert failed["status"] == "failed" and failed["errors"]["data"][0]["line"] == 2

    knobs.batch_fail_validation, knobs.batch_polls_to_finish = None, 5
    running = openai_batch(http, 3)
    cancelling = check("Batch", http.post(f"/v1/batches/{running['id']}/cancel").json())
    cancelled = check("Batch", http.get(f"/v1/batches/{running['id']}").json())
    assert (cancelling["status"], cancelled["status"]) == ("cancelling", "cancelled")
    listed = http.get("/v1/batches", params={"limit": 2}).json()
    assert [check("Batch", b)["id"] for b in listed["data"]] == [running["id"], failed["id"]] and listed["has_more"]


def test_anthropic_objects_have_the_sdk_shapes_in_every_state(
    fake_server: FakeOpenAIServer, http: httpx.Client
) -> None:
    fake_server.context_tokens = 40
    knobs = fake_server.batch_api
    knobs.batch_polls_to_finish, knobs.batch_line_fail_rate, knobs.batch_expire_after = 2, 0.3, 5
    batch = anthropic_batch(http, 6, long=1)
    assert batch["request_counts"]["processing"] == 6 and batch["results_url"] is None
    seen = [check("MessageBatch", http.get(f"/v1/messages/batches/{batch['id']}").json()) for _ in range(2)]
    assert [b["processing_status"] for b in seen] == ["in_progress", "ended"]
    assert seen[1]["results_url"].endswith(f"/v1/messages/batches/{batch['id']}/results")
    results = [check("MessageBatchIndividualResponse", r) for r in jsonl(http.get(seen[1]["results_url"]).text)]
    kinds = {r["custom_id"]: r["result"]["type"] for r in results}
    assert kinds["a1"] == "errored" and kinds["a5"] == "expired" and "succeeded" in kinds.values()
    too_long = next(r for r in results if r["custom_id"] == "a1")["result"]["error"]["error"]
    assert too_long["type"] == "invalid_request_error" and too_long["message"].startswith("prompt is too long")

    knobs.batch_polls_to_finish = 4
    running = anthropic_batch(http, 2)
    canceling = check("MessageBatch", http.post(f"/v1/messages/batches/{running['id']}/cancel").json())
    ended = check("MessageBatch", http.get(f"/v1/messages/batches/{running['id']}").json())
    assert (canceling["processing_status"], ended["request_counts"]["canceled"]) == ("canceling", 2)
    listed = http.get("/v1/messages/batches", params={"limit": 1}).json()
    assert [check("MessageBatch", b)["id"] for b in listed["data"]] == [running["id"]] and listed["has_more"]


def test_a_hung_batch_waits_until_released(fake_server: FakeOpenAIServer, http: httpx.Client) -> None:
    fake_server.batch_api.batch_hang = True
    batch = openai_batch(http, 2)
    assert {http.get(f"/v1/batches/{batch['id']}").json()["status"] for _ in range(5)} == {"in_progress"}
    fake_server.batch_api.batch_hang = False
    assert http.get(f"/v1/batches/{batch['id']}").json()["status"] == "completed"


def test_the_validation_refuses_what_the_real_api_refuses(fake_server: FakeOpenAIServer, http: httpx.Client) -> None:
    line = {"custom_id": "same", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}}
    wrong_url = dict(line, custom_id="other", url="/v1/embeddings")
    content = b"".join(json.dumps(x).encode() + b"\n" for x in (line, line, wrong_url)) + b"{torn\n"
    file = http.post("/v1/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", content)}).json()
    create = {"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    batch = http.get(f"/v1/batches/{http.post('/v1/batches', json=create).json()['id']}").json()
    errors = [(e["code"], e["line"]) for e in batch["errors"]["data"]]
    assert errors == [("duplicate_custom_id", 2), ("mismatched_endpoint", 3), ("invalid_json_line", 4)]
    bad = http.post("/v1/messages/batches", json={"requests": [{"custom_id": "has space", "params": {}}]})
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("requests.0.custom_id")


def test_azure_routes_want_an_api_version(fake_server: FakeOpenAIServer, http: httpx.Client) -> None:
    assert http.post("/openai/batches", json={}).status_code == 404
    batch = openai_batch(http, 2, prefix="/openai")
    assert batch["endpoint"] == "/chat/completions"


def test_batch_lines_are_counted_apart_from_online_calls(fake_server: FakeOpenAIServer, http: httpx.Client) -> None:
    batch = openai_batch(http, 3)
    http.get(f"/v1/batches/{batch['id']}")
    http.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    knobs = fake_server.batch_api
    assert (knobs.batches_created, knobs.lines_answered, fake_server.stats["requests"]) == (1, 3, 1)
    assert dict(knobs.lines_received) == {"c0": 1, "c1": 1, "c2": 1}
