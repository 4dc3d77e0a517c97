# One image for the controller, the Celery workers, Flower and the simulated fleet.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestrator orchestrator
COPY workers workers
COPY tasks tasks
COPY inventory inventory
COPY macsim macsim
RUN pip install --no-cache-dir . flower
RUN useradd --create-home --uid 10001 macfleet
USER macfleet
ENV ORCHESTRATE_DATA_DIR=/data
ENTRYPOINT ["orchestrate"]
