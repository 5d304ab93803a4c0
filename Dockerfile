FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    THERABRIDGE_DATABASE_URL=sqlite:////data/therabridge.db

WORKDIR /srv/therabridge
# The pinned dependencies first (their own layer, rebuilt only when the lock changes), each
# checked against its hash; then the project itself, adding nothing the lock does not hold.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY fhir_mappings ./fhir_mappings
COPY payer_adapters ./payer_adapters
RUN pip install --no-cache-dir --no-deps . \
    && pip check \
    && useradd --system --uid 10001 --home-dir /data --create-home therabridge

USER therabridge
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
CMD ["therabridge", "serve", "--host", "0.0.0.0", "--port", "8000"]
