"""Decodes every case with an openapi-generator `python` client, as its API methods do.

usage: python openapi_generator_python.py PACKAGE CASES RESULTS

Each case ({"id", "schema", "media", "body"}) goes through `ApiClient.deserialize` (what
`response_deserialize` calls with the operation's declared type for the status) and back through
`ApiClient.sanitize_for_serialization` (what the client sends bodies with). RESULTS gets
[{"id", "value"} | {"id", "error"}]. Run by `cargo xtask conformance`.
"""
import importlib
import json
import sys

package, cases_path, results_path = sys.argv[1:4]
client = importlib.import_module(package + ".api_client").ApiClient()
with open(cases_path, encoding="utf-8") as f:
    cases = json.load(f)
results = []
for case in cases:
    try:
        decoded = client.deserialize(json.dumps(case["body"]), case["schema"], case["media"])
        value = client.sanitize_for_serialization(decoded)
        json.dumps(value)  # its serializer must give JSON
        results.append({"id": case["id"], "value": value})
    except Exception as e:  # noqa: BLE001 - every failure is a result
        results.append({"id": case["id"], "error": f"{type(e).__name__}: {e}"})
with open(results_path, "w", encoding="utf-8") as f:
    json.dump(results, f)
