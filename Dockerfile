# syntax=docker/dockerfile:1
# Build stage: install the locked, hash-checked dependencies into a virtualenv (compilers stay out of the runtime
# image), then the app's own wheel without dependencies, so nothing unlocked is ever resolved.
FROM python:3.11-slim AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY synapse_async ./synapse_async
RUN pip install --no-cache-dir --no-deps . && pip check

# Runtime stage: slim and non-root. Everything the process runs (virtualenv, package, migrations) belongs to root
# and is read-only for the `synapse` user, so a compromised process cannot rewrite its own code. The only
# writable place is the user's home (e.g. EMBEDDED_PG_DIR when no DATABASE_URL is given).
FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUTF8=1 \
    PATH=/opt/venv/bin:$PATH \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    EMBEDDED_PG_DIR=/home/synapse/.synapse/pg
# The rank card's fonts (SPEC §29: Latin, Greek, Cyrillic, Arabic, Hebrew, CJK, colour emoji) and libraqm, with
# which Pillow shapes Arabic and lays out right-to-left text (README, "Rank card").
RUN apt-get update && apt-get install -y --no-install-recommends \
        fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji libraqm0 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 synapse
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Migrations are located relative to the package source, so both sit side by side under /app (root-owned).
COPY migrations ./migrations
COPY synapse_async ./synapse_async
RUN chmod -R a-w /app /opt/venv
USER synapse
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2).status == 200 else 1)"
ENTRYPOINT ["python", "-m", "synapse_async"]
CMD ["run"]
