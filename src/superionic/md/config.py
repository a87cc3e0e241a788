"""Schema for the ``md`` group (AIMD analysis and MLIP molecular dynamics)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MDConfig:
    temperatures: list[float] = field(default_factory=lambda: [800.0, 1100.0])
    device: str = "cpu"
