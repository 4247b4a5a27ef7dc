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

.PHONY: setup run test test-postgres test-sqlite test-slow lint format superuser

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.installed

# Local settings, made once: a random secret key (the service refuses to start without one).
.env:
	@echo "DJANGO_SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > $@
	@echo "Wrote .env with a fresh DJANGO_SECRET_KEY"

## Set up and run the service: web (gunicorn) and workers (qcluster), on SQLite unless DATABASE_URL is set.
run: setup .env
	python manage.py migrate --noinput
	python manage.py collectstatic --noinput --verbosity 0
	PORT=$(PORT) honcho start

## Create an admin login for staff.
superuser: setup .env
	python manage.py createsuperuser

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

## The slow fault-injection tests (a minute or more each: they wait for the minutely sweep), on PostgreSQL.
test-slow: setup
	DATABASE_URL=$(TEST_DATABASE_URL) pytest -m slow $(PYTEST_ARGS)
