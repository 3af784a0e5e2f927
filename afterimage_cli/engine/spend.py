"""Spending budgets (`budget.max_cost_usd`, `budget.max_total_tokens`): refused up front when they cannot be
measured, and once reached, no new item starts while the items already paid for finish."""

from __future__ import annotations

from ..config import Config, ModelConfig
from ..errors import BudgetExceeded, ConfigError
from ..monitor import GenerationMonitor, current_usage
from ..providers.factory import model_price


class SpendLimit:
    """The run's spending against its budget. Once reached (`exhausted`), a call that would start a new
    item is refused with BudgetExceeded; calls of an item already under way go on, so its row is written
    instead of its paid calls being thrown away. Outside an item (persona generation, the judge of
    `evaluate`) every call after the budget is refused."""

    def __init__(self, monitor: GenerationMonitor, max_cost: float | None, max_tokens: int | None) -> None:
        self.monitor = monitor
        self.max_cost = max_cost
        self.max_tokens = max_tokens

    @property
    def exhausted(self) -> str | None:
        """Why the budget is spent, or None while it is not."""
        usage = self.monitor.usage
        if self.max_cost is not None and usage.cost >= self.max_cost:
            return f"cost budget reached: ${usage.cost:.4f} spent of ${self.max_cost:g}"
        tokens = usage.prompt_tokens + usage.completion_tokens
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return f"token budget reached: {tokens:,} tokens used of {self.max_tokens:,}"
        return None

    def check(self) -> None:
        """Before a call: raise BudgetExceeded if the budget is spent and the call would start a new item."""
        reason = self.exhausted
        if reason is None:
            return
        item = current_usage.get()
        if item is not None and item.calls > 0:
            return
        raise BudgetExceeded(reason)


def budgeted_models(cfg: Config) -> list[tuple[str, ModelConfig]]:
    """(config field, model) of every model a `generate` run may call and pay for."""
    models = [("respondent", cfg.respondent)]
    if cfg.correspondent is not None:
        models.append(("correspondent", cfg.correspondent))
    if cfg.persona_generation is not None and cfg.persona_generation.model is not None:
        models.append(("persona_generation.model", cfg.persona_generation.model))
    if cfg.quality.auto_improve and cfg.evaluation.judge is not None:
        models.append(("evaluation.judge", cfg.evaluation.judge))
    if cfg.tools is not None and cfg.tools.simulator is not None:
        models.append(("tools.simulator", cfg.tools.simulator))
    return models


def require_prices(max_cost: float | None, models: list[tuple[str, ModelConfig]]) -> None:
    """A cost budget over a model without a price would never trip: refuse it, naming the fields to set."""
    if max_cost is None:
        return
    for field, model in models:
        if model_price(model) is None:
            raise ConfigError(
                f"budget.max_cost_usd (--max-cost) cannot be enforced: {field} model {model.model!r} has no known "
                f"price; set {field}.input_cost_per_million and {field}.output_cost_per_million (USD per "
                "million tokens)"
            )
