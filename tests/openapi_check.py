"""Validates vaxlake's API description (GET /api/openapi.json) with openapi-spec-validator and
checks that it describes every route of the server's route table.

    python tests/openapi_check.py DESCRIPTION.json ROUTES.tsv

ROUTES.tsv: one `METHOD<TAB>PATH` line per row of `ROUTES` (the test writes it from the
binary's own table through `vaxlake`'s answers, see tests/openapi.rs).
"""

import json
import sys

from openapi_spec_validator import validate


def main() -> None:
    description = json.load(open(sys.argv[1], encoding="utf-8"))
    validate(description)  # raises with the first violation of the OpenAPI 3.1 schema
    assert description["openapi"].startswith("3.1"), description["openapi"]
    described = {(method.upper(), path) for path, item in description["paths"].items()
                 for method in item if method in ("get", "post", "put", "delete", "patch")}
    routes = {tuple(line.split("\t")) for line in open(sys.argv[2], encoding="utf-8").read().splitlines() if line}
    missing, extra = routes - described, described - routes
    assert not missing, f"routes without a description: {sorted(missing)}"
    assert not extra, f"described but not routed: {sorted(extra)}"
    schemes = description["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer", schemes
    for path, item in description["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post") or path in ("/api/health", "/api/openapi.json", "/login", "/logout"):
                continue
            codes = set(operation["responses"])
            assert any(c.startswith("4") for c in codes), f"{method} {path}: no error answer described"
    print(f"valid OpenAPI {description['openapi']}: {len(described)} operations, every route described")


if __name__ == "__main__":
    main()
