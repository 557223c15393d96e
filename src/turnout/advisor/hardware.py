"""Hardware profiles for the cost model: documented presets, or a YAML / JSON file.

A profile file holds one :class:`~turnout.advisor.cost.Hardware` either priced by the hour
(a cloud GPU)::

    name: NVIDIA L40S on AWS (g6e.xlarge)
    hourly_price: 1.861            # USD per hour
    source: https://aws.amazon.com/ec2/instance-types/g6e/
    as_of: 2025-10-01

or bought outright::

    name: our RTX 4090 box
    purchase_price: 2600           # USD, the whole machine
    lifetime_months: 36
    power_kw: 0.55                 # drawn while serving
    electricity_price: 0.13        # USD per kWh
    other_monthly: 40              # hosting, support
    source: vendor quote, 2026-11

The presets' prices were read from the named public sources on the date given; prices
change, so check them, or write a profile with today's numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from turnout.advisor.cost import Hardware
from turnout.exceptions import ConfigError

__all__ = ["PRESETS", "load_hardware"]

PRESETS: dict[str, Hardware] = {
    "l40s-aws": Hardware(
        name="NVIDIA L40S 48 GB, AWS g6e.xlarge on demand (us-east-1, Linux)",
        hourly_price=1.861,
        source="https://aws.amazon.com/ec2/instance-types/g6e/ (on-demand price list)",
        as_of="2025-10-01",
    ),
    "h100-lambda": Hardware(
        name="NVIDIA H100 80 GB PCIe, Lambda on demand (1 GPU)",
        hourly_price=2.49,
        source="https://lambda.ai/pricing (on-demand instances, 1x H100 PCIe)",
        as_of="2025-10-01",
    ),
    "rtx4090-owned": Hardware(
        name="NVIDIA GeForce RTX 4090 (the card only), bought, 3 years",
        purchase_price=1599.0,
        lifetime_months=36.0,
        power_kw=0.45,
        electricity_price=0.13,
        source=(
            "launch price and 450 W total graphics power: "
            "https://www.nvidia.com/en-us/geforce/graphics-cards/40-series/rtx-4090/; "
            "electricity: US commercial average, about 13 cents/kWh, EIA Electric Power "
            "Monthly, table 5.3"
        ),
        as_of="2025-10-01",
    ),
}


class _Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1)]
    hourly_price: Annotated[float | None, Field(gt=0)] = None
    purchase_price: Annotated[float | None, Field(ge=0)] = None
    lifetime_months: Annotated[float, Field(gt=0)] = 36.0
    power_kw: Annotated[float, Field(ge=0)] = 0.0
    electricity_price: Annotated[float, Field(ge=0)] = 0.0
    other_monthly: Annotated[float, Field(ge=0)] = 0.0
    source: str = ""
    as_of: str = ""

    @model_validator(mode="after")
    def _one_price(self) -> _Profile:
        if (self.hourly_price is None) == (self.purchase_price is None):
            raise ValueError(
                "give exactly one of hourly_price (a rented GPU) or purchase_price "
                "(hardware bought outright)"
            )
        return self


def load_hardware(spec: str) -> Hardware:
    """A preset by name, or a profile file (.yaml, .yml or .json). Raises ConfigError."""
    if spec in PRESETS:
        return PRESETS[spec]
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(
            f"--hardware {spec!r}: neither a preset ({', '.join(PRESETS)}) nor a profile "
            "file; see docs/compare.md for the file's keys"
        )
    raw = _read(path)
    try:
        profile = _Profile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid hardware profile: {_problems(exc)}") from None
    return Hardware(**profile.model_dump())


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(map(str, err["loc"])) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key; remove it or fix the spelling"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"{path}: cannot read the hardware profile ({type(exc).__name__}); "
            "write YAML or JSON with the keys in docs/compare.md"
        ) from None
