# The service in one image, mirroring the Procfile. By default the container runs both
# processes (web and worker) with honcho, as `make run` does; a platform that runs them
# as separate services overrides the command (see render.yaml).
# Docker is not available on the development machine, so this file is not built in CI.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# Hashed, compressed static files for WhiteNoise (the admin and the API docs need them).
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0

RUN useradd --create-home --uid 10001 app
USER app
EXPOSE 8000

# Metrics files from a previous run would be added to this run's: start from an empty dir.
CMD ["sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && python manage.py migrate --noinput && exec honcho start"]
