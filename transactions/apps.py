from django.apps import AppConfig


class TransactionsConfig(AppConfig):
    name = "transactions"
    verbose_name = "Payment transactions"

    def ready(self) -> None:
        from . import checks, openapi  # noqa: F401 (registers system checks and OpenAPI extensions)
