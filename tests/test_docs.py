"""The README and docs/ stay true to the code: settings, links and curl examples."""

import ast
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.urls import Resolver404, resolve
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
CONFIGURATION = ROOT / "docs" / "configuration.md"
# The service's own code, wherever it reads the environment (settings.py above all, and
# gunicorn.conf.py); not the tests' or the benchmarks' tools.
CODE_READING_ENV = [
    *sorted((ROOT / "webhooks_project").rglob("*.py")),
    *sorted(path for path in (ROOT / "transactions").rglob("*.py") if "migrations" not in path.parts),
    ROOT / "gunicorn.conf.py",
    ROOT / "manage.py",
]
PROCFILE = ROOT / "Procfile"
# The address the examples use: where `make run` serves.
LOCAL_SERVICE = "http://127.0.0.1:8000"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)


def _prose(page: Path) -> str:
    """The page without its code blocks (a `# comment` in a shell block is no heading)."""
    return FENCE.sub("", page.read_text())


# --- Environment variables ------------------------------------------------------------

ENV_METHODS = {
    "str", "int", "bool", "float", "list", "tuple", "dict", "json", "path",
    "db_url", "cache_url", "email_url", "search_url", "url", "decimal", "bytes",
}  # fmt: skip


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _variable_name(call: ast.Call, where: str) -> str:
    if not (call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
        pytest.fail(f"{where}: an environment variable read by a computed name; name it literally")
    return call.args[0].value


def env_variables_read(path: Path) -> set[str]:
    """Names read with django-environ's `env.<type>(...)`/`env(...)` or `os.environ`/`os.getenv`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            func = node.func
            by_environ = (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "env"
                and func.attr in ENV_METHODS
            )
            by_env_call = isinstance(func, ast.Name) and func.id == "env"
            by_os = isinstance(func, ast.Attribute) and (
                (func.attr == "get" and _is_os_environ(func.value)) or func.attr == "getenv"
            )
            if by_environ or by_env_call or by_os:
                names.add(_variable_name(node, where))
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and _is_os_environ(node.value)
            and isinstance(node.slice, ast.Constant)
        ):
            names.add(node.slice.value)
    return names


def documented_variables() -> set[str]:
    """The variables named in the first column of configuration.md's tables."""
    names = set()
    for line in CONFIGURATION.read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_every_environment_variable_the_service_reads_is_documented_in_configuration():
    read = set().union(*(env_variables_read(path) for path in CODE_READING_ENV))
    read |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", PROCFILE.read_text()))

    assert read, "found no environment variables: has the way settings are read changed?"
    assert read - documented_variables() == set()


def test_configuration_documents_no_variable_the_service_does_not_read():
    read = set().union(*(env_variables_read(path) for path in CODE_READING_ENV))

    assert documented_variables() - read == set()


# --- Links ----------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for heading in HEADING.findall(_prose(page)):
        anchor = base = github_anchor(heading)
        count = 0
        while anchor in found:  # GitHub numbers repeated headings: x, x-1, x-2...
            count += 1
            anchor = f"{base}-{count}"
        found.add(anchor)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_an_existing_file_and_heading(page):
    broken = []
    for target in LINK.findall(_prose(page)):
        if urlsplit(target).scheme:  # https:, mailto:...
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists() or (
            anchor and destination.suffix == ".md" and anchor not in anchors(destination)
        ):
            broken.append(target)

    assert broken == []


# --- curl examples --------------------------------------------------------------------


@dataclass
class CurlExample:
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    answer: str  # the `# ...` comment lines right after the command


def curl_examples(page: Path) -> list[CurlExample]:
    examples = []
    for language, block in FENCE.findall(page.read_text()):
        if language not in ("", "sh", "bash"):
            continue
        lines = block.replace("\\\n", " ").splitlines()
        for number, line in enumerate(lines):
            if not line.startswith("curl "):
                continue
            answer = []
            for following in lines[number + 1 :]:
                if not following.startswith("#"):
                    break
                answer.append(following.lstrip("#").strip())
            examples.append(_parse_curl(shlex.split(line), " ".join(answer)))
    return examples


def _parse_curl(words: list[str], answer: str) -> CurlExample:
    method, url, headers, body = None, None, {}, None
    arguments = iter(words[1:])
    for word in arguments:
        if word == "-X":
            method = next(arguments)
        elif word == "-H":
            name, _, value = next(arguments).partition(":")
            headers[name.strip()] = value.strip()
        elif word in ("-d", "--data"):
            body = next(arguments)
        elif not word.startswith("-"):
            url = word
    assert url, f"a curl example without a URL: {words}"
    return CurlExample(method or ("POST" if body is not None else "GET"), url, headers, body, answer)


ALL_CURL_EXAMPLES = [example for page in PAGES for example in curl_examples(page)]
README_CURL_EXAMPLES = curl_examples(README)


def test_the_readme_shows_the_webhook_the_status_api_and_the_health_check_with_curl():
    shown = {
        (example.method, resolve(urlsplit(example.url).path).url_name) for example in README_CURL_EXAMPLES
    }

    assert {("POST", "webhook"), ("GET", "transaction-detail"), ("GET", "health")} <= shown


@pytest.mark.parametrize("example", ALL_CURL_EXAMPLES, ids=lambda example: f"{example.method} {example.url}")
def test_every_curl_example_calls_a_url_and_method_the_service_serves(example):
    assert example.url.startswith(LOCAL_SERVICE + "/")
    match = resolve(urlsplit(example.url).path)

    assert example.method.lower() in match.func.view_class.http_method_names
    assert hasattr(match.func.view_class, example.method.lower())


def test_every_local_address_in_the_docs_is_a_page_of_the_service():
    addresses = {
        address.rstrip(".,)`")
        for page in PAGES
        for address in re.findall(re.escape(LOCAL_SERVICE) + r"/\S*", page.read_text())
    }
    missing = []
    for address in addresses:
        try:
            resolve(urlsplit(address).path)
        except Resolver404:
            missing.append(address)

    assert missing == []


# Times differ on every run; a transaction's status is PROCESSING until a worker ran.
CHANGING_FIELDS = {"current_time", "created_at", "processed_at"}


def test_the_readme_curl_examples_answer_what_the_readme_shows(db, settings):
    settings.STATUS_API_PUBLIC = True  # as `make run` writes into .env
    client = APIClient()

    for example in README_CURL_EXAMPLES:
        url = urlsplit(example.url)
        headers = dict(example.headers)
        content_type = headers.pop("Content-Type", None)
        response = client.generic(
            example.method,
            url.path,
            example.body or "",
            content_type=content_type,
            headers={"Host": url.netloc, **headers},
        )
        shown = json.loads(example.answer)

        assert response.status_code < 300, (example.url, response.content)
        answer = response.json()
        assert answer.keys() == shown.keys()
        for field, value in shown.items():
            if field == "status" and value in ("PROCESSED", "FAILED") and answer[field] == "PROCESSING":
                continue
            if field not in CHANGING_FIELDS:
                assert answer[field] == value, (example.url, field)
