"""Unary and binary operators of the SISSO-style feature space.

Each operator is vectorized over a block of features (rows = features,
columns = compounds) and knows its domain, so that an expression that is
undefined on any compound (log of a non-positive value, division by zero) is
recognized as such and counted, rather than turning into NaN downstream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


def _all_rows(mask: Array) -> Array:
    """Per feature (row): True where the condition holds on every compound."""
    return mask.all(axis=1)


@dataclass(frozen=True)
class UnaryOp:
    name: str
    func: Callable[[Array], Array]
    fmt: Callable[[str], str]
    # Returns, per feature, whether every value lies in the operator's domain;
    # None means defined everywhere (overflow is caught afterwards as non-finite).
    domain: Callable[[Array], Array] | None = None


@dataclass(frozen=True)
class BinaryOp:
    name: str
    func: Callable[[Array, Array], Array]
    fmt: Callable[[str, str], str]
    # Commutative operators (and ``sub``, whose swap is an affine copy) are
    # generated for one ordering of each pair only.
    symmetric: bool
    domain: Callable[[Array, Array], Array] | None = None


def _sixth(x: Array) -> Array:
    # (x^3)^2, the same arithmetic as the compiled kernel in space.py.
    c = x * x * x
    return c * c


def _scd(x: Array) -> Array:
    # Standard Cauchy density, as in SISSO.
    return 1.0 / (np.pi * (1.0 + x * x))


UNARY: dict[str, UnaryOp] = {
    op.name: op
    for op in (
        UnaryOp("sq", lambda x: x * x, lambda a: f"({a})^2"),
        UnaryOp("cb", lambda x: x * x * x, lambda a: f"({a})^3"),
        UnaryOp("sixth", _sixth, lambda a: f"({a})^6"),
        UnaryOp("inv", lambda x: 1.0 / x, lambda a: f"({a})^-1", lambda x: _all_rows(x != 0)),
        UnaryOp("sqrt", np.sqrt, lambda a: f"sqrt({a})", lambda x: _all_rows(x >= 0)),
        UnaryOp("cbrt", np.cbrt, lambda a: f"cbrt({a})"),
        UnaryOp("exp", np.exp, lambda a: f"exp({a})"),
        UnaryOp("nexp", lambda x: np.exp(-x), lambda a: f"exp(-{a})"),
        UnaryOp("log", np.log, lambda a: f"log({a})", lambda x: _all_rows(x > 0)),
        UnaryOp("abs", np.abs, lambda a: f"abs({a})"),
        UnaryOp("sin", np.sin, lambda a: f"sin({a})"),
        UnaryOp("cos", np.cos, lambda a: f"cos({a})"),
        UnaryOp("scd", _scd, lambda a: f"scd({a})"),
    )
}

BINARY: dict[str, BinaryOp] = {
    op.name: op
    for op in (
        BinaryOp("add", np.add, lambda a, b: f"({a}+{b})", True),
        BinaryOp("sub", np.subtract, lambda a, b: f"({a}-{b})", True),
        BinaryOp("mul", np.multiply, lambda a, b: f"({a}*{b})", True),
        BinaryOp(
            "div", np.divide, lambda a, b: f"({a}/{b})", False, lambda a, b: _all_rows(b != 0)
        ),
        BinaryOp("absdiff", lambda a, b: np.abs(a - b), lambda a, b: f"abs({a}-{b})", True),
    )
}


def check_names(unary: list[str], binary: list[str]) -> None:
    """Fail fast, naming the config key, on an unknown or repeated operator."""
    for key, names, known in (
        ("descriptor.unary_ops", unary, UNARY),
        ("descriptor.binary_ops", binary, BINARY),
    ):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"{key}: unknown operator(s) {unknown}; choose from {sorted(known)}")
        if len(set(names)) != len(names):
            raise ValueError(f"{key}: operators listed twice: {names}")
