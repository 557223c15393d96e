"""Workloads: JSONL files with errors that say where and what to fix, and the built-in set."""

from __future__ import annotations

from pathlib import Path

import pytest

from turnout.advisor.exposure import exposure
from turnout.advisor.workload import builtin_workload, load_workload
from turnout.config import PrivacyConfig
from turnout.exceptions import ConfigError
from turnout.policies.privacy import Detector


def test_builtin_set_mixes_kinds_and_carries_some_sensitive_data() -> None:
    workload = builtin_workload()
    assert workload.source == "built-in"
    assert workload.kinds() == {"short": 4, "summary": 4, "code": 4}
    assert all(item.body["max_tokens"] > 0 for item in workload.items)
    assert all("model" not in item.body for item in workload.items)
    found = exposure(workload, Detector())
    assert found["sensitive_requests"] == 2
    assert found["by_category"] == {"api_key": 1, "email": 1, "phone": 1}


def test_jsonl_lines_become_requests(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text(
        "# a comment\n"
        '{"model": "ignored", "stream": true, "messages": [{"role": "user", "content": "a"}],'
        ' "max_tokens": 100, "temperature": 0.2}\n'
        "\n"
        '{"messages": [{"role": "user", "content": "b"}], "max_completion_tokens": 3}\n'
    )
    workload = load_workload(str(path), max_tokens=10)
    assert workload.source == str(path)
    first, second = (item.body for item in workload.items)
    assert first == {
        "messages": [{"role": "user", "content": "a"}],
        "max_tokens": 10,
        "temperature": 0.2,
    }
    assert second == {"messages": [{"role": "user", "content": "b"}], "max_tokens": 3}
    assert workload.item(5) is workload.items[1]  # requests cycle through the workload


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2: not JSON"),
        ("[1, 2]", "line 2: not a JSON object"),
        ('{"messages": []}', 'line 2: no "messages" list'),
    ],
)
def test_bad_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "ok"}]}\n' + line + "\n")
    with pytest.raises(ConfigError, match=message):
        load_workload(str(path))


def test_empty_or_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n# nothing\n")
    with pytest.raises(ConfigError, match="the workload is empty"):
        load_workload(str(empty))
    with pytest.raises(ConfigError, match="cannot read the workload"):
        load_workload(str(tmp_path / "missing.jsonl"))


def test_the_configured_patterns_count_as_sensitive(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "ticket ACME-4411 again"}]}\n')
    detector = Detector(PrivacyConfig(patterns={"ticket": r"ACME-\d+"}))
    found = exposure(load_workload(str(path)), detector)
    assert found["by_category"] == {"custom:ticket": 1}
