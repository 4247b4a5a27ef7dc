import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from transactions import signatures
from transactions.examples import EXAMPLE_WEBHOOK


class Command(BaseCommand):
    help = (
        "Sends one webhook, signed the Standard Webhooks way, to a running service: "
        "a way to try the endpoint (and your secret) from the command line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000/v1/webhooks/transactions",
            help="The webhook endpoint (default: %(default)s).",
        )
        parser.add_argument(
            "--secret",
            help="A whsec_... secret to sign with (default: the first of WEBHOOK_SECRETS; "
            "unsigned if there is none).",
        )
        parser.add_argument(
            "--data",
            help="The JSON body (default: a sample transaction with a fresh transaction_id).",
        )
        parser.add_argument(
            "--new-secret",
            action="store_true",
            help="Print a freshly generated whsec_... secret and exit.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["new_secret"]:
            self.stdout.write(signatures.generate_secret())
            return
        secret = options["secret"] or next(iter(settings.WEBHOOK_SECRETS), None)
        if secret is not None and not signatures.is_valid_secret(secret):
            raise CommandError("--secret must look like whsec_<base64 of 24+ bytes>.")
        if options["data"]:
            try:
                json.loads(options["data"])
            except ValueError as exc:
                raise CommandError(f"--data is not JSON: {exc}") from None
            body = options["data"].encode()
        else:
            body = json.dumps({**EXAMPLE_WEBHOOK, "transaction_id": f"txn_{uuid.uuid4().hex[:12]}"}).encode()

        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers.update(
                signatures.signed_headers(secret=secret, msg_id=f"msg_{uuid.uuid4().hex}", body=body)
            )
        else:
            self.stderr.write("No secret given and WEBHOOK_SECRETS is unset: sending unsigned.")
        if not options["url"].startswith(("http://", "https://")):
            raise CommandError("--url must be an http:// or https:// URL.")
        request = urllib.request.Request(options["url"], data=body, headers=headers, method="POST")  # noqa: S310 (scheme checked above)
        self.stdout.write(f"POST {options['url']}\n{body.decode()}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read()
        except urllib.error.URLError as exc:
            raise CommandError(f"could not reach {options['url']}: {exc.reason}") from None
        self.stdout.write(f"{status} {answer.decode(errors='replace')}")
        if not 200 <= status < 300:
            raise CommandError(f"the service answered {status}")
