"""The OpenAPI schema: generated from the views, and kept in step with docs/openapi.yaml."""

import io
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"


def _generated(tmp_path: Path) -> str:
    out = tmp_path / "openapi.yaml"
    # Fails on any warning, e.g. a view whose request or response is undocumented.
    call_command("spectacular", file=str(out), validate=True, fail_on_warn=True, stderr=io.StringIO())
    return out.read_text()


def test_committed_schema_matches_the_views(tmp_path):
    assert _generated(tmp_path) == COMMITTED.read_text(), (
        "The API changed without its documentation: run `make openapi`, review docs/openapi.yaml, commit it."
    )


def test_schema_documents_every_endpoint_with_readme_examples():
    schema = yaml.safe_load(COMMITTED.read_text())

    assert set(schema["paths"]) == {
        "/",
        "/ready",
        "/v1/webhooks/transactions",
        "/v1/transactions/{transaction_id}",
    }
    webhook = schema["paths"]["/v1/webhooks/transactions"]["post"]
    assert set(webhook["responses"]) == {"202", "400", "401", "413", "415", "503"}
    example = webhook["requestBody"]["content"]["application/json"]["examples"]["Webhook"]["value"]
    assert example == {
        "transaction_id": "txn_abc123",
        "source_account": "acc_user_1",
        "destination_account": "acc_merchant_1",
        "amount": 1500,
        "currency": "INR",
    }


def test_schema_and_docs_are_served(client, unhashed_static_files):
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
