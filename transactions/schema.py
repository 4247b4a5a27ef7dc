"""How the API's authentication appears in the OpenAPI schema (drf-spectacular)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from . import signatures


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
