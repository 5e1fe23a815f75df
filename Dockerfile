# Claimdesk: slim Python image, non-root user, migrations then the server (serve runs them first).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CLAIMDESK_DATABASE_URL=sqlite:////var/lib/claimdesk/claimdesk.db \
    CLAIMDESK_STORAGE=/var/lib/claimdesk/evidence

RUN groupadd --system claimdesk && useradd --system --gid claimdesk --home-dir /app claimdesk \
    && mkdir -p /var/lib/claimdesk && chown claimdesk:claimdesk /var/lib/claimdesk

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-compile . && pip uninstall -y pip

USER claimdesk
VOLUME ["/var/lib/claimdesk"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

CMD ["claimdesk", "serve", "--host", "0.0.0.0", "--port", "8000"]
