# The monitor's worker image: `docker build -t secmlops .`, then
# `docker run --rm secmlops` runs `secmlops worker` (any other subcommand works too,
# e.g. `docker run --rm secmlops topics`).  docker-compose.yml runs it with Kafka and Redis.
#
# Configuration comes from SECMLOPS_* environment variables (streams/settings.py); a
# worker in a container needs at least SECMLOPS_KAFKA_BOOTSTRAP and SECMLOPS_REDIS_URL,
# since the local stack's 127.0.0.1 defaults point at the container itself.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The worker runs as this unprivileged user (see USER below).
RUN useradd --create-home --home-dir /home/secmlops --uid 10001 --shell /usr/sbin/nologin secmlops

# Only what the package needs: no tests, no .venv, no local state.
WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY streams ./streams
COPY detectors ./detectors
COPY producers ./producers
COPY model_store ./model_store

# The runtime dependencies only (no dev extras, no Java: the broker runs elsewhere),
# at the exact versions make installs.
RUN pip install -c constraints.txt . \
    && cd / && rm -rf /src

USER secmlops
# State (faust's data folder) goes to ~/.local/state/secmlops (SECMLOPS_STATE_DIR).
WORKDIR /home/secmlops

ENTRYPOINT ["secmlops"]
CMD ["worker"]
