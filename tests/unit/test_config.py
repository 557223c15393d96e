"""turnout.config: YAML files, env: references, environment providers, precedence, and errors
that name the file, the key path and the fix without ever echoing a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.support import DEAD_URL, write_config
from turnout.backends.presets import PRESETS
from turnout.config import (
    DEFAULT_PORT,
    BackendConfig,
    Config,
    Timeouts,
    find_config_file,
    load_config,
)
from turnout.exceptions import ConfigError

SECRET = "sk-live-0123456789abcdefSECRET"


def load_error(path: Path, env: dict[str, str] | None = None) -> str:
    """The message of the ConfigError that loading ``path`` raises."""
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    assert info.value.code == "config_error"
    assert str(info.value) == info.value.message
    return info.value.message


def basic(**extra: Any) -> dict[str, Any]:
    return {
        "backends": {"fake": {"base_url": DEAD_URL, "api_key": "sk-test"}},
        "models": {"chat": {"deployments": [{"backend": "fake", "model": "gpt-4o-mini"}]}},
        **extra,
    }


# ----------------------------------------------------------------------------- files


def test_empty_file_gives_the_documented_defaults(isolated: Path) -> None:
    path = write_config(isolated / "empty.yaml", "")
    config = load_config(path, env={})
    assert config.source == str(path)
    assert config.backends == {} and config.models == {}
    assert config.default_model is None
    assert config.env_backends is False
    server = config.server
    assert (server.host, server.port, server.workers) == ("127.0.0.1", DEFAULT_PORT, 1)
    assert DEFAULT_PORT == 8400
    assert server.master_key is None
    assert server.max_body_bytes == 10 * 1024 * 1024
    assert server.log_requests is True
    assert server.data_dir is None


def test_full_file_is_parsed(isolated: Path) -> None:
    path = write_config(
        isolated / "turnout.yaml",
        """
server:
  host: 0.0.0.0
  port: 9000
  workers: 4
  max_body_bytes: 2048
  log_requests: false
backends:
  local:
    base_url: http://127.0.0.1:8000/v1/
    timeout: {connect: 1.5, read: 20, total: 60}
    max_connections: 64
    passthrough: false
    headers: {X-Team: ml}
  oai:
    preset: openai
    api_key: sk-abc
models:
  chat:
    description: the chat model
    deployments:
      - {backend: local, model: llama-3, weight: 9}
      - {backend: oai, model: gpt-4o-mini, weight: 1}
default_model: chat
""",
    )
    config = load_config(path, env={})
    assert config.source == str(path)
    assert (config.server.host, config.server.port, config.server.workers) == ("0.0.0.0", 9000, 4)
    assert config.server.max_body_bytes == 2048
    assert config.server.log_requests is False
    local = config.backends["local"]
    assert local.base_url == "http://127.0.0.1:8000/v1"  # trailing slash removed
    assert local.resolved_base_url == "http://127.0.0.1:8000/v1"
    assert local.timeout == Timeouts(connect=1.5, read=20, total=60)
    assert local.max_connections == 64
    assert local.passthrough is False
    assert local.headers == {"X-Team": "ml"}
    assert local.preset == "openai_compat" and local.api_key is None
    oai = config.backends["oai"]
    assert oai.base_url is None
    assert oai.resolved_base_url == "https://api.openai.com/v1"  # from the preset
    assert oai.api_key is not None and oai.api_key.get_secret_value() == "sk-abc"
    assert oai.timeout == Timeouts(connect=10.0, read=300.0, total=600.0)
    assert oai.max_connections == 512 and oai.passthrough is True
    chat = config.models["chat"]
    assert chat.description == "the chat model"
    assert [(d.backend, d.model, d.weight) for d in chat.deployments] == [
        ("local", "llama-3", 9.0),
        ("oai", "gpt-4o-mini", 1.0),
    ]
    assert config.default_model == "chat"


def test_default_model_may_be_backend_slash_model(isolated: Path) -> None:
    path = write_config(isolated / "c.yaml", basic(default_model="fake/some-model"))
    assert load_config(path, env={}).default_model == "fake/some-model"


def test_config_objects_are_frozen(isolated: Path) -> None:
    config = load_config(write_config(isolated / "c.yaml", basic()), env={})
    with pytest.raises(ValueError, match="frozen"):
        config.default_model = "other"


# -------------------------------------------------------------------- env: references


def test_env_references_are_resolved_from_the_given_environment(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "from-os-environ-must-not-be-used")
    path = write_config(
        isolated / "c.yaml",
        {
            "backends": {"fake": {"base_url": "env:UPSTREAM_URL", "api_key": "env:UPSTREAM_KEY"}},
            "models": {"chat": {"deployments": [{"backend": "fake", "model": "env:MODEL_NAME"}]}},
        },
    )
    env = {"UPSTREAM_URL": DEAD_URL, "UPSTREAM_KEY": "sk-from-env", "MODEL_NAME": "gpt-x"}
    config = load_config(path, env=env)
    fake = config.backends["fake"]
    assert fake.base_url == DEAD_URL
    assert fake.api_key is not None and fake.api_key.get_secret_value() == "sk-from-env"
    assert config.models["chat"].deployments[0].model == "gpt-x"


def test_env_reference_to_an_unset_variable_names_file_key_and_fix(isolated: Path) -> None:
    path = write_config(
        isolated / "c.yaml", {"backends": {"fake": {"base_url": DEAD_URL, "api_key": "env:NOPE"}}}
    )
    message = load_error(path, env={"OTHER": "x"})
    assert message.startswith(f"{path}: ")
    assert "backends.fake.api_key" in message
    assert "environment variable NOPE is not set" in message
    assert "export NOPE=" in message


def test_env_reference_inside_a_list_names_the_index(isolated: Path) -> None:
    path = write_config(
        isolated / "c.yaml",
        {
            "backends": {"fake": {"base_url": DEAD_URL}},
            "models": {"chat": {"deployments": [{"backend": "fake", "model": "env:MISSING"}]}},
        },
    )
    assert "models.chat.deployments[0].model" in load_error(path)


def test_master_key_from_an_env_reference(isolated: Path) -> None:
    path = write_config(isolated / "c.yaml", {"server": {"master_key": "env:MY_MASTER"}})
    config = load_config(path, env={"MY_MASTER": "sk-master-1"})
    assert config.server.master_key is not None
    assert config.server.master_key.get_secret_value() == "sk-master-1"


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("content", "path", "suggestion"),
    [
        ({"servr": {}}, "servr", "server"),
        ({"server": {"prot": 1}}, "server.prot", "port"),
        (
            {"backends": {"b": {"base_url": DEAD_URL, "api_kye": "x"}}},
            "backends.b.api_kye",
            "api_key",
        ),
        (
            {"backends": {"b": {"base_url": DEAD_URL, "timeout": {"conect": 1}}}},
            "backends.b.timeout.conect",
            "connect",
        ),
        (
            {
                "backends": {"b": {"base_url": DEAD_URL}},
                "models": {"m": {"deployments": [{"backend": "b", "model": "x", "wieght": 2}]}},
            },
            "models.m.deployments.0.wieght",
            "weight",
        ),
        (
            {"models": {"m": {"descripton": "x", "deployments": []}}},
            "models.m.descripton",
            "description",
        ),
    ],
)
def test_unknown_key_names_path_and_suggests_the_spelling(
    isolated: Path, content: dict[str, Any], path: str, suggestion: str
) -> None:
    file = write_config(isolated / "c.yaml", content)
    message = load_error(file)
    assert message.startswith(f"{file}: invalid configuration:")
    assert f"{path}: unknown key (did you mean {suggestion!r}?)" in message
    assert "remove it or fix the spelling" in message


def test_unknown_key_without_a_close_match_has_no_suggestion(isolated: Path) -> None:
    file = write_config(isolated / "c.yaml", {"zzzzzz": 1})
    message = load_error(file)
    assert "zzzzzz: unknown key; remove it or fix the spelling" in message
    assert "did you mean" not in message


def test_suggestion_is_right_for_a_backend_named_like_a_field(isolated: Path) -> None:
    file = write_config(
        isolated / "c.yaml", {"backends": {"timeout": {"base_url": DEAD_URL, "api_kye": "x"}}}
    )
    assert "did you mean 'api_key'?" in load_error(file)


def test_every_error_is_listed_not_only_the_first(isolated: Path) -> None:
    file = write_config(
        isolated / "c.yaml", {"server": {"port": 70000, "workers": 0, "host": "127.0.0.1"}}
    )
    message = load_error(file)
    assert "server.port: Input should be less than or equal to 65535 (got 70000)" in message
    assert "server.workers: Input should be greater than or equal to 1 (got 0)" in message


@pytest.mark.parametrize("url", ["api.openai.com/v1", "ftp://host/v1", "localhost:8000"])
def test_bad_base_url(isolated: Path, url: str) -> None:
    file = write_config(isolated / "c.yaml", {"backends": {"b": {"base_url": url}}})
    message = load_error(file)
    assert f"{file}: invalid configuration:" in message
    assert f"backends.b.base_url: {url!r} is not an http(s) URL" in message
    assert "write e.g. https://host/v1" in message


def test_unknown_preset_lists_the_presets(isolated: Path) -> None:
    file = write_config(isolated / "c.yaml", {"backends": {"b": {"preset": "opneai"}}})
    message = load_error(file)
    assert "backends.b.preset: unknown preset 'opneai'; choose one of: " in message
    for name in PRESETS:
        assert name in message


@pytest.mark.parametrize("preset", [p.name for p in PRESETS.values() if p.base_url is None])
def test_preset_without_url_requires_base_url(isolated: Path, preset: str) -> None:
    file = write_config(isolated / "c.yaml", {"backends": {"b": {"preset": preset}}})
    message = load_error(file)
    assert f"backends.b: base_url is required for preset {preset!r}" in message
    assert "set base_url: https://" in message


def test_deployment_referencing_an_unknown_backend(isolated: Path) -> None:
    file = write_config(
        isolated / "c.yaml",
        {
            "backends": {"real": {"base_url": DEAD_URL}, "other": {"base_url": DEAD_URL}},
            "models": {
                "chat": {
                    "deployments": [
                        {"backend": "real", "model": "a"},
                        {"backend": "typo", "model": "b"},
                    ]
                }
            },
        },
    )
    message = load_error(file)
    assert f"{file}: invalid configuration:" in message
    assert "models.chat.deployments[1].backend: no backend named 'typo'" in message
    assert "define it under backends:" in message
    assert "['other', 'real']" in message


def test_deployment_with_no_backends_defined(isolated: Path) -> None:
    file = write_config(
        isolated / "c.yaml", {"models": {"chat": {"deployments": [{"backend": "x", "model": "m"}]}}}
    )
    assert "(none defined)" in load_error(file)


def test_model_needs_deployments(isolated: Path) -> None:
    file = write_config(isolated / "c.yaml", {"models": {"chat": {"description": "no deps"}}})
    assert "models.chat.deployments: required; add it" in load_error(file)
    file = write_config(isolated / "c.yaml", {"models": {"chat": {"deployments": []}}})
    assert "models.chat.deployments: List should have at least 1 item" in load_error(file)


def test_negative_weight(isolated: Path) -> None:
    file = write_config(
        isolated / "c.yaml",
        basic(models={"chat": {"deployments": [{"backend": "fake", "model": "m", "weight": -1}]}}),
    )
    message = load_error(file)
    assert "models.chat.deployments.0.weight: Input should be greater than or equal to 0" in message
    assert "(got -1)" in message


def test_unknown_default_model_lists_the_models(isolated: Path) -> None:
    file = write_config(isolated / "c.yaml", basic(default_model="nope"))
    message = load_error(file)
    assert f"{file}: invalid configuration:" in message
    assert "default_model: 'nope' is not a model; use one of ['chat'] or BACKEND/MODEL" in message


def test_default_model_with_an_unknown_backend_prefix(isolated: Path) -> None:
    file = write_config(isolated / "c.yaml", basic(default_model="nobackend/gpt-4o"))
    assert "default_model: 'nobackend/gpt-4o' is not a model" in load_error(file)


def test_default_model_through_a_closed_backend_is_refused(isolated: Path) -> None:
    content = basic(default_model="fake/gpt-4o")
    content["backends"]["fake"]["passthrough"] = False
    file = write_config(isolated / "c.yaml", content)
    assert "default_model" in load_error(file)


def test_invalid_yaml_gives_the_line_number(isolated: Path) -> None:
    file = write_config(isolated / "c.yaml", "server:\n  port: 8400\n  host: a: b\n")
    message = load_error(file)
    assert message.startswith(f"{file} (line 3, column ")
    assert "not valid YAML" in message
    assert message.endswith("fix the syntax")


@pytest.mark.parametrize("content", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(isolated: Path, content: str) -> None:
    file = write_config(isolated / "c.yaml", content)
    assert load_error(file) == (
        f"{file}: the top level must be a mapping (server:, backends:, ...)"
    )


def test_unreadable_config_path_is_a_config_error(isolated: Path) -> None:
    folder = isolated / "a-directory.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(folder, env={})


# ---------------------------------------------------------------- secrets stay secret


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            {"backends": {"b": {"base_url": DEAD_URL, "api_key": 98765432109876}}}, id="api_key-int"
        ),
        pytest.param({"server": {"master_key": 98765432109876}}, id="master_key-int"),
        pytest.param(
            {"backends": {"b": {"base_url": DEAD_URL, "api_key": [SECRET]}}}, id="api_key-list"
        ),
        pytest.param(
            {"backends": {"b": {"base_url": DEAD_URL, "api_kye": SECRET}}}, id="misspelt-key"
        ),
        pytest.param(
            {"backends": {"b": {"base_url": "not-a-url", "api_key": SECRET}}}, id="sibling-error"
        ),
        pytest.param(
            {"backends": {"b": {"preset": "azure", "api_key": SECRET}}}, id="model-level-error"
        ),
    ],
)
def test_a_bad_secret_value_is_never_echoed(isolated: Path, content: dict[str, Any]) -> None:
    message = load_error(write_config(isolated / "c.yaml", content))
    assert SECRET not in message
    assert "98765432109876" not in message


def test_yaml_syntax_error_does_not_echo_the_line_with_a_secret(isolated: Path) -> None:
    file = write_config(
        isolated / "c.yaml", f'backends:\n  openai:\n    api_key: "{SECRET}\nmodels: {{}}\n'
    )
    message = load_error(file)
    assert "line" in message
    assert SECRET not in message


def test_secrets_do_not_appear_in_repr(isolated: Path) -> None:
    file = write_config(
        isolated / "c.yaml", {"backends": {"b": {"base_url": DEAD_URL, "api_key": SECRET}}}
    )
    config = load_config(file, env={"TURNOUT_MASTER_KEY": SECRET + "-master"})
    assert SECRET not in repr(config) and SECRET not in str(config)
    assert SECRET not in config.model_dump_json()
    assert config.backends["b"].api_key is not None
    assert config.backends["b"].api_key.get_secret_value() == SECRET


# ------------------------------------------------- no file: providers from the environment


def test_no_file_and_no_keys_gives_no_backends(isolated: Path) -> None:
    config = load_config(env={})
    assert config.source is None
    assert config.backends == {} and config.models == {}


def test_openai_key_and_base_url(isolated: Path) -> None:
    config = load_config(
        env={"OPENAI_API_KEY": "sk-openai", "OPENAI_BASE_URL": "http://127.0.0.1:5000/v1/"}
    )
    assert list(config.backends) == ["openai"]
    openai = config.backends["openai"]
    assert openai.preset == "openai"
    assert openai.base_url == "http://127.0.0.1:5000/v1"
    assert openai.api_key is not None and openai.api_key.get_secret_value() == "sk-openai"
    assert openai.passthrough is True
    assert config.models == {}


def test_openai_key_alone_uses_the_public_endpoint(isolated: Path) -> None:
    openai = load_config(env={"OPENAI_API_KEY": "sk-openai"}).backends["openai"]
    assert openai.base_url is None
    assert openai.resolved_base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize(
    ("variable", "preset", "url"),
    [
        ("ANTHROPIC_API_KEY", "anthropic", "https://api.anthropic.com/v1"),
        ("GROQ_API_KEY", "groq", "https://api.groq.com/openai/v1"),
        ("DEEPSEEK_API_KEY", "deepseek", "https://api.deepseek.com/v1"),
        ("MISTRAL_API_KEY", "mistral", "https://api.mistral.ai/v1"),
        ("GEMINI_API_KEY", "gemini", "https://generativelanguage.googleapis.com/v1beta/openai"),
    ],
)
def test_provider_key_registers_its_preset(
    isolated: Path, variable: str, preset: str, url: str
) -> None:
    config = load_config(env={variable: "sk-xyz"})
    assert list(config.backends) == [preset]
    backend = config.backends[preset]
    assert backend.preset == preset
    assert backend.resolved_base_url == url
    assert backend.api_key is not None and backend.api_key.get_secret_value() == "sk-xyz"


def test_every_preset_with_a_key_and_a_url_is_registered_from_the_environment(
    isolated: Path,
) -> None:
    auto = [p for p in PRESETS.values() if p.key_env and p.base_url]
    env = {p.key_env: f"key-{p.name}" for p in auto if p.key_env}
    config = load_config(env=env)
    assert sorted(config.backends) == sorted(p.name for p in auto)
    for preset in auto:
        key = config.backends[preset.name].api_key
        assert key is not None and key.get_secret_value() == f"key-{preset.name}"


def test_local_presets_are_never_registered_from_the_environment(isolated: Path) -> None:
    for preset in PRESETS.values():
        if preset.local:
            assert preset.key_env is None, preset.name


def test_several_providers_at_once(isolated: Path) -> None:
    config = load_config(
        env={"OPENAI_API_KEY": "a", "ANTHROPIC_API_KEY": "b", "GROQ_API_KEY": "c", "UNRELATED": "d"}
    )
    assert sorted(config.backends) == ["anthropic", "groq", "openai"]


def test_empty_key_is_ignored(isolated: Path) -> None:
    assert load_config(env={"OPENAI_API_KEY": ""}).backends == {}


def test_azure_without_an_endpoint_is_skipped(isolated: Path) -> None:
    config = load_config(env={"AZURE_OPENAI_API_KEY": "az-key", "OPENAI_API_VERSION": "2024-10-21"})
    assert config.backends == {}


def test_azure_with_an_endpoint_and_api_version(isolated: Path) -> None:
    config = load_config(
        env={
            "AZURE_OPENAI_API_KEY": "az-key",
            "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/",
            "OPENAI_API_VERSION": "2024-10-21",
        }
    )
    azure = config.backends["azure"]
    assert azure.preset == "azure"
    assert azure.base_url == "https://res.openai.azure.com"
    assert azure.api_version == "2024-10-21"
    assert azure.api_key is not None and azure.api_key.get_secret_value() == "az-key"


def test_google_api_key_registers_gemini_and_gemini_key_wins(isolated: Path) -> None:
    gemini = load_config(env={"GOOGLE_API_KEY": "g-key"}).backends["gemini"]
    assert gemini.preset == "gemini"
    assert gemini.api_key is not None and gemini.api_key.get_secret_value() == "g-key"
    both = load_config(env={"GOOGLE_API_KEY": "g-key", "GEMINI_API_KEY": "gem-key"})
    key = both.backends["gemini"].api_key
    assert key is not None and key.get_secret_value() == "gem-key"


def test_environment_argument_is_the_only_source_of_provider_keys(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-os-environ")
    assert load_config(env={}).backends == {}
    assert list(load_config().backends) == ["openai"]  # env=None reads os.environ


def test_with_a_file_environment_providers_are_not_added(isolated: Path) -> None:
    file = write_config(isolated / "c.yaml", basic())
    config = load_config(file, env={"OPENAI_API_KEY": "sk-openai"})
    assert list(config.backends) == ["fake"]


def test_env_backends_true_adds_providers_and_the_file_wins(isolated: Path) -> None:
    content = basic(env_backends=True)
    content["backends"]["openai"] = {"base_url": DEAD_URL, "api_key": "from-file"}
    file = write_config(isolated / "c.yaml", content)
    config = load_config(file, env={"OPENAI_API_KEY": "from-env", "GROQ_API_KEY": "groq-key"})
    assert sorted(config.backends) == ["fake", "groq", "openai"]
    openai = config.backends["openai"]
    assert openai.base_url == DEAD_URL
    assert openai.api_key is not None and openai.api_key.get_secret_value() == "from-file"


def test_bad_provider_base_url_from_the_environment(isolated: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"OPENAI_API_KEY": "sk-openai", "OPENAI_BASE_URL": "localhost:8000"})
    message = info.value.message
    assert "OPENAI_BASE_URL='localhost:8000' is not an http(s) URL" in message
    assert "export OPENAI_BASE_URL=https://host/v1 or unset it" in message
    assert "sk-openai" not in message


def test_bad_provider_base_url_names_the_variable(isolated: Path) -> None:
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        load_config(env={"OPENAI_API_KEY": "sk-openai", "OPENAI_BASE_URL": "localhost:8000"})


# ------------------------------------------------------------------------- precedence


def _marked(path: Path, port: int) -> Path:
    return write_config(path, {"server": {"port": port}})


def test_explicit_path_beats_turnout_config_beats_local_file(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _marked(isolated / "turnout.yaml", 1001)
    from_env = _marked(isolated / "env.yaml", 1002)
    explicit = _marked(isolated / "explicit.yaml", 1003)

    assert find_config_file() == Path("turnout.yaml")
    config = load_config(env={})
    assert (config.server.port, config.source) == (1001, "turnout.yaml")
    assert config.source is not None and Path(config.source).resolve() == local.resolve()

    monkeypatch.setenv("TURNOUT_CONFIG", str(from_env))
    assert find_config_file() == from_env
    assert load_config(env={}).server.port == 1002

    assert find_config_file(explicit) == explicit
    config = load_config(explicit, env={})
    assert (config.server.port, config.source) == (1003, str(explicit))


def test_no_file_anywhere(isolated: Path) -> None:
    assert find_config_file() is None
    assert load_config(env={}).source is None


def test_turnout_config_pointing_nowhere(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _marked(isolated / "turnout.yaml", 1001)  # must not be used as a silent fallback
    missing = isolated / "missing.yaml"
    monkeypatch.setenv("TURNOUT_CONFIG", str(missing))
    with pytest.raises(ConfigError) as info:
        load_config(env={})
    assert info.value.message == f"{missing}: no such file (from TURNOUT_CONFIG); fix or unset it"


def test_explicit_path_pointing_nowhere(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURNOUT_CONFIG", str(_marked(isolated / "env.yaml", 1002)))
    missing = isolated / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, env={})
    assert info.value.message == (
        f"{missing}: no such configuration file; check the path given to --config"
    )


# ------------------------------------------------------------------ master key, data dir


def test_turnout_master_key_overrides_the_file(isolated: Path) -> None:
    file = write_config(isolated / "c.yaml", {"server": {"master_key": "sk-file", "port": 1234}})
    config = load_config(file, env={"TURNOUT_MASTER_KEY": "sk-env"})
    assert config.server.master_key is not None
    assert config.server.master_key.get_secret_value() == "sk-env"
    assert config.server.port == 1234  # the rest of server: is kept
    config = load_config(file, env={})
    assert config.server.master_key is not None
    assert config.server.master_key.get_secret_value() == "sk-file"


def test_turnout_master_key_without_a_file(isolated: Path) -> None:
    config = load_config(env={"TURNOUT_MASTER_KEY": "sk-env"})
    assert config.server.master_key is not None
    assert config.server.master_key.get_secret_value() == "sk-env"
    assert load_config(env={}).server.master_key is None


def test_data_path_precedence(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(isolated / "home"))
    monkeypatch.delenv("TURNOUT_HOME")
    assert load_config(env={}).data_path == isolated / "home" / ".turnout"
    monkeypatch.setenv("TURNOUT_HOME", str(isolated / "th"))
    assert load_config(env={}).data_path == isolated / "th"
    file = write_config(isolated / "c.yaml", {"server": {"data_dir": "~/data"}})
    assert load_config(file, env={}).data_path == isolated / "home" / "data"


def test_backend_config_is_usable_directly() -> None:
    backend = BackendConfig(preset="ollama")
    assert backend.resolved_base_url == "http://127.0.0.1:11434/v1"
    assert Config().backends == {}
