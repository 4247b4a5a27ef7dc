"""The service's own middleware, in the order settings.MIDDLEWARE runs it.

- TrustedProxyMiddleware: the client's address behind trusted reverse proxies.
- RequestIDMiddleware: the request id that every log line of a request carries.

The client's address behind trusted reverse proxies (settings.TRUSTED_PROXIES):

Behind a proxy every request comes from the proxy's address, so the rules that key on
the client's address (/metrics for local scrapers, the admin's login lockout) would see
one client for the whole internet. A proxy appends the address it got the request from
to X-Forwarded-For; anything to the left of that may have been written by the client.
So, only for a request that comes from a trusted proxy, the client is the right-most
address in X-Forwarded-For that is not itself a trusted proxy; from anywhere else the
header is ignored, and rotating it gets a client nowhere.
"""

import re
import uuid
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed, SuspiciousOperation
from django.http import HttpRequest, HttpResponseBase

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
