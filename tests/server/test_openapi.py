"""Fast lane: /openapi.json documents every route's success answer with a model (or its media type)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from credo.server.app import ServerConfig, create_app
from credo.server.database import sqlite_url

# Answers that are no JSON document: the runbook's bytes, the live output feed, /metrics, an empty 204.
NOT_JSON = {"application/octet-stream", "text/event-stream", "text/plain"}


def test_every_success_answer_is_documented(tmp_path: Path) -> None:
    app = create_app(
        ServerConfig(
            data_dir=tmp_path, database_url=sqlite_url(tmp_path), oidc_issuer="https://i.example.test/c"
        )
    )
    spec = TestClient(app).get("/openapi.json").json()
    operations = [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]
    assert len(operations) >= 28
    for method, path, op in operations:
        answers = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert answers, f"{method} {path}"
        for code, answer in answers.items():
            content = answer.get("content", {})
            if code == "204":
                assert not content.get("application/json"), f"{method} {path}"
                continue
            if set(content) & NOT_JSON:
                continue
            schema = content["application/json"]["schema"]
            ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
            assert ref and ref.startswith("#/components/schemas/"), f"{method} {path} {code}: {schema}"
