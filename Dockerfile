# syntax=docker/dockerfile:1
# Build stage: build wheels for the app and its dependencies (compilers stay out of the runtime image).
FROM python:3.11-slim AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY synapse_async ./synapse_async
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime stage: slim, non-root, migrations shipped beside the package (they are located relative to it).
FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUTF8=1 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080
RUN useradd --create-home --uid 10001 synapse
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY migrations ./migrations
COPY synapse_async ./synapse_async
RUN chown -R synapse:synapse /app
USER synapse
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2).status == 200 else 1)"
ENTRYPOINT ["python", "-m", "synapse_async"]
CMD ["run"]
