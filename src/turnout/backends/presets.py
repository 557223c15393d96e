"""Named presets for OpenAI-compatible services: base URL, auth style, environment, quirks.

A preset fills in what a user would otherwise have to look up. Anything a preset sets can be
overridden per backend in the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AuthStyle = Literal["bearer", "api-key", "none"]


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    title: str
    base_url: str | None
    auth: AuthStyle = "bearer"
    #: environment variable holding the API key; the backend is registered automatically when
    #: it is set and no configuration file says otherwise
    key_env: str | None = None
    #: environment variable (as honoured by the provider's official SDK) overriding base_url
    base_url_env: str | None = None
    #: whether the service accepts ``stream_options.include_usage`` (usage in streams)
    stream_usage: bool = True
    #: request fields the service rejects; dropped before the request leaves
    drop_fields: tuple[str, ...] = ()
    #: Azure-style URLs: {base}/openai/deployments/{model}/...?api-version=...
    azure_deployments: bool = False
    #: whether the service runs on the operator's own hardware (matters for privacy routing)
    local: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)
    notes: str = ""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "openai",
            "OpenAI",
            "https://api.openai.com/v1",
            key_env="OPENAI_API_KEY",
            base_url_env="OPENAI_BASE_URL",
        ),
        Preset(
            "azure",
            "Azure OpenAI",
            None,
            auth="api-key",
            key_env="AZURE_OPENAI_API_KEY",
            base_url_env="AZURE_OPENAI_ENDPOINT",
            azure_deployments=True,
            notes="Set base_url to https://RESOURCE.openai.azure.com and api_version for "
            "deployment URLs; without api_version the v1 API ({base}/openai/v1) is used. The "
            "deployment name is the upstream model.",
        ),
        Preset(
            "anthropic",
            "Anthropic (OpenAI-compatible endpoint)",
            "https://api.anthropic.com/v1",
            key_env="ANTHROPIC_API_KEY",
            stream_usage=True,
            notes="Anthropic's OpenAI SDK compatibility layer; ignores logprobs and n>1.",
        ),
        Preset(
            "gemini",
            "Google Gemini (OpenAI-compatible endpoint)",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            key_env="GEMINI_API_KEY",
        ),
        Preset("deepseek", "DeepSeek", "https://api.deepseek.com/v1", key_env="DEEPSEEK_API_KEY"),
        Preset(
            "qwen",
            "Qwen (Alibaba Cloud DashScope, compatible mode)",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            key_env="DASHSCOPE_API_KEY",
            notes="International accounts: https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        ),
        Preset(
            "qianfan",
            "Baidu Qianfan (ERNIE, v2 API)",
            "https://qianfan.baidubce.com/v2",
            key_env="QIANFAN_API_KEY",
        ),
        Preset(
            "mistral",
            "Mistral AI",
            "https://api.mistral.ai/v1",
            key_env="MISTRAL_API_KEY",
            drop_fields=("stream_options",),
            stream_usage=False,
            notes="Rejects fields it does not know; usage arrives in the last stream chunk anyway.",
        ),
        Preset(
            "groq",
            "Groq",
            "https://api.groq.com/openai/v1",
            key_env="GROQ_API_KEY",
            notes="n must be 1; logprobs and logit_bias are refused by the service.",
        ),
        Preset(
            "openrouter",
            "OpenRouter",
            "https://openrouter.ai/api/v1",
            key_env="OPENROUTER_API_KEY",
            extra_headers={"X-Title": "turnout"},
        ),
        Preset(
            "vllm",
            "vLLM server",
            "http://127.0.0.1:8000/v1",
            auth="bearer",
            local=True,
            notes="Set api_key only if the server was started with --api-key.",
        ),
        Preset(
            "ollama",
            "Ollama",
            "http://127.0.0.1:11434/v1",
            auth="none",
            local=True,
        ),
        Preset(
            "llamacpp",
            "llama.cpp server",
            "http://127.0.0.1:8080/v1",
            auth="bearer",
            local=True,
            notes="Set api_key only if llama-server was started with --api-key.",
        ),
        Preset(
            "tgi",
            "Hugging Face Text Generation Inference",
            "http://127.0.0.1:8080/v1",
            auth="bearer",
            local=True,
            stream_usage=False,
            notes="The Messages API serves one model; any model name is accepted.",
        ),
        Preset(
            "openai_compat",
            "Any OpenAI-compatible service",
            None,
            notes="No defaults: set base_url (e.g. https://host/v1) and, if needed, api_key.",
        ),
    ]
}


def get_preset(name: str) -> Preset:
    """Return the preset called ``name`` (KeyError lists the valid names)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
