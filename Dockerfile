# hookwatch: one service (API, scheduler, and the writer process it starts and stops itself),
# SQLite on the /data volume by default. Build: docker build -t hookwatch .
# Listening on 0.0.0.0 (as a container must), the dashboard is private from the first start:
# serve makes a token in /data/dashboard-token (0600) and prints a one-time sign-in link
# (README, "Run it in public").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOOKWATCH_HOST=0.0.0.0 \
    HOOKWATCH_PORT=8000 \
    HOOKWATCH_DATABASE_URL=sqlite:////data/hookwatch.db \
    HOOKWATCH_DATA_DIR=/data

WORKDIR /app
# Dependencies first, from the lock file: this layer is rebuilt only when the lock changes,
# not on every code change.
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY pyproject.toml README.md LICENSE ./
COPY hookwatch ./hookwatch
COPY hooks ./hooks
COPY storage ./storage
COPY alerts ./alerts
COPY notifiers ./notifiers
COPY dashboard ./dashboard
COPY templates ./templates
RUN pip install --no-deps . \
 && useradd --system --uid 10001 --home-dir /data hookwatch \
 && mkdir -p /data && chown hookwatch /data

# A bind-mounted host folder keeps its owner: `chown 10001 ./data` on the host, or run with
# `--user "$(id -u)"`; `serve` says which in one line if it cannot write there.
USER hookwatch
VOLUME ["/data"]
EXPOSE 8000
# The port the service listens on, whatever HOOKWATCH_PORT is set to at run time.
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"HOOKWATCH_PORT\", \"8000\")}/healthz')"
CMD ["hookwatch", "serve"]
