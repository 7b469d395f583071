"""Signatures from pydantic models and training frames, and their two stored shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import BaseModel

from models.churn.features import ChurnFeatures
from models.rag.features import RagQuery
from tracking import InvalidInput, signatures
from tracking.entities import FeatureSpec


def test_churn_features_signature_keeps_bounds_and_optionality() -> None:
    specs = {spec.name: spec for spec in signatures.from_model(ChurnFeatures)}
    assert list(specs) == list(ChurnFeatures.model_fields)
    assert specs["player_id"].type == "str"
    assert specs["player_id"].max_length == 64
    assert specs["sessions_7d"] == FeatureSpec(
        name="sessions_7d", type="int", minimum=0, maximum=10_000,
        description="Sessions in the last 7 days.",
    )  # fmt: skip
    assert specs["level"].required is False
    assert specs["level"].type == "int"


def test_rag_query_signature_has_its_default() -> None:
    query, k = signatures.from_model(RagQuery)
    assert (query.type, query.required, query.max_length) == ("str", True, 1000)
    assert (k.type, k.required, k.default, k.minimum, k.maximum) == ("int", False, 5, 1, 50)


def test_a_non_scalar_field_is_refused() -> None:
    class Nested(BaseModel):
        rows: list[int]

    with pytest.raises(InvalidInput, match="rows"):
        signatures.from_model(Nested)


def test_inferred_from_a_frame() -> None:
    frame = {
        "sessions": np.array([1, 2, 3]),
        "playtime": np.array([1.0, np.nan, 2.0]),
        "paying": np.array([True, False, True]),
        "country": np.array(["DE", None, "FR"], dtype=object),
    }
    assert signatures.infer(frame) == [
        FeatureSpec(name="sessions", type="int"),
        FeatureSpec(name="playtime", type="float", required=False),
        FeatureSpec(name="paying", type="bool"),
        FeatureSpec(name="country", type="str", required=False),
    ]
    with pytest.raises(InvalidInput, match="mixed"):
        signatures.infer({"mixed": np.array([1, "a"], dtype=object)})


def test_stored_shapes() -> None:
    inputs = [FeatureSpec(name="x", type="float", minimum=0)]
    outputs = [FeatureSpec(name="y", type="float")]
    # Without outputs: the plain list earlier releases wrote, defaults left out.
    assert json.loads(signatures.encode(inputs)) == [{"name": "x", "type": "float", "minimum": 0}]
    assert signatures.decode(signatures.encode(inputs)) == (inputs, [])
    assert signatures.decode(signatures.encode(inputs, outputs)) == (inputs, outputs)
    assert signatures.decode('[{"name": "x", "type": "float"}]') == (
        [FeatureSpec(name="x", type="float")], [],
    )  # fmt: skip
    assert signatures.decode(None) == ([], [])
