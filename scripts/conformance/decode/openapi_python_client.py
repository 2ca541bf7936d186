"""Decodes every case with an openapi-python-client client, as its operations do.

usage: python openapi_python_client.py PACKAGE CASES RESULTS

Each case ({"id", "schema", "media", "body"}) goes through the model's `from_dict` (what each
operation's `_parse_response` calls for the status) and back through its `to_dict`. RESULTS gets
[{"id", "value"} | {"id", "error"}]. Run by `cargo xtask conformance`.
"""
import importlib
import json
import sys

package, cases_path, results_path = sys.argv[1:4]
models = importlib.import_module(package + ".models")
with open(cases_path, encoding="utf-8") as f:
    cases = json.load(f)
results = []
for case in cases:
    try:
        model = getattr(models, case["schema"], None)
        if model is None:
            raise LookupError(f"no model {case['schema']} in {package}.models")
        value = model.from_dict(case["body"]).to_dict()
        json.dumps(value)  # its serializer must give JSON
        results.append({"id": case["id"], "value": value})
    except Exception as e:  # noqa: BLE001 - every failure is a result
        results.append({"id": case["id"], "error": f"{type(e).__name__}: {e}"})
with open(results_path, "w", encoding="utf-8") as f:
    json.dump(results, f)
