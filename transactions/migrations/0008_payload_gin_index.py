"""A GIN index on payload for the admin's payload search (`order_id=A-1077`), PostgreSQL only.

jsonb_path_ops serves containment (`payload @> '{"order_id": "A-1077"}'`) only, and is
smaller and cheaper to keep up than the default jsonb_ops. Built CONCURRENTLY, so
webhooks keep arriving while it builds on a big table (hence not atomic). SQLite has no
such index: there the search reads the table.
"""

from django.db import migrations

INDEX = "txn_payload_gin_idx"
TABLE = "transactions_transaction"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON {TABLE} USING gin (payload jsonb_path_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("transactions", "0007_secret_fingerprint"),
    ]

    operations = [migrations.RunPython(create, drop)]
