"""Schema for the ``screen`` group (Materials Project screening funnel)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScreenConfig:
    band_gap_min: float = 1.0
    ehull_max: float = 0.0
    oxidation_voltage_min: float = 3.7
