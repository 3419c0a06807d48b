"""The published JSON Schema accepts the bundles we produce and rejects malformed ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.unit.conftest import World
from tests.unit.test_bundle import _journey

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "proof-bundle.v1.schema.json"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_produced_bundles_match_the_schema(world: World, validator: Draft202012Validator) -> None:
    bundle = _journey(world)
    assert list(validator.iter_errors(bundle)) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(extra=True),
        lambda b: b.update(version=2),
        lambda b: b["logs"][0]["checkpoint"].update(root="0x00"),
        lambda b: b["logs"][0]["events"][0].update(signature="0x12"),
        lambda b: b["logs"][0]["events"][0]["revealed"][0].update(value=1.5),
        lambda b: b["logs"][0]["events"][0]["revealed"][0].update(salt="short"),
        lambda b: b["logs"][0]["events"][0].pop("agent"),
    ],
    ids=[
        "unknown key",
        "version",
        "short root",
        "short signature",
        "float value",
        "short salt",
        "missing agent",
    ],
)
def test_schema_rejects_malformed_bundles(
    world: World, validator: Draft202012Validator, mutate: Any
) -> None:
    bundle = _journey(world)
    mutate(bundle)
    assert list(validator.iter_errors(bundle)) != []
