"""The checkpoint format's model_config schema and the language model's ModelConfig describe the same fields."""

import dataclasses

from sasim.lm.model import ModelConfig
from sasim.workload.checkpoint_schema import MODEL_CONFIG_FIELDS


def test_schema_fields_are_the_model_config_fields():
    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    assert set(fields) == set(MODEL_CONFIG_FIELDS)
    for name, (kind, _low, _high, required) in MODEL_CONFIG_FIELDS.items():
        has_default = fields[name].default is not dataclasses.MISSING
        assert required == (not has_default), name
        python_type = {"int": int, "bool": bool, "prob": float}[kind]
        if has_default:
            assert type(fields[name].default) is python_type, name
