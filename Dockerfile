# LeanOps: one image for every process (dashboard, API, scheduler worker, job runners).
# The command picks the role; docker-compose.yml shows the grown-up topology.
# Pinned base: the tag is fixed; pin the digest too when you build (docker pull, then
# FROM python:3.11.7-slim-bookworm@sha256:<digest>) — this repository's CI has no Docker engine to resolve it.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1 \
    LEANOPS_HOME=/data/workspace

# curl: the healthchecks; git: MLflow records the code version (optional, cheap)
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl git libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 leanops \
    && useradd --system --uid 10001 --gid leanops --home-dir /app --shell /usr/sbin/nologin leanops \
    && mkdir -p /app /data/workspace \
    && chown leanops:leanops /data/workspace

WORKDIR /app
# Hash-checking mode from the lock (`make lock`): any file whose sha256 the lock does not list is refused,
# nothing is built from source, and `pip check` proves the locked set complete (see the Makefile).
COPY requirements.txt requirements.lock ./
RUN pip install --require-hashes --no-deps --only-binary :all: -r requirements.lock \
    && pip check
COPY --chown=root:root . .

USER leanops
VOLUME ["/data/workspace"]
EXPOSE 8501 8000

# The dashboard answers on /_stcore/health; the API and worker services override this in compose.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8501/_stcore/health || exit 1

CMD ["streamlit", "run", "dashboard.py", "--server.headless", "true", "--server.address", "0.0.0.0", \
     "--server.port", "8501", "--browser.gatherUsageStats", "false"]
