"""The rules for what a webhook may contain, and the shapes the API answers with."""

from decimal import Decimal
from typing import Any

import pycountry
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .fastpath import FieldsBuiltOnceSerializer
from .models import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
    IDENTIFIER_MAX_LENGTH,
    IDENTIFIER_PATTERN,
    Status,
    Transaction,
)

identifier_validator = RegexValidator(
    rf"\A{IDENTIFIER_PATTERN}\Z",
    message=(
        f"Use 1-{IDENTIFIER_MAX_LENGTH} characters: letters, digits and _ . : - "
        "(starting with a letter or digit)."
    ),
)


class StrictCharField(serializers.CharField):
    """A JSON string, and only a string: DRF's CharField would turn 42 into "42"."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "pattern": f"^{IDENTIFIER_PATTERN}$", "example": "txn_abc123"})
class IdentifierField(StrictCharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", IDENTIFIER_MAX_LENGTH)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        self.validators.append(identifier_validator)


@extend_schema_field(
    {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 999999999999.99,
        "description": "A JSON number with at most two decimal places; never a string.",
        "example": 1500,
    }
)
class AmountField(serializers.DecimalField):
    """A positive JSON number with at most two decimal places, kept exact.

    The JSON parser hands numbers with a fraction over as Decimal, so nothing is ever
    rounded through a float; strings and booleans are wrong types. Rendered back as a
    JSON number equal to the one sent.
    """

    default_error_messages = {"invalid": "Must be a JSON number."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", AMOUNT_MAX_DIGITS)
        kwargs.setdefault("decimal_places", AMOUNT_DECIMAL_PLACES)
        kwargs.setdefault("min_value", Decimal("0.01"))
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, (int, Decimal)):
            self.fail("invalid")
        return super().to_internal_value(data)

    def to_representation(self, value: Decimal) -> int | float:
        # 14 significant digits at most, so the float is exactly the stored amount.
        return int(value) if value == value.to_integral_value() else float(value)


@extend_schema_field({"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217", "example": "INR"})
class CurrencyField(StrictCharField):
    default_error_messages = {"unknown": "Must be an ISO 4217 currency code, such as USD or INR."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_length", 3)
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not value.isascii() or not value.isupper() or pycountry.currencies.get(alpha_3=value) is None:
            self.fail("unknown")
        return value


def _has_unstorable_text(value: Any) -> bool:
    """True if the body holds text PostgreSQL cannot store: NUL, or lone surrogates."""
    pending = [value]  # a loop, not recursion: the body may be nested deeply
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return True
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


class TransactionWebhookSerializer(FieldsBuiltOnceSerializer):
    """A webhook body. Fields other than these are kept in the stored payload."""

    transaction_id = IdentifierField()
    source_account = IdentifierField()
    destination_account = IdentifierField()
    amount = AmountField()
    currency = CurrencyField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        extra = {k: v for k, v in self.initial_data.items() if k not in self.fields}
        if _has_unstorable_text(extra):
            raise serializers.ValidationError({"payload": ["Contains NUL or invalid Unicode characters."]})
        return attrs


class ErrorSerializer(serializers.Serializer):
    """The shape of every error answer (see transactions/errors.py)."""

    error = serializers.CharField(help_text="A stable, machine-readable code.")
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors by field name; only for invalid_payload.",
    )


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["HEALTHY", "UNHEALTHY"])
    current_time = serializers.DateTimeField()


class ReadySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["READY", "NOT_READY"])
    checks = serializers.DictField(
        child=serializers.CharField(), help_text='Each check\'s result: "ok", or what is wrong.'
    )


class WebhookAcceptedSerializer(serializers.Serializer):
    transaction_id = serializers.CharField()
    status = serializers.ChoiceField(
        choices=Status.choices, help_text="The stored transaction's current status."
    )


class TransactionSerializer(serializers.ModelSerializer):
    amount = AmountField()

    class Meta:
        model = Transaction
        fields = [
            "transaction_id",
            "source_account",
            "destination_account",
            "amount",
            "currency",
            "status",
            "created_at",
            "processed_at",
        ]
        read_only_fields = fields
