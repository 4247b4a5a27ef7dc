"""Behind a trusted reverse proxy (TRUSTED_PROXIES), the rules that key on the client's
address see the client the proxy serves, not the proxy: /metrics stays closed to remote
clients, and one address's failed admin logins do not lock out another's. Without a
trusted proxy, X-Forwarded-For is ignored, so rotating it does not escape a lockout.

Through a real proxy hop: a small HTTP reverse proxy on 127.0.0.1, in front of real
gunicorn, that appends the address of the client it serves to X-Forwarded-For, as nginx's
`$proxy_add_x_forwarded_for` does. All traffic stays on 127.0.0.1, so the proxy is told
which (documentation-range) address its client has.
"""

import http.client
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.e2e

PASSWORD = "a-long-test-password"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}


class ForwardingProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream_port = upstream_port
        self.client = "203.0.113.10"  # the address of the client this proxy serves

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Forward(BaseHTTPRequestHandler):
    server: ForwardingProxy

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        forwarded = self.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded}, {self.server.client}" if forwarded else self.server.client
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=10)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            content = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP | {"content-length", "date", "server"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        finally:
            upstream.close()

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy(service, collected_static) -> Iterator[ForwardingProxy]:
    """gunicorn trusting 127.0.0.1, and the proxy in front of it."""
    service.start_web(workers=1, TRUSTED_PROXIES="127.0.0.1", DJANGO_STATIC_ROOT=collected_static)
    server = ForwardingProxy(service.port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def staff(transactional_db) -> None:
    get_user_model().objects.create_superuser("boss", password=PASSWORD)


def admin_login(url: str, password: str, headers: dict | None = None) -> int:
    """Log in to the admin as a browser would (CSRF cookie and token); the status code."""
    with httpx.Client(headers=headers or {}, timeout=30) as browser:
        page = browser.get(url)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text[:200]
        answer = browser.post(
            url, data={"username": "boss", "password": password, "csrfmiddlewaretoken": token[1]}
        )
        return answer.status_code


def test_a_remote_client_cannot_read_metrics_through_a_local_trusted_proxy(service, proxy):
    proxy.client = "203.0.113.10"

    remote = httpx.get(proxy.url("/metrics"), timeout=10)
    spoofed = httpx.get(proxy.url("/metrics"), headers={"X-Forwarded-For": "127.0.0.1"}, timeout=10)
    local_scraper = httpx.get(service.url("/metrics"), timeout=10)  # no proxy: 127.0.0.1 itself

    assert remote.status_code == 403
    assert spoofed.status_code == 403
    assert local_scraper.status_code == 200


def test_failed_logins_through_a_trusted_proxy_lock_out_their_own_address_only(proxy, staff):
    login_url = proxy.url("/admin/login/")
    proxy.client = "203.0.113.10"
    attacker = [admin_login(login_url, "wrong") for _ in range(5)]
    attacker_right_password = admin_login(login_url, PASSWORD)

    proxy.client = "198.51.100.20"
    colleague = admin_login(login_url, PASSWORD)

    assert attacker[:4] == [200] * 4  # the form again, with an error
    assert attacker[4] == 429  # the fifth locks this address out for this username
    assert attacker_right_password == 429
    assert colleague == 302  # logged in


def test_rotating_x_forwarded_for_without_a_trusted_proxy_does_not_escape_the_lockout(
    service, staff, collected_static
):
    # TRUSTED_PROXIES empty: nothing in front is trusted.
    service.start_web(workers=1, DJANGO_STATIC_ROOT=collected_static)
    login_url = service.url("/admin/login/")

    attempts = [
        admin_login(login_url, "wrong", headers={"X-Forwarded-For": f"192.0.2.{n}"}) for n in range(1, 6)
    ]
    rotated_again = admin_login(login_url, PASSWORD, headers={"X-Forwarded-For": "192.0.2.99"})

    assert attempts[4] == 429
    assert rotated_again == 429


# The same rule in-process, for proxy chains and malformed headers.


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("remote_addr", "forwarded_for", "status"),
    [
        # The local proxy and another of ours (10.0.0.0/8); the client wrote 127.0.0.1 itself.
        ("127.0.0.1", "127.0.0.1, 203.0.113.9, 10.0.0.1", 403),
        # The same over IPv6, and with a port, as some proxies write it.
        ("::1", "2001:db8::5", 403),
        ("127.0.0.1", "203.0.113.9:5000", 403),
        # A local agent through the local proxy: every hop is trusted.
        ("127.0.0.1", "127.0.0.1", 200),
        # The proxy's own request, without the header.
        ("127.0.0.1", None, 200),
        # Not from a trusted proxy: the header is the client's word, ignored.
        ("192.0.2.1", "127.0.0.1", 403),
    ],
)
def test_metrics_see_the_right_most_address_not_of_a_trusted_proxy(
    client, settings, remote_addr, forwarded_for, status
):
    settings.TRUSTED_PROXIES = ["127.0.0.1", "::1", "10.0.0.0/8"]
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for else {}

    assert client.get("/metrics", REMOTE_ADDR=remote_addr, **headers).status_code == status


def test_a_trusted_proxy_passing_on_a_non_address_gets_400(client, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]

    response = client.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9, unknown")

    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
