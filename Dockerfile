# hookwatch: one service (API, scheduler, and the writer process it starts and stops itself),
# SQLite on the /data volume by default.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOOKWATCH_HOST=0.0.0.0 \
    HOOKWATCH_PORT=8000 \
    HOOKWATCH_DATABASE_URL=sqlite:////data/hookwatch.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hookwatch ./hookwatch
COPY hooks ./hooks
COPY storage ./storage
COPY alerts ./alerts
COPY notifiers ./notifiers
COPY dashboard ./dashboard
COPY templates ./templates
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /data hookwatch \
 && mkdir -p /data && chown hookwatch /data

USER hookwatch
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["hookwatch", "serve"]
