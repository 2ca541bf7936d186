"""Decodes every case with an openapi-python-client client, as its operations do.

usage: python openapi_python_client.py PACKAGE CASES RESULTS

Each case ({"id", "schema", "media", "operation", "status", "body"}) is answered as an
httpx.Response with its status and media type and read by the operation's own
`_parse_response` (the module of the operation under PACKAGE.api), then written back with the
parsed model's `to_dict`. RESULTS gets [{"id", "value"} | {"id", "error"}].
Run by `cargo xtask conformance`.
"""
import importlib
import json
import pkgutil
import sys

import httpx

package, cases_path, results_path = sys.argv[1:4]
generated = importlib.import_module(package)
api = importlib.import_module(package + ".api")
operations = {}
for info in pkgutil.walk_packages(api.__path__, package + ".api."):
    module = importlib.import_module(info.name)
    if hasattr(module, "_parse_response"):
        operations[info.name.rsplit(".", 1)[1].replace("_", "")] = module
client = generated.Client(base_url="http://127.0.0.1")


def written(value):
    """The parsed value written back: models with their to_dict."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, list):
        return [written(v) for v in value]
    return value


with open(cases_path, encoding="utf-8") as f:
    cases = json.load(f)
results = []
for case in cases:
    try:
        module = operations.get(case["operation"].lower())
        if module is None:
            raise LookupError(f"no module for operation {case['operation']} in {package}.api")
        status = 500 if case["status"] == "default" else int(case["status"])
        response = httpx.Response(
            status,
            content=json.dumps(case["body"]).encode(),
            headers={"content-type": case["media"]},
        )
        parsed = module._parse_response(client=client, response=response)
        if parsed is None:
            raise ValueError(f"{case['operation']} parsed nothing for status {status}")
        value = written(parsed)
        json.dumps(value)  # its serializer must give JSON
        results.append({"id": case["id"], "value": value})
    except Exception as e:  # noqa: BLE001 - every failure is a result
        results.append({"id": case["id"], "error": f"{type(e).__name__}: {e}"})
with open(results_path, "w", encoding="utf-8") as f:
    json.dump(results, f)
