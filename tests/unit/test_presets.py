"""turnout.backends.presets: every preset is complete and consistent."""

from __future__ import annotations

import pytest

from turnout.backends.presets import PRESETS, Preset, get_preset
from turnout.config import BackendConfig

_NEEDS_URL = [p for p in PRESETS.values() if p.base_url is None]


def test_names_match_their_keys() -> None:
    assert len(PRESETS) >= 15
    for name, preset in PRESETS.items():
        assert isinstance(preset, Preset)
        assert preset.name == name
        assert preset.title


@pytest.mark.parametrize("preset", list(PRESETS.values()), ids=list(PRESETS))
def test_preset_is_well_formed(preset: Preset) -> None:
    assert preset.auth in ("bearer", "api-key", "none")
    if preset.base_url is not None:
        scheme = "http://127.0.0.1:" if preset.local else "https://"
        assert preset.base_url.startswith(scheme), preset.base_url
        assert not preset.base_url.endswith("/"), "URLs are joined as f'{base}/{path}'"
        assert BackendConfig(preset=preset.name).resolved_base_url == preset.base_url
    if preset.key_env is not None:
        assert preset.key_env.endswith("_API_KEY")
    if preset.auth == "none":
        assert preset.key_env is None
    for name in preset.drop_fields:
        assert name not in ("model", "messages", "prompt", "input")


@pytest.mark.parametrize("preset", _NEEDS_URL, ids=[p.name for p in _NEEDS_URL])
def test_preset_without_a_url_documents_that_it_needs_one(preset: Preset) -> None:
    assert "base_url" in preset.notes


@pytest.mark.parametrize("preset", _NEEDS_URL, ids=[p.name for p in _NEEDS_URL])
def test_preset_without_a_url_is_refused_without_base_url(preset: Preset) -> None:
    with pytest.raises(ValueError, match=f"base_url is required for preset '{preset.name}'"):
        BackendConfig(preset=preset.name)
    assert BackendConfig(preset=preset.name, base_url="https://h/v1").resolved_base_url == (
        "https://h/v1"
    )


def test_key_variables_are_unique() -> None:
    keys = [p.key_env for p in PRESETS.values() if p.key_env]
    assert len(keys) == len(set(keys))


def test_known_details() -> None:
    assert get_preset("openai").base_url == "https://api.openai.com/v1"
    assert get_preset("openai").base_url_env == "OPENAI_BASE_URL"
    azure = get_preset("azure")
    assert (azure.auth, azure.key_env, azure.base_url_env) == (
        "api-key",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_ENDPOINT",
    )
    assert azure.azure_deployments is True
    assert get_preset("ollama").auth == "none"
    assert get_preset("mistral").drop_fields == ("stream_options",)
    assert get_preset("mistral").stream_usage is False
    assert get_preset("openrouter").extra_headers == {"X-Title": "turnout"}
    assert {p.name for p in PRESETS.values() if p.local} == {"vllm", "ollama", "llamacpp", "tgi"}


def test_get_preset_error_lists_every_name() -> None:
    with pytest.raises(KeyError) as info:
        get_preset("nope")
    message = info.value.args[0]
    assert message.startswith("unknown preset 'nope'; choose one of: ")
    assert message.endswith(", ".join(PRESETS))
