"""Privacy exposure: which requests of a workload carry sensitive data, of which categories,
and how many of them a hosted target received during the run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from turnout.advisor.compare import TargetInfo
from turnout.advisor.metrics import Sample
from turnout.advisor.workload import Workload
from turnout.policies.privacy import Detector

__all__ = ["exposure"]


def exposure(
    workload: Workload,
    detector: Detector,
    samples: Sequence[Sample] = (),
    targets: Sequence[TargetInfo] = (),
) -> dict[str, Any]:
    """Scan every workload request once (the detector of the gateway's ``privacy:``
    configuration) and count the measured requests each non-local target received."""
    found = [detector.scan_request(item.body) for item in workload.items]
    by_category: dict[str, int] = {}
    for categories in found:
        for category in categories:
            by_category[category] = by_category.get(category, 0) + 1
    sensitive = [i for i, categories in enumerate(found) if categories]
    exposed = {t.name for t in targets if t.kind in ("hosted", "mixed")}
    received: dict[str, int] = {name: 0 for name in sorted(exposed)}
    flagged = set(sensitive)
    for sample in samples:
        if sample.target in exposed and sample.item in flagged:
            received[sample.target] += 1
    return {
        "workload_requests": len(found),
        "sensitive_requests": len(sensitive),
        "share": len(sensitive) / len(found) if found else 0.0,
        "by_category": dict(sorted(by_category.items())),
        "sensitive_items": [
            {"item": i, "kind": workload.items[i].kind, "categories": sorted(found[i])}
            for i in sensitive
        ],
        "received_by_hosted_targets": received,
    }
