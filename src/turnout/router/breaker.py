"""Circuit breaking: a deployment that fails repeatedly is ejected for a while.

The first ejection lasts ``ejection`` seconds; each further one doubles, up to
``max_ejection``. When it ends (or an active health check passes first) the deployment is back
on probation: its next failure ejects it again at once, its next success ends probation. A
deployment that stays out of trouble for ``max_ejection`` seconds starts over at the shortest
ejection.

State lives in this process (:class:`CircuitBoard`). Replicas that should share it can swap
in another store implementing the same methods (e.g. over Redis) — that is the seam; nothing
else reads circuit state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from turnout.config import BreakerConfig

__all__ = ["Circuit", "CircuitBoard"]

log = logging.getLogger("turnout.router")


@dataclass(slots=True)
class Circuit:
    #: consecutive failures since the last success
    failures: int = 0
    #: ejections so far (each one lasts twice as long as the one before)
    ejections: int = 0
    #: clock time the current ejection ends; 0 when in rotation
    ejected_until: float = 0.0
    #: clock time of the last ejection
    last_ejected: float = 0.0
    probation: bool = False


class CircuitBoard:
    def __init__(
        self,
        config: BreakerConfig,
        clock: Callable[[], float] = time.monotonic,
        on_eject: Callable[[str, float], None] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._circuits: dict[str, Circuit] = {}
        self._on_eject = on_eject
        #: labels with an ejection not yet lifted (some may have run out: ejected_for tells)
        self.out: set[str] = set()

    def circuit(self, label: str) -> Circuit:
        circuit = self._circuits.get(label)
        if circuit is None:
            circuit = self._circuits[label] = Circuit()
        return circuit

    def ejected_for(self, label: str) -> float:
        """Seconds the deployment stays ejected; 0 when it takes traffic."""
        circuit = self._circuits.get(label)
        if circuit is None or not circuit.ejected_until:
            return 0.0
        left = circuit.ejected_until - self._clock()
        if left <= 0:
            self._readmit(label, circuit)
            return 0.0
        return left

    def success(self, label: str) -> None:
        circuit = self._circuits.get(label)
        if circuit is None or self.ejected_for(label) > 0:
            return
        circuit.failures = 0
        circuit.probation = False
        if circuit.ejections and self._clock() - circuit.last_ejected > self.config.max_ejection:
            circuit.ejections = 0

    def failure(self, label: str) -> bool:
        """Count a failure; True when it ejected the deployment."""
        circuit = self.circuit(label)
        if self.ejected_for(label) > 0:
            return False  # already out (a try that started before the ejection)
        circuit.failures += 1
        if circuit.failures < self.config.failures and not circuit.probation:
            return False
        self._eject(label, circuit)
        return True

    def _eject(self, label: str, circuit: Circuit) -> None:
        cfg = self.config
        duration = min(cfg.max_ejection, cfg.ejection * 2**circuit.ejections)
        now = self._clock()
        circuit.ejections += 1
        circuit.ejected_until = now + duration
        circuit.last_ejected = now
        circuit.failures = 0
        self.out.add(label)
        log.warning(
            "deployment %s ejected for %.0f s after repeated failures (ejection %d)",
            label,
            duration,
            circuit.ejections,
        )
        if self._on_eject is not None:
            self._on_eject(label, duration)

    def restore(self, label: str) -> None:
        """An active health check passed: back on probation before the ejection ran out."""
        circuit = self._circuits.get(label)
        if circuit is not None and circuit.ejected_until:
            log.info("deployment %s passed its health check and is back in rotation", label)
            self._readmit(label, circuit)

    def _readmit(self, label: str, circuit: Circuit) -> None:
        circuit.ejected_until = 0.0
        circuit.failures = 0
        circuit.probation = True
        self.out.discard(label)

    def ejected(self) -> list[str]:
        """Labels of the deployments ejected now."""
        return [label for label in list(self.out) if self.ejected_for(label) > 0]
