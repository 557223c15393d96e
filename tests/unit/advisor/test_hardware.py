"""Hardware profiles: presets with their sources, and files with errors that say the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turnout.advisor.hardware import PRESETS, load_hardware
from turnout.exceptions import ConfigError


def test_every_preset_names_its_source_and_date() -> None:
    for name, hardware in PRESETS.items():
        assert hardware.source.count("http") >= 1, name
        assert hardware.as_of, name
        assert hardware.fixed_monthly > 0
        assert load_hardware(name) is hardware


def test_a_yaml_profile(tmp_path: Path) -> None:
    path = tmp_path / "box.yaml"
    path.write_text(
        "name: our box\npurchase_price: 2600\nlifetime_months: 24\npower_kw: 0.5\n"
        "electricity_price: 0.2\nother_monthly: 10\nsource: a quote\n"
    )
    box = load_hardware(str(path))
    assert box.fixed_monthly == pytest.approx(2600 / 24 + 10)
    assert box.energy_monthly == pytest.approx(0.5 * 730 * 0.2)
    assert not box.cloud


def test_a_json_profile(tmp_path: Path) -> None:
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps({"name": "rented", "hourly_price": 2.0}))
    assert load_hardware(str(path)).fixed_monthly == 1460


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n", "exactly one of hourly_price"),
        ("name: x\nhourly_price: 1\npurchase_price: 5\n", "exactly one of hourly_price"),
        ("name: x\nhourly_price: -1\n", "hourly_price"),
        ("name: x\nhourly_price: 1\nwatts: 300\n", "watts: unknown key"),
        ("- a list\n", "invalid hardware profile"),
        ("name: [unclosed\n", "cannot read the hardware profile"),
    ],
)
def test_bad_profiles(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_hardware(str(path))


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ConfigError, match="l40s-aws"):
        load_hardware("a100")
