# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PORT ?= 8000
# Tests run on PostgreSQL, then once more on the embedded SQLite default.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/webhooks
SQLITE_TEST_DATABASE_URL := sqlite:///$(CURDIR)/db.sqlite3
PYTEST_ARGS ?=

export PATH := $(BIN):$(PATH)

.PHONY: setup run run-fake-payments test test-postgres test-sqlite test-slow lint format superuser openapi demo seed bench-admin screenshots fuzz bench

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.installed

# Local settings, made once: a random secret key (the service refuses to start without one).
.env:
	@echo "DJANGO_SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > $@
	@echo "# Local use over plain http: no https redirect or secure-only cookies, and the" >> $@
	@echo "# status API answers without an API key. Never use these in production." >> $@
	@echo "DJANGO_HTTPS=0" >> $@
	@echo "STATUS_API_PUBLIC=1" >> $@
	@echo "# Readable log lines in the terminal (production logs JSON lines)." >> $@
	@echo "LOG_FORMAT=text" >> $@
	@echo "Wrote .env with a fresh DJANGO_SECRET_KEY (local http settings; see docs/security.md)"

# Local settings reach only the commands that run the service for a developer: settings.py
# reads no .env, so `make test` never sees them. honcho loads .env (its values win).
LOCAL := honcho run --env .env

## Set up and run the service: web (gunicorn) and workers (qcluster), on SQLite unless DATABASE_URL is set.
run: setup .env
	$(LOCAL) python manage.py migrate --noinput
	$(LOCAL) python manage.py collectstatic --noinput --verbosity 0
	rm -rf .prometheus && mkdir .prometheus
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/.prometheus PORT=$(PORT) honcho start --env .env

## A fake payment provider on FAKE_PAYMENTS_PORT, for `PAYMENT_API_URL=http://127.0.0.1:8100/payments make run` (docs/operations.md).
FAKE_PAYMENTS_PORT ?= 8100
run-fake-payments: setup .env
	python manage.py fake_payment_api --port $(FAKE_PAYMENTS_PORT)

## Create an admin login for staff.
superuser: setup .env
	$(LOCAL) python manage.py createsuperuser

## Set up and run the whole test suite (PostgreSQL, then SQLite, then the slow fault tests).
test: test-postgres test-sqlite test-slow

test-postgres: setup
	DATABASE_URL=$(TEST_DATABASE_URL) pytest $(PYTEST_ARGS)

test-sqlite: setup
	DATABASE_URL=$(SQLITE_TEST_DATABASE_URL) pytest $(PYTEST_ARGS)

lint: setup
	ruff check .
	ruff format --check .

format: setup
	ruff format .
	ruff check --fix .

## Regenerate the committed OpenAPI schema (tests fail when it differs from the views).
openapi: setup
	DJANGO_SECRET_KEY=openapi python manage.py spectacular --file docs/openapi.yaml --validate --fail-on-warn

## Send webhooks to the service started by `make run` and watch them get processed: one; one
## delivered 5 times at once; a burst of 300, each sent twice. DEMO_ARGS sends those instead.
DEMO := $(LOCAL) python manage.py send_webhook --url http://127.0.0.1:$(PORT)/v1/webhooks/transactions --watch
demo: setup .env
ifdef DEMO_ARGS
	$(DEMO) $(DEMO_ARGS)
else
	@echo "== 1. One webhook: 202 at once, PROCESSING, then PROCESSED"
	$(DEMO)
	@echo "== 2. The same webhook delivered 5 times at once: stored once, processed once"
	$(DEMO) --duplicates 5
	@echo "== 3. A burst of 300 webhooks from 20 connections, each sent twice"
	$(DEMO) --count 300 --duplicates 2 --concurrency 20
endif

## Add a million realistic transactions (ids seed_*), to try the admin at scale; `make seed SEED_ARGS=--delete` removes them.
SEED_ARGS ?= --count 1000000
seed: setup .env
	$(LOCAL) python manage.py seed_transactions $(SEED_ARGS)

## Queries and time of the admin's pages on the current database (seed it first).
bench-admin: setup .env
	$(LOCAL) python bench/admin.py

## Refresh the README's admin screenshots (runs the browser test against PostgreSQL).
screenshots: setup
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots DATABASE_URL=$(TEST_DATABASE_URL) pytest tests/test_admin_browser.py

## A longer fuzz run (5,000 examples per property and for schemathesis; several minutes).
fuzz: setup
	DATABASE_URL=$(TEST_DATABASE_URL) FUZZ_PROFILE=long pytest -m fuzz $(PYTEST_ARGS)

## Benchmark on this machine (not part of `make test`): gunicorn + qcluster as in production
## on a fresh PostgreSQL database, driven by wrk. See docs/benchmarks.md.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/webhooks_bench
BENCH_ARGS ?=

bench: setup
	python bench/run.py --database-url $(BENCH_DATABASE_URL) $(BENCH_ARGS)

## The slow fault-injection tests (a minute or more each: they wait for the minutely sweep), on PostgreSQL.
test-slow: setup
	DATABASE_URL=$(TEST_DATABASE_URL) pytest -m slow $(PYTEST_ARGS)
