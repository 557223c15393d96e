"""Token prices: US dollars per million input and output tokens, per upstream model.

The built-in table holds public list prices (standard tier, no batch or cache discounts) as
published by the providers on the date in :data:`PRICES_AS_OF`; prices change, so the
configuration's ``prices:`` section overrides or extends it. A dated model name
(``gpt-4o-mini-2024-07-18``) takes the price of its longest listed prefix. Models served on
the operator's own hardware cost nothing per token here: their cost is the hardware's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUILTIN_PRICES", "PRICES_AS_OF", "Price", "PriceTable"]

PRICES_AS_OF = "2025-10-01"


@dataclass(frozen=True, slots=True)
class Price:
    #: dollars per million prompt tokens
    input: float
    #: dollars per million completion tokens
    output: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6

    @property
    def blended(self) -> float:
        """One number to order deployments by: input plus output price."""
        return self.input + self.output


BUILTIN_PRICES: dict[str, Price] = {
    # OpenAI, https://openai.com/api/pricing/
    "gpt-5": Price(1.25, 10.0),
    "gpt-5-mini": Price(0.25, 2.0),
    "gpt-5-nano": Price(0.05, 0.40),
    "gpt-4.1": Price(2.0, 8.0),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o": Price(2.50, 10.0),
    "gpt-4o-mini": Price(0.15, 0.60),
    "o3": Price(2.0, 8.0),
    "o4-mini": Price(1.10, 4.40),
    "text-embedding-3-small": Price(0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.0),
    # Anthropic, https://www.anthropic.com/pricing#api
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.80, 4.0),
    # Google, https://ai.google.dev/gemini-api/docs/pricing (prompts up to 200k tokens)
    "gemini-2.5-pro": Price(1.25, 10.0),
    "gemini-2.5-flash": Price(0.30, 2.50),
    "gemini-2.5-flash-lite": Price(0.10, 0.40),
    "gemini-2.0-flash": Price(0.10, 0.40),
    # DeepSeek, https://api-docs.deepseek.com/quick_start/pricing (cache miss)
    "deepseek-chat": Price(0.28, 0.42),
    "deepseek-reasoner": Price(0.28, 0.42),
    # Mistral, https://mistral.ai/pricing#api-pricing
    "mistral-large-latest": Price(2.0, 6.0),
    "mistral-small-latest": Price(0.10, 0.30),
}


class PriceTable:
    """Built-in prices overlaid with the configured ones; keys are upstream model names,
    optionally qualified by backend (``openai/gpt-4o``), the qualified entry winning."""

    def __init__(self, overrides: dict[str, Price] | None = None) -> None:
        self._prices = {**BUILTIN_PRICES, **(overrides or {})}
        self._memo: dict[tuple[str, str], Price | None] = {}

    def lookup(self, backend: str, model: str) -> Price | None:
        key = (backend, model)
        if key not in self._memo:
            self._memo[key] = self._find(f"{backend}/{model}") or self._find(model)
        return self._memo[key]

    def _find(self, name: str) -> Price | None:
        price = self._prices.get(name)
        if price is not None:
            return price
        best = ""
        for known in self._prices:
            if name.startswith(known + "-") and len(known) > len(best):
                best = known
        return self._prices.get(best) if best else None
