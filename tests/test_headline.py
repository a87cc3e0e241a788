"""The headline metrics: flat, numeric, each traced to the file and key it comes from."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from superionic.config import compose
from superionic.reports.headline import HEADLINE, headline_sources, select


def _documents() -> dict:
    docs: dict = {}
    for source, dotted in HEADLINE.values():
        node = docs.setdefault(source, {})
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = 0.5
    return docs


def test_every_key_is_read_from_its_source():
    paths = {name: Path(f"{name}.json") for name in {s for s, _ in HEADLINE.values()}}
    out = select(_documents(), paths)
    assert list(out) == list(HEADLINE) and set(out.values()) == {0.5}
    assert all(key.count(".") == 1 for key in out)  # flat: <track>.<quantity>


def test_a_missing_or_non_numeric_source_value_is_named():
    paths = {name: Path(f"{name}.json") for name in {s for s, _ in HEADLINE.values()}}
    key, (source, dotted) = next(iter(HEADLINE.items()))
    docs = copy.deepcopy(_documents())
    node = docs[source]
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node[part]
    del node[leaf]
    with pytest.raises(KeyError, match=f"{source}.json: no '{dotted}'"):
        select(docs, paths)
    node[leaf] = "n/a"
    with pytest.raises(TypeError, match="not a number"):
        select(docs, paths)


def test_sources_exist_in_the_committed_reports():
    """The committed reports carry every headline key (a renamed metric fails here, not in a repro)."""
    paths = headline_sources(compose())
    root = Path(__file__).resolve().parents[1]
    docs = {name: json.loads((root / path).read_text()) for name, path in paths.items()}
    assert len(select(docs, paths)) == len(HEADLINE)
