"""The service's own middleware, in the order settings.MIDDLEWARE runs it.

- TrustedProxyMiddleware: the client's address behind trusted reverse proxies.
- RequestIDMiddleware: the request id that every log line of a request carries.
- RequestMetricsBefore/AfterMiddleware: django-prometheus' request metrics, but for webhooks.

The client's address behind trusted reverse proxies (settings.TRUSTED_PROXIES):

Behind a proxy every request comes from the proxy's address, so the rules that key on
the client's address (/metrics for local scrapers, the admin's login lockout) would see
one client for the whole internet. A proxy appends the address it got the request from
to X-Forwarded-For; anything to the left of that may have been written by the client.
So, only for a request that comes from a trusted proxy, the client is the right-most
address in X-Forwarded-For that is not itself a trusted proxy; from anywhere else the
header is ignored, and rotating it gets a client nowhere.
"""

import functools
import re
import uuid
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed, SuspiciousOperation
from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse
from django_prometheus.middleware import PrometheusAfterMiddleware, PrometheusBeforeMiddleware

from . import log

GetResponse = Callable[[HttpRequest], HttpResponseBase]


class InvalidForwardedFor(SuspiciousOperation):
    """A trusted proxy passed on an X-Forwarded-For entry that is not an address (400)."""


def client_address(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, as TrustedProxyMiddleware left it."""
    return request.META.get("REMOTE_ADDR")


def _parse(entry: str) -> IPv4Address | IPv6Address | None:
    entry = entry.strip()
    if entry.startswith("["):  # [IPv6]:port
        entry = entry[1 : entry.find("]")]
    elif entry.count(":") == 1:  # IPv4:port
        entry = entry.split(":")[0]
    try:
        return ip_address(entry)
    except ValueError:
        return None


class TrustedProxyMiddleware:
    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.proxies = [ip_network(proxy, strict=False) for proxy in settings.TRUSTED_PROXIES]
        if not self.proxies:
            raise MiddlewareNotUsed  # nothing to do: out of the chain

    def _trusted(self, address: IPv4Address | IPv6Address | None) -> bool:
        return address is not None and any(address in proxy for proxy in self.proxies)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if self._trusted(_parse(request.META.get("REMOTE_ADDR", ""))):
            forwarded = [e for e in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if e.strip()]
            for entry in reversed(forwarded):
                address = _parse(entry)
                if address is None:
                    raise InvalidForwardedFor("X-Forwarded-For from a trusted proxy holds a non-address")
                request.META["REMOTE_ADDR"] = str(address)
                if not self._trusted(address):
                    break
            # All trusted (or no header, e.g. the proxy's own health check): the furthest hop.
        return self.get_response(request)


# --- The request id ---------------------------------------------------------------

# What we accept from a caller's X-Request-ID; anything else is replaced by a fresh id,
# so a caller cannot stuff arbitrary text into our logs.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class RequestIDMiddleware:
    """The caller's X-Request-ID if it is sane, else a fresh one; echoed in the answer."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = log.request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            log.request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


# --- Request metrics --------------------------------------------------------------

# django-prometheus' per-request metrics (django_http_*) for every request but webhook
# deliveries, which webhooks_received_total / webhooks_rejected_total count instead: for a
# webhook they cost about 15% of its CPU time (180 of 1,300 µs, bench/webhook_cpu.py).


@functools.cache
def _webhook_path() -> str:
    return reverse("webhook")


def _is_webhook(request: HttpRequest) -> bool:
    return request.path_info == _webhook_path()


class RequestMetricsBeforeMiddleware(PrometheusBeforeMiddleware):
    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if _is_webhook(request):
            return self.get_response(request)
        return super().__call__(request)


class RequestMetricsAfterMiddleware(PrometheusAfterMiddleware):
    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if _is_webhook(request):
            return self.get_response(request)
        return super().__call__(request)

    # Django calls these three itself, outside __call__.
    def process_view(self, request: HttpRequest, view_func: Callable, *args: Any, **kwargs: Any) -> None:
        if not _is_webhook(request):
            super().process_view(request, view_func, *args, **kwargs)

    def process_template_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return response if _is_webhook(request) else super().process_template_response(request, response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if not _is_webhook(request):
            super().process_exception(request, exception)
