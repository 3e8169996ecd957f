"""The JSON Schemas of spec and config: generated from the config models, shipped in docs/, and
true to what the loader accepts."""
import json
from pathlib import Path

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

from credit_spark.config.schema import config_schema, field_comments, spec_schema  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind, make", [("spec", spec_schema), ("config", config_schema)])
def test_the_shipped_schema_is_the_generated_one(kind, make):
    shipped = json.loads((ROOT / "docs" / f"{kind}.schema.json").read_text())
    assert shipped == make(), f"docs/{kind}.schema.json is stale: run `credit-spark schema {kind} --out docs/{kind}.schema.json`"


@pytest.mark.parametrize("path", sorted((ROOT / "conf" / "datasets").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_spec_validates(path):
    jsonschema.validate(yaml.safe_load(path.read_text()), spec_schema())


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "conf").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    jsonschema.validate(yaml.safe_load(path.read_text()) or {}, config_schema())


def test_the_schema_refuses_what_the_loader_refuses():
    spec = yaml.safe_load((ROOT / "conf" / "datasets" / "german_credit.yaml").read_text())
    with pytest.raises(jsonschema.ValidationError, match="'lable' was unexpected"):
        jsonschema.validate({**spec, "lable": {}}, spec_schema())
    with pytest.raises(jsonschema.ValidationError, match="'julian' is not one of"):
        jsonschema.validate({**spec, "period": {"column": "m", "format": "julian"}}, spec_schema())
    with pytest.raises(jsonschema.ValidationError, match="'many' is not of type 'integer'"):
        jsonschema.validate({"train": {"random_forest": {"num_trees": "many"}}}, config_schema())


def test_every_spec_field_is_described_once_beside_its_definition():
    schema = spec_schema()
    described = [schema["properties"], *(d["properties"] for d in schema["$defs"].values())]
    missing = [name for props in described for name, p in props.items() if not p.get("description")]
    assert missing == []
    from credit_spark.config.loader import NeuralNetworkSettings
    assert field_comments(NeuralNetworkSettings)["ensemble_size"] == "networks trained side by side, probabilities averaged"
