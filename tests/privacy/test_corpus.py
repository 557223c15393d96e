"""The labelled corpus (tests/privacy/corpus.jsonl): what it holds, how well the detector
does on it, category by category, and that docs/privacy.md reports exactly that."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from turnout.policies.privacy import CATEGORIES, Detector

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "privacy_report.py"

#: the floor for every category, set below what the detector scores today (see
#: docs/privacy.md) so that a regression in any one category fails
MIN_PRECISION = 0.85
MIN_RECALL = 0.85
#: and for all categories together
MIN_TOTAL_PRECISION = 0.95
MIN_TOTAL_RECALL = 0.92


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("privacy_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return load_script()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def rows(report: Any) -> list[dict[str, Any]]:
    return report.load_corpus()  # type: ignore[no-any-return]


def test_the_corpus_is_large_bilingual_and_covers_every_category(
    rows: list[dict[str, Any]],
) -> None:
    assert len(rows) >= 200
    langs = Counter(row["lang"] for row in rows)
    assert langs["en"] >= 80 and langs["zh"] >= 80 and set(langs) == {"en", "zh"}
    assert len({row["id"] for row in rows}) == len(rows)
    positives = Counter(name for row in rows for name in row["expected"])
    assert set(positives) == set(CATEGORIES)
    for name in CATEGORIES:
        assert positives[name] >= 10, name
        in_chinese = [r for r in rows if name in r["expected"] and r["lang"] == "zh"]
        assert len(in_chinese) >= 2, f"{name}: too few Chinese prompts"
    near_misses = [row for row in rows if row["note"].startswith("near miss")]
    assert len(near_misses) >= 60
    assert all(not row["expected"] for row in near_misses)
    for row in rows:
        for value in row["values"]:
            assert value in row["text"], row["id"]


def test_precision_and_recall_per_category(report: Any, rows: list[dict[str, Any]]) -> None:
    result = report.evaluate(rows)
    for name, score in result.scores.items():
        assert score.precision >= MIN_PRECISION, (name, score)
        assert score.recall >= MIN_RECALL, (name, score)
    assert result.total.precision >= MIN_TOTAL_PRECISION, result.total
    assert result.total.recall >= MIN_TOTAL_RECALL, result.total


def test_redaction_removes_every_value_that_was_found(rows: list[dict[str, Any]]) -> None:
    detector = Detector()
    checked = 0
    for row in rows:
        redacted, categories = detector.redact_text(row["text"])
        if set(row["expected"]) - categories:
            continue  # a known miss: listed in docs/privacy.md
        for value in row["values"]:
            assert value not in redacted, row["id"]
            checked += 1
        for name in categories:
            assert f"[{name.upper()}]" in redacted, row["id"]
    assert checked >= 120


def test_near_misses_pass_through_redaction_unchanged(rows: list[dict[str, Any]]) -> None:
    detector = Detector()
    for row in rows:
        if not row["expected"] and not detector.scan_text(row["text"]):
            assert detector.redact_text(row["text"])[0] == row["text"]


def test_privacy_doc_is_up_to_date(report: Any, rows: list[dict[str, Any]]) -> None:
    current = report.OUTPUT.read_text(encoding="utf-8")
    assert current == report.render(current, rows), (
        "docs/privacy.md is out of date: run .venv/bin/python scripts/privacy_report.py"
    )


def test_check_mode_detects_a_stale_report(report: Any, tmp_path: Path) -> None:
    doc = tmp_path / "privacy.md"
    doc.write_text(f"# Privacy\n\n{report.BEGIN}\nold numbers\n{report.END}\n\nmore text\n")
    report.OUTPUT = doc
    try:
        assert report.main(["--check"]) == 1
        assert report.main([]) == 0
        assert report.main(["--check"]) == 0
        text = doc.read_text(encoding="utf-8")
        assert text.startswith("# Privacy\n\n") and text.endswith("\n\nmore text\n")
        assert "old numbers" not in text and "| `email` |" in text
    finally:
        report.OUTPUT = ROOT / "docs" / "privacy.md"
