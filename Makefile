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

.PHONY: setup run test test-postgres test-sqlite lint format superuser

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
	@echo "Wrote .env with a fresh DJANGO_SECRET_KEY (local http settings; see README: Security)"

## Set up and run the service: web (gunicorn) and workers (qcluster), on SQLite unless DATABASE_URL is set.
run: setup .env
	python manage.py migrate --noinput
	python manage.py collectstatic --noinput --verbosity 0
	PORT=$(PORT) honcho start

## Create an admin login for staff.
superuser: setup .env
	python manage.py createsuperuser

## Set up and run the whole test suite (PostgreSQL, then SQLite).
test: test-postgres test-sqlite

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

.PHONY: fuzz
## A longer fuzz run (5,000 examples per property and for schemathesis; several minutes).
fuzz: setup
	DATABASE_URL=$(TEST_DATABASE_URL) FUZZ_PROFILE=long pytest -m fuzz $(PYTEST_ARGS)
