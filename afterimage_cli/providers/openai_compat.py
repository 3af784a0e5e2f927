"""The direct OpenAI-protocol transport: OpenAI, Azure OpenAI, the OpenAI-compatible hosts (Groq, Together,
DeepSeek, …) and any --api-base server (vLLM, llama.cpp, Ollama's /v1, LM Studio).

It speaks only POST …/chat/completions over one aiohttp session, so a call costs a fraction of litellm's
CPU. Errors, retries, usage, reasoning and structured output behave exactly as through litellm; what a host
wants said its own way is in openai_dialect.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError
from .base import LLMResponse, Messages
from .http_transport import HttpTransport
from .keypool import ApiKey
from .openai_dialect import AZURE_API_VERSION, JSON_TOOL, adapt_request, answer_text, is_azure_v1
from .remote import PROBE_MESSAGES
from .structured import Schema, response_format
from .tool_calls import finish_with_calls, read_openai_calls, tool_options


class OpenAICompatProvider(HttpTransport):
    """Chat completions against an OpenAI-compatible server, one HTTP session for the whole run."""

    # The batch API that takes these bodies (providers/batch): /files + /batches (Azure's too).
    batch_protocol = "openai"

    def __init__(self, model: str, *, api_version: str | None = None, **settings: Any) -> None:
        super().__init__(model, **settings)
        if not self.api_base:
            raise ProviderError(
                f"{model}: the openai_compat provider needs api_base (the server's /v1 URL)",
                retryable=False,
                kind="bad_request",
            )
        # 'openai/llama3' or 'hosted_vllm/llama3' → the server is asked for 'llama3'.
        self.served_model = self.requested_model
        self.prefix = model.partition("/")[0] if "/" in model else ""
        # Azure's api-version (the factory resolves the config's and AZURE_API_VERSION); batches use it too.
        self.api_version = (api_version or AZURE_API_VERSION) if self.is_azure else api_version
        self.url = self.api_base.rstrip("/") + self.request_url

    @property
    def is_azure(self) -> bool:
        return self.prefix == "azure"

    @property
    def request_url(self) -> str:
        """The path a chat body is POSTed to under api_base (Azure: the deployment's, with its api-version,
        unless api_base is the resource's /openai/v1 API, which is OpenAI's protocol)."""
        assert self.api_base is not None
        if self.is_azure and not is_azure_v1(self.api_base):
            return f"/openai/deployments/{self.served_model}/chat/completions?api-version={self.api_version}"
        return "/chat/completions"

    def request_headers(self, key: ApiKey | None) -> dict[str, str]:
        """The key as a bearer token, or in Azure's `api-key` header."""
        if key is not None and self.is_azure:
            return {"api-key": key.value}
        return super().request_headers(key)

    def _to_response(self, data: dict[str, Any], headers: dict[str, str]) -> LLMResponse:
        try:
            choice = data["choices"][0]
            message = choice["message"]
            text, reasoning = answer_text(message)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderError(
                f"{self.model_name}: malformed response: missing {exc}", retryable=True, kind="invalid_output"
            ) from None
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details")
        cached = int((details.get("cached_tokens") if isinstance(details, dict) else None) or 0)
        limits = {k: v for k, v in headers.items() if "ratelimit" in k}
        calls = read_openai_calls(message.get("tool_calls"), skip=JSON_TOOL)
        finish_reason = finish_with_calls(choice.get("finish_reason"), calls)
        response = LLMResponse(
            text=text if isinstance(text, str) else "",
            prompt_token_count=prompt_tokens,
            completion_token_count=completion_tokens,
            total_token_count=int(usage.get("total_tokens") or prompt_tokens + completion_tokens),
            cached_prompt_tokens=cached,
            finish_reason=finish_reason,
            model_name=self.model_name,
            raw_response=data,
            reasoning_content=reasoning,
            cost=self.priced(prompt_tokens, completion_tokens, cached),
            headers=limits or None,
            tool_calls=calls,
        )
        if isinstance(text, str) or (calls and finish_reason != "content_filter"):
            return response
        if finish_reason == "content_filter":
            # The answer was withheld by the provider's output filter (Azure's): asking again gets the same
            # refusal, so it is this item's, as litellm and the Anthropic transport say too.
            error = ProviderError(
                f"{self.model_name}: the model refused to answer this prompt (finish_reason: content_filter)",
                retryable=False,
                kind="content_filter",
            )
        else:
            error = ProviderError(
                f"{self.model_name}: empty response (finish_reason={finish_reason})",
                retryable=True,
                kind="invalid_output",
            )
        error.response = response  # its tokens were paid for
        raise error

    def request_payload(self, messages: Messages, schema: Schema | None = None, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of one chat call (batch mode sends the same body inside a batch file). Tools, tool
        choice and tool turns are OpenAI's own form: they go as they are."""
        tools, tool_choice, rest = tool_options({**self.params, **kwargs})
        payload = {**rest, "model": self.served_model, "messages": messages}
        if tools:
            payload["tools"] = tools
            if tool_choice is not None:
                payload["tool_choice"] = tool_choice
        if schema is not None:
            payload["response_format"] = response_format(schema)
        return adapt_request(self.prefix, self.served_model, payload)

    async def aprobe_model(self) -> str | None:
        data, _ = await self._post(self.request_payload(PROBE_MESSAGES, max_tokens=1))
        model = data.get("model")
        return model if isinstance(model, str) and model else None
