"""The webhook's measured shortcuts: the only places that step past the plain framework path.

Each is measured in instructions per webhook (valgrind's callgrind over 200 webhooks
through the WSGI application, `bench/webhook_cpu.py`; deterministic where CPU time on
this shared machine varies by 15-40%; repeated runs agree within 3%). With all four, a
webhook costs 2.3 million instructions, as much as before the one-chain redesign (2.24).
"""

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import whitenoise.middleware
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.db import connection
from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse
from django_prometheus import middleware as prometheus
from rest_framework import serializers

# --- 1. The upsert, prepared once per database connection ---------------------------
#
# Django's cursor binds parameters on the client (psycopg's ClientCursor), so PostgreSQL
# parses and plans every statement. psycopg's own cursor on Django's connection binds on
# the server and, with `prepare=True`, plans the statement once per connection: PostgreSQL
# CPU per upsert 0.41-0.52 ms against 0.62-0.74 ms, and 0.31 against 0.44 ms in the web
# process (interleaved blocks of 1,000 upserts). What it gives up: Django's execute
# wrappers and DEBUG query log do not see the statement. Off with
# DATABASE_PREPARED_STATEMENTS=0 (PgBouncer < 1.21 in transaction mode), and on SQLite.


def fetchone(sql: str, params: Sequence[Any]) -> tuple | None:
    """Execute one statement on Django's connection and return its first row."""
    if connection.vendor == "postgresql" and settings.DATABASE_PREPARED_STATEMENTS:
        # Errors are Django's (OperationalError, IntegrityError...), as from its own cursor.
        with connection.wrap_database_errors:
            connection.ensure_connection()
            with psycopg.Cursor(connection.connection) as cursor:
                cursor.execute(sql, params, prepare=True)
                return cursor.fetchone()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


# --- 2. Serializer fields built once per class -------------------------------------
#
# DRF deep-copies a serializer's declared fields for every instance, which re-runs each
# field's __init__ and builds its validators again: 190,000 instructions of a webhook's
# 2.86 million (6.6%). These fields keep no state between requests (their validators and
# error messages are never changed after __init__), and binding a field to its serializer
# sets attributes on the copy only, so a shallow copy of fields built once gives each
# serializer its own fields just as well.

_FIELDS: dict[type, dict[str, serializers.Field]] = {}


class FieldsBuiltOnceSerializer(serializers.Serializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        fields = _FIELDS.get(type(self))
        if fields is None:  # first use: DRF's deep copy (a race only builds them twice)
            fields = _FIELDS[type(self)] = super().get_fields()
        return {name: copy.copy(field) for name, field in fields.items()}


# --- 3. The admin's middleware, passed by for webhook deliveries -------------------
#
# Every request runs settings.MIDDLEWARE, webhooks included: ALLOWED_HOSTS (through
# CommonMiddleware), the security headers and the request id protect them too. But
# authentication, messages, static files and django-prometheus' request metrics do
# nothing for a webhook (csrf-exempt, signed, answered in JSON, counted in
# webhooks_received_total): through them a webhook costs 2.8 million instructions, past
# them 2.3 million (-18%). These subclasses, named in settings.MIDDLEWARE, let webhook
# deliveries pass them by. Sessions and CSRF stay as they are: Django's deploy checks
# look for those two by name (their cost for a webhook is within the noise).


@functools.cache
def _webhook_path() -> str:
    return reverse("webhook")


def is_webhook(request: HttpRequest) -> bool:
    return request.path_info == _webhook_path()


class NotForWebhooks:
    """Mixin for a middleware class: webhook deliveries pass it by."""

    get_response: Callable[[HttpRequest], HttpResponseBase]

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if is_webhook(request):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class PrometheusBeforeMiddleware(NotForWebhooks, prometheus.PrometheusBeforeMiddleware):
    pass


class PrometheusAfterMiddleware(NotForWebhooks, prometheus.PrometheusAfterMiddleware):
    # Django calls these three itself, outside __call__.
    def process_view(self, request: HttpRequest, view_func: Callable, *args: Any, **kwargs: Any) -> None:
        if not is_webhook(request):
            super().process_view(request, view_func, *args, **kwargs)

    def process_template_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return response if is_webhook(request) else super().process_template_response(request, response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if not is_webhook(request):
            super().process_exception(request, exception)


class WhiteNoiseMiddleware(NotForWebhooks, whitenoise.middleware.WhiteNoiseMiddleware):
    pass


class AuthenticationMiddleware(NotForWebhooks, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(NotForWebhooks, messages.MessageMiddleware):
    pass


# --- 4. The status URL in an accepted webhook's Location ---------------------------
#
# reverse() resolves the URL pattern on every call: 90,000 instructions per webhook
# (3.4%). The path differs only by the id at its end, which the identifier rule keeps to
# characters that need no quoting in a URL path; the script prefix is fixed per deployment.


@functools.cache
def _status_path_prefix() -> str:
    return reverse("transaction-detail", kwargs={"transaction_id": "0"}).removesuffix("0")


def status_path(transaction_id: str) -> str:
    """reverse("transaction-detail", kwargs={"transaction_id": transaction_id})"""
    return _status_path_prefix() + transaction_id
