"""Schemas for the NASICON track: ``descriptor`` group and ``nasicon`` section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DescriptorConfig:
    complexity: int = 2
    sis_size: int = 2000


@dataclass
class NasiconConfig:
    cv_folds: int = 5
