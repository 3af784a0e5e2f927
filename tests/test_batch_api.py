"""The batch API clients (providers/batch) against the fake batch endpoints: OpenAI's protocol (and Azure's
classic routes) and Anthropic Message Batches, their failures, and which client serves which model."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from afterimage_cli.config import RetryConfig
from afterimage_cli.errors import ConfigError, ProviderError, is_item_level
from afterimage_cli.providers.batch import (
    AnthropicBatchAPI,
    BatchAPI,
    BatchRequest,
    OpenAIBatchAPI,
    batch_api_for,
    openai_batches,
)
from afterimage_cli.providers.factory import LLMFactory
from afterimage_cli.providers.keypool import ApiKey, SmartKeyPool
from afterimage_cli.providers.openai_compat import OpenAICompatProvider
from afterimage_cli.providers.remote import RemoteProvider
from tests.fakeserver import FakeOpenAIServer

T = TypeVar("T")
FAST = RetryConfig(max_attempts=3, base_delay=0.0, max_delay=0.0, rate_limit_patience=5.0)
PROTOCOLS = ["openai", "anthropic"]


def pool(key: str = "sk-test") -> SmartKeyPool:
    return SmartKeyPool([ApiKey("TEST_KEY", key)])


def client(srv: FakeOpenAIServer, protocol: str, key: str = "sk-test", **kwargs: Any) -> BatchAPI:
    if protocol == "openai":
        return OpenAIBatchAPI("openai/fake-model", srv.api_base, pool(key), retry=FAST, **kwargs)
    return AnthropicBatchAPI("anthropic/claude-fake", srv.url, pool(key), retry=FAST, **kwargs)


def requests(protocol: str, n: int, long: set[int] = frozenset(), prefix: str = "item") -> list[BatchRequest]:
    """n requests as each protocol's transport builds them; those in `long` have a long prompt."""
    made = []
    for i in range(n):
        text = f"Question number {i} about tides" + (" and the moon" * 60 if i in long else "")
        messages = [{"role": "user", "content": text}]
        body: dict[str, Any] = {"model": "fake-model", "messages": messages}
        if protocol == "anthropic":
            body = {"model": "claude-fake", "max_tokens": 200, "messages": messages}
        made.append(BatchRequest(f"{prefix}-{i}", body))
    return made


def run(api: BatchAPI, work: Callable[[BatchAPI], Awaitable[T]]) -> T:
    """Run `work(api)` on a fresh event loop and close the client's session after it."""

    async def main() -> T:
        try:
            return await work(api)
        finally:
            await api.aclose()

    return asyncio.run(main())


def text_of(protocol: str, body: dict[str, Any]) -> str:
    if protocol == "openai":
        return str(body["choices"][0]["message"]["content"])
    return " ".join(block["text"] for block in body["content"] if block["type"] == "text")


def test_openai_round_trip_answers_as_an_online_call_does(fake_server: FakeOpenAIServer) -> None:
    provider = LLMFactory.create("openai/fake-model", api_base=fake_server.api_base)
    assert isinstance(provider, OpenAICompatProvider)
    conversations = [[{"role": "user", "content": f"Tell me about volcano {i}"}] for i in range(5)]
    batch = [BatchRequest(f"conv-{i}", provider.request_payload(m)) for i, m in enumerate(conversations)]

    async def work(api: BatchAPI) -> tuple[Any, Any, str]:
        batch_id = await api.submit(batch, {"run": "r1"})
        online = await provider.acomplete(conversations[3])
        await provider.aclose()
        return await api.retrieve(batch_id), await api.results(batch_id), online.text

    info, results, online_text = run(batch_api_for(provider), work)
    assert (info.status, info.done, info.total, info.completed, info.failed) == ("completed", True, 5, 5, 0)
    assert sorted(results) == [f"conv-{i}" for i in range(5)]
    answer = provider.answer_from(results["conv-3"].body or {}, results["conv-3"].headers)
    assert answer.text == online_text
    assert answer.prompt_token_count > 0 and results["conv-3"].error is None
    assert dict(fake_server.batch_api.lines_received) == {f"conv-{i}": 1 for i in range(5)}
    assert fake_server.stats["requests"] == 1  # the one online call of this test; the batch made none


def test_anthropic_round_trip(fake_server: FakeOpenAIServer) -> None:
    async def work(api: BatchAPI) -> tuple[Any, Any]:
        batch_id = await api.submit(requests("anthropic", 4), {})
        return await api.retrieve(batch_id), await api.results(batch_id)

    info, results = run(client(fake_server, "anthropic"), work)
    assert (info.status, info.done, info.total, info.completed, info.failed) == ("ended", True, 4, 4, 0)
    assert info.counts == {"processing": 0, "succeeded": 4, "errored": 0, "canceled": 0, "expired": 0}
    assert text_of("anthropic", results["item-2"].body or {}).endswith("Question number 2 about tides.")
    assert fake_server.stats["requests"] == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encode_counts_the_bytes_sent(fake_server: FakeOpenAIServer, protocol: str) -> None:
    api = client(fake_server, protocol)
    batch = requests(protocol, 7, long={2})
    batch_id = run(api, lambda api: api.submit(batch, {"run": "sizes"}))
    envelope = 0 if protocol == "openai" else len(b'{"requests":[') - 1 + len(b"]}")  # the last comma gives way
    assert fake_server.batch_api.batches[batch_id].input_bytes == sum(len(api.encode(r)) for r in batch) + envelope


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_failed_lines_come_back_as_retryable_errors(fake_server: FakeOpenAIServer, protocol: str) -> None:
    fake_server.batch_api.batch_line_fail_rate = 0.3

    async def work(api: BatchAPI) -> tuple[Any, Any]:
        batch_id = await api.submit(requests(protocol, 30), {})
        return await api.retrieve(batch_id), await api.results(batch_id)

    info, results = run(client(fake_server, protocol), work)
    failed = [r for r in results.values() if r.error is not None]
    assert len(results) == 30 and 0 < len(failed) < 30 and info.failed == len(failed)
    for result in failed:
        assert result.body is None and result.error is not None
        assert (result.error.retryable, result.error.kind, result.error.status_code) == (True, "server", 500)
    assert all(r.body is not None for r in results.values() if r.error is None)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refused_prompt_is_the_items_as_online(fake_server: FakeOpenAIServer, protocol: str) -> None:
    fake_server.context_tokens = 100

    async def work(api: BatchAPI) -> Any:
        return await api.results(await api.submit(requests(protocol, 3, long={1}), {}))

    results = run(client(fake_server, protocol), work)
    error = results["item-1"].error
    assert error is not None and error.kind == "context_limit" and is_item_level(error)
    assert results["item-0"].error is None and results["item-2"].error is None


def test_a_filtered_prompt_is_content_filter(fake_server: FakeOpenAIServer) -> None:
    fake_server.filter_words = ("number 2",)
    results = run(client(fake_server, "openai"), lambda api: _submit_and_read(api, requests("openai", 3)))
    error = results["item-2"].error
    assert error is not None and error.kind == "content_filter" and not error.retryable


async def _submit_and_read(api: BatchAPI, batch: list[BatchRequest]) -> Any:
    return await api.results(await api.submit(batch, {}))


@pytest.mark.parametrize(("protocol", "status"), [("openai", "expired"), ("anthropic", "ended")])
def test_an_expired_batch_gives_its_answered_lines_only(
    fake_server: FakeOpenAIServer, protocol: str, status: str
) -> None:
    fake_server.batch_api.batch_expire_after = 3

    async def work(api: BatchAPI) -> tuple[Any, Any]:
        batch_id = await api.submit(requests(protocol, 5), {})
        return await api.retrieve(batch_id), await api.results(batch_id)

    info, results = run(client(fake_server, protocol), work)
    assert (info.status, info.done) == (status, True)
    assert sorted(results) == ["item-0", "item-1", "item-2"]
    assert all(r.error is None for r in results.values())


def test_a_failed_batch_names_the_line(fake_server: FakeOpenAIServer) -> None:
    fake_server.batch_api.batch_fail_validation = 4

    async def work(api: BatchAPI) -> tuple[Any, Any]:
        batch_id = await api.submit(requests("openai", 6), {})
        return await api.retrieve(batch_id), await api.results(batch_id)

    info, results = run(client(fake_server, "openai"), work)
    assert (info.status, info.done, info.retry_later) == ("failed", True, False)
    assert info.error is not None and info.error.startswith("line 4: Missing required parameter")
    assert results == {}


def test_anthropic_refuses_a_bad_request_at_submit(fake_server: FakeOpenAIServer) -> None:
    fake_server.batch_api.batch_fail_validation = 2
    with pytest.raises(ProviderError, match=r"requests\.1\.params") as caught:
        run(client(fake_server, "anthropic"), lambda api: api.submit(requests("anthropic", 3), {}))
    assert (caught.value.kind, caught.value.retryable, caught.value.status_code) == ("bad_request", False, 400)
    assert (fake_server.batch_api.batches_created, fake_server.batch_api.http_calls) == (0, 1)


def test_a_batch_over_the_enqueued_limit_is_to_resubmit_later(fake_server: FakeOpenAIServer) -> None:
    fake_server.batch_api.batch_enqueued_limit = 5
    fake_server.batch_api.batch_polls_to_finish = 3

    async def work(api: BatchAPI) -> Any:
        await api.submit(requests("openai", 4, prefix="first"), {"round": "1"})
        return await api.retrieve(await api.submit(requests("openai", 3, prefix="second"), {"round": "2"}))

    info = run(client(fake_server, "openai"), work)
    assert (info.status, info.retry_later) == ("failed", True)
    assert info.error is not None and "Enqueued token limit reached" in info.error


def test_find_adopts_a_batch_by_its_metadata(fake_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_batches, "FIND_PAGE_SIZE", 2)

    async def work(api: BatchAPI) -> tuple[list[str], list[str | None]]:
        ids = [await api.submit(requests("openai", 1, prefix=f"r{n}"), {"run": "a", "round": str(n)}) for n in range(5)]
        found = [await api.find({"run": "a", "round": str(n)}) for n in (0, 3)]
        return ids, found + [await api.find({"run": "a"}), await api.find({"run": "b", "round": "0"})]

    ids, found = run(client(fake_server, "openai"), work)
    assert found == [ids[0], ids[3], None, None]  # the oldest is on the third page of two


def test_find_reads_a_bounded_number_of_pages(fake_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_batches, "FIND_PAGE_SIZE", 2)
    monkeypatch.setattr(openai_batches, "FIND_PAGES", 2)

    async def work(api: BatchAPI) -> list[str | None]:
        for n in range(5):
            await api.submit(requests("openai", 1, prefix=f"r{n}"), {"round": str(n)})
        return [await api.find({"round": "0"}), await api.find({"round": "1"})]

    oldest, second = run(client(fake_server, "openai"), work)
    assert oldest is None and second is not None  # only the 4 newest are looked at


def test_submit_adopts_the_batch_whose_answer_was_lost(fake_server: FakeOpenAIServer) -> None:
    fake_server.batch_api.batch_drop_created = 1
    batch = requests("openai", 4)

    async def work(api: BatchAPI) -> tuple[str, Any]:
        batch_id = await api.submit(batch, {"run": "lost"})
        return batch_id, await api.results(batch_id)

    batch_id, results = run(client(fake_server, "openai"), work)
    assert list(fake_server.batch_api.batches) == [batch_id] and len(results) == 4
    assert dict(fake_server.batch_api.lines_received) == {r.custom_id: 1 for r in batch}


def test_anthropic_never_resubmits_a_create_whose_answer_was_lost(fake_server: FakeOpenAIServer) -> None:
    fake_server.batch_api.batch_drop_created = 1
    with pytest.raises(ProviderError, match="may have been created") as caught:
        run(client(fake_server, "anthropic"), lambda api: api.submit(requests("anthropic", 2), {}))
    assert not caught.value.retryable and fake_server.batch_api.batches_created == 1


@pytest.mark.parametrize(("protocol", "status"), [("openai", "cancelled"), ("anthropic", "ended")])
def test_cancel_keeps_what_was_answered(fake_server: FakeOpenAIServer, protocol: str, status: str) -> None:
    fake_server.batch_api.batch_polls_to_finish = 4

    async def work(api: BatchAPI) -> tuple[Any, Any, Any]:
        batch_id = await api.submit(requests(protocol, 8), {})
        running = await api.retrieve(batch_id)  # a quarter of the way: 2 lines done
        await api.cancel(batch_id)
        return running, await api.retrieve(batch_id), await api.results(batch_id)

    running, info, results = run(client(fake_server, protocol), work)
    assert not running.done and (info.status, info.done) == (status, True)
    assert sorted(results) == ["item-0", "item-1"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_retrieve_retries_server_errors(fake_server: FakeOpenAIServer, protocol: str) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def work(api: BatchAPI) -> Any:
        batch_id = await api.submit(requests(protocol, 2), {})
        fake_server.batch_api.batch_http_errors = [500, 503]
        return await api.retrieve(batch_id)

    assert run(client(fake_server, protocol, sleep=sleep), work).done
    assert len(waits) == 2 and fake_server.batch_api.batch_http_errors == []


def test_retrieve_gives_up_after_max_attempts(fake_server: FakeOpenAIServer) -> None:
    async def work(api: BatchAPI) -> Any:
        batch_id = await api.submit(requests("openai", 1), {})
        fake_server.batch_api.batch_http_errors = [500, 502, 503, 504]
        return await api.retrieve(batch_id)

    with pytest.raises(ProviderError) as caught:
        run(client(fake_server, "openai"), work)
    assert (caught.value.retryable, caught.value.kind, caught.value.status_code) == (True, "server", 503)


def test_a_rate_limited_submit_waits_and_goes_on(fake_server: FakeOpenAIServer) -> None:
    fake_server.batch_api.batch_http_errors = [429]
    batch_id = run(client(fake_server, "openai"), lambda api: api.submit(requests("openai", 2), {}))
    assert fake_server.batch_api.batches[batch_id].lines and fake_server.batch_api.batches_created == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_rejected_key_is_an_auth_error_at_once(fake_server: FakeOpenAIServer, protocol: str) -> None:
    fake_server.reject_keys = {"sk-bad"}
    api = client(fake_server, protocol, key="sk-bad")
    with pytest.raises(ProviderError, match="TEST_KEY") as caught:
        run(api, lambda api: api.submit(requests(protocol, 2), {}))
    assert (caught.value.kind, caught.value.retryable) == ("auth", False)
    assert fake_server.batch_api.http_calls == 1 and fake_server.batch_api.batches_created == 0


def test_an_unknown_batch_is_not_found(fake_server: FakeOpenAIServer) -> None:
    with pytest.raises(ProviderError, match="no such batch") as caught:
        run(client(fake_server, "openai"), lambda api: api.retrieve("batch_nope"))
    assert (caught.value.kind, caught.value.retryable) == ("not_found", False)


def test_anthropic_custom_ids_are_checked_before_sending(fake_server: FakeOpenAIServer) -> None:
    with pytest.raises(ValueError, match="custom_id 'item 1'"):
        client(fake_server, "anthropic").encode(BatchRequest("item 1", {}))


def test_openai_error_lines_by_code() -> None:
    api = OpenAIBatchAPI("openai/m", "http://127.0.0.1:9/v1", None)

    def error_of(code: str) -> ProviderError | None:
        result = api._line({"custom_id": "a", "response": None, "error": {"code": code, "message": "what"}})
        return None if result is None else result.error

    assert error_of("batch_expired") is None and error_of("batch_cancelled") is None  # never ran: absent
    timeout, odd, refused = error_of("request_timeout"), error_of("odd"), error_of("context_length_exceeded")
    assert timeout is not None and (timeout.kind, timeout.retryable) == ("timeout", True)
    assert odd is not None and (odd.kind, odd.retryable) == ("server", True)
    assert refused is not None and (refused.kind, refused.retryable) == ("context_limit", False)


def test_anthropic_error_lines_by_type() -> None:
    api = AnthropicBatchAPI("anthropic/m", None, None)

    def error_of(kind: str) -> ProviderError:
        line = {"custom_id": "a", "result": {"type": "errored", "error": {"type": "error", "error": {"type": kind}}}}
        result = api._line(line)
        assert result is not None and result.error is not None
        return result.error

    assert (error_of("overloaded_error").retryable, error_of("overloaded_error").status_code) == (True, 529)
    assert (error_of("rate_limit_error").kind, error_of("billing_error").kind) == ("rate_limit", "billing")
    assert (
        not error_of("billing_error").retryable and api._line({"custom_id": "x", "result": {"type": "expired"}}) is None
    )


# --- which client serves which model ---------------------------------------------------------


def test_azure_models_use_azures_routes_and_header(fake_server: FakeOpenAIServer) -> None:
    provider = OpenAICompatProvider("azure/my-deployment", api_base=fake_server.url, keys=pool("sk-azure"))
    api = batch_api_for(provider, environ={"AZURE_API_VERSION": "2025-01-01"}, retry=FAST)
    assert isinstance(api, OpenAIBatchAPI) and api.params == {"api-version": "2025-01-01"}
    results = run(api, lambda api: _submit_and_read(api, requests("openai", 3)))
    assert sorted(results) == ["item-0", "item-1", "item-2"] and all(r.body for r in results.values())
    assert next(iter(fake_server.batch_api.batches.values())).endpoint == "/chat/completions"
    fake_server.reject_keys = {"sk-azure"}  # the key went in api-key, where the fake's Azure routes read it
    with pytest.raises(ProviderError, match="rejected"):
        run(batch_api_for(provider, environ={}, retry=FAST), lambda api: api.submit(requests("openai", 1), {}))


def test_azure_v1_api_is_the_openai_protocol() -> None:
    base = "https://res.openai.azure.com/openai/v1"
    api = batch_api_for(OpenAICompatProvider("azure/dep", api_base=base, keys=pool()))
    assert isinstance(api, OpenAIBatchAPI)
    assert (api.root, api.endpoint, api.params, api.key_header) == (base, "/v1/chat/completions", {}, "api-key")


class _MessagesTransport(RemoteProvider):
    """A transport that speaks the Anthropic protocol, as providers/anthropic_direct.py declares itself."""

    batch_protocol = "anthropic"


class _Wrapper:
    """A run's wrapper around a transport (retries, cache)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_name = inner.model_name


def test_anthropic_transports_get_message_batches(fake_server: FakeOpenAIServer) -> None:
    provider: Any = _Wrapper(_MessagesTransport("anthropic/claude-fake", keys=pool()))
    api = batch_api_for(provider, environ={"ANTHROPIC_BASE_URL": fake_server.url + "/v1"}, retry=FAST)
    assert isinstance(api, AnthropicBatchAPI) and api.root == fake_server.url + "/v1/messages/batches"
    assert len(run(api, lambda api: _submit_and_read(api, requests("anthropic", 2)))) == 2


@pytest.mark.parametrize("settings", [{"provider": "litellm", "api_base": "http://127.0.0.1:9/v1"}, {}])
def test_other_transports_cannot_batch(settings: dict[str, Any]) -> None:
    provider = LLMFactory.create("openai/gpt-4o-mini" if settings else "offline", **settings)
    with pytest.raises(ConfigError, match=rf"{provider.model_name} cannot run in batch mode: .*anthropic/"):
        batch_api_for(provider, environ={})


def test_a_refused_batch_call_is_no_items_fault(fake_server: FakeOpenAIServer) -> None:
    fake_server.batch_api.batch_http_errors = [413]  # the whole upload is too large: no prompt's context
    with pytest.raises(ProviderError) as caught:
        run(client(fake_server, "openai"), lambda api: api.submit(requests("openai", 2), {}))
    assert (caught.value.kind, caught.value.retryable) == ("bad_request", False)
