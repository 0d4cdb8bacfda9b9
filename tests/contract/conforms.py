"""Checks a JSON answer (stdin) against one schema of docs/openapi.yaml (argv[1]), so the
document's hand-written schemas are held to what the gateway really answers. Unknown
properties are refused too: a field the server adds must be documented.

Exit 0 when it conforms; otherwise each violation on stderr, exit 1.
"""

import copy
import json
import pathlib
import sys

import yaml
from openapi_schema_validator import OAS30Validator

DOCUMENT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def closed(schema):
    """`schema` with additionalProperties false on every object that lists its properties
    and says nothing else (allOf parts stay open: each sees only its own properties)."""
    if isinstance(schema, dict):
        out = {key: (value if key == "allOf" else closed(value)) for key, value in schema.items()}
        if "allOf" in schema:
            out["allOf"] = [closed_part(part) for part in schema["allOf"]]
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    return schema


def closed_part(part):
    """An allOf member: its nested objects closed, itself left open."""
    out = closed(part)
    if isinstance(out, dict) and "properties" in part and "additionalProperties" not in part:
        out.pop("additionalProperties", None)
    return out


def main(name):
    document = yaml.safe_load(DOCUMENT.read_text())
    schemas = document["components"]["schemas"]
    root = {"components": {"schemas": {key: closed(copy.deepcopy(value))
                                       for key, value in schemas.items()}}}
    # The schema is the components themselves with a $ref to the one named: every $ref in
    # them ("#/components/schemas/...") resolves against this same document.
    validator = OAS30Validator({**root, "$ref": f"#/components/schemas/{name}"})
    errors = sorted(validator.iter_errors(json.load(sys.stdin)), key=lambda e: list(e.path))
    for error in errors:
        print("/".join(str(part) for part in error.path) or "(root)", ":", error.message,
              file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
