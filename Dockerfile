# One image for the controller (`orchestrate`), the Celery workers, Flower and the simulated fleet
# (docker-compose.yml). Runs as an unprivileged user; no secret is baked in (all come from the environment).
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY inventory inventory
COPY tasks tasks
COPY workers workers
COPY orchestrator orchestrator
COPY macsim macsim
# The package with its dependencies (Celery with Redis, Flower, psycopg); its import check fails the build early.
RUN pip install --no-cache-dir . \
    && python -c "import workers.celery_app, flower, macsim.fleet"

# The volumes' mount points exist and belong to the user, so named volumes start writable for it.
RUN useradd --create-home --uid 10001 macfleet \
    && mkdir -p /data /demo /ssh \
    && chown macfleet:macfleet /data /demo
USER macfleet
ENV ORCHESTRATE_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["orchestrate"]
