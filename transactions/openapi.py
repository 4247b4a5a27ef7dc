"""How the API appears in its OpenAPI schema (drf-spectacular): tags and authentication.

Imported by the app's ready(), which registers the authentication extensions.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from . import signatures


class TaggedAutoSchema(AutoSchema):
    """Groups the API docs by audience rather than by the first path segment."""

    def get_tags(self) -> list[str]:
        return ["transactions"] if self.path.startswith("/v1/") else ["health and readiness"]


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "transactions.authentication.APIKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key created by staff in the admin (API keys); not needed when the "
                "service runs with STATUS_API_PUBLIC=1."
            ),
        }


class WebhookSignatureScheme(OpenApiAuthenticationExtension):
    """Standard Webhooks: three headers that go together (an HMAC the schema cannot express)."""

    target_class = "transactions.authentication.WebhookSignatureAuthentication"
    name = ["WebhookId", "WebhookTimestamp", "WebhookSignature"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        described = {
            signatures.ID_HEADER: "The message id the signature covers.",
            signatures.TIMESTAMP_HEADER: "Unix seconds; refused outside the tolerance (5 minutes).",
            signatures.SIGNATURE_HEADER: (
                "Space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>` values "
                "(Standard Webhooks). Required when the service has WEBHOOK_SECRETS."
            ),
        }
        return [
            {"type": "apiKey", "in": "header", "name": header, "description": text}
            for header, text in described.items()
        ]
