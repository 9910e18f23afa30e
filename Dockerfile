# The agent as a container: `docker run` with the config and data directories as volumes.
#   docker build -t sync-agent .
#   docker run -d --name sync-agent --env-file secrets.env \
#     -v /srv/sync-agent/config:/app/config -v /srv/sync-agent/data:/app/data sync-agent
# The configuration is /app/config/sync-agent.toml; point database_url and log_file into
# /app/data (e.g. database_url = "sqlite:////app/data/sync-agent.db").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SYNC_AGENT_CONFIG=/app/config/sync-agent.toml

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sync_agent ./sync_agent
COPY connectors ./connectors
RUN pip install . && rm -rf /src

RUN useradd --create-home --uid 10001 agent \
    && mkdir -p /app/config /app/data \
    && chown -R agent:agent /app
COPY --chown=agent:agent config/sync-agent.example.toml /app/config/sync-agent.example.toml

USER agent
WORKDIR /app
VOLUME ["/app/config", "/app/data"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["sync-agent"]
CMD ["run"]
