"""The exception tree. The CLI maps these to exit codes in one place (cli/errors.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .providers.base import LLMResponse


class AfterimageError(Exception):
    """Base of every error afterimage raises on purpose."""

    exit_code = 1


class UsageError(AfterimageError):
    """Bad flag or argument combination."""

    exit_code = 2


class ConfigError(AfterimageError):
    """A config file or field is wrong; the message names the file, line and field."""

    exit_code = 2


class UnknownComponentError(ConfigError):
    """A name given for a provider, storage, generator … is not registered."""


class MissingCredentialsError(AfterimageError):
    """An API key environment variable is not set; the message says which one to set."""

    exit_code = 2


class InputError(AfterimageError):
    """A row of input data (JSONL) is malformed; the message names the line."""

    exit_code = 1


class DamagedOutputError(InputError):
    """An output to resume is damaged in the middle (not just a torn tail); the message says how to save its rows."""


class HubError(AfterimageError):
    """The Hugging Face Hub refused a push or could not be reached; the message says what it answered."""


class ProviderError(AfterimageError):
    """An LLM call failed. `retryable` says whether trying again can help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
        kind: str = "error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after
        self.kind = kind
        # The answer, when the server gave one that is unusable: its tokens were billed all the same.
        self.response: LLMResponse | None = None


# Refusals that belong to one item's request, not to the run: the item is rejected and the run goes on.
ITEM_LEVEL_KINDS = frozenset({"context_limit", "content_filter", "bad_request", "truncated"})


def is_item_level(error: ProviderError) -> bool:
    """Whether the error condemns only the item whose request caused it (a 401 or 404 condemns the run)."""
    return not error.retryable and error.kind in ITEM_LEVEL_KINDS


class OutputValidationError(ProviderError):
    """The model answered, but its output is unusable (bad JSON, schema mismatch, empty)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, kind="invalid_output")


class ItemRejected(AfterimageError):
    """One item cannot make a row (its dialog overflows before min_turns, its answers stay truncated, …)."""

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class RunAborted(AfterimageError):
    """The run stopped early on purpose (error budget, fatal provider error)."""


class BudgetExceeded(RunAborted):
    """A cost or token budget was reached; the output is flushed and resumable."""


class OutputConflictError(AfterimageError):
    """The output file holds rows of a different run; --overwrite replaces it."""

    exit_code = 2
