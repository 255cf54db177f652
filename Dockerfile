# tracker: one image for every instance. Configure it with TRACKER_* environment variables.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tracker ./tracker
COPY notifications ./notifications
COPY templates ./templates
# The translation catalogs are compiled here: only their sources are in the repository, and the
# service refuses to start without them.
RUN pip install --no-cache-dir --prefix=/install . \
    && PYTHONPATH=/install/lib/python3.11/site-packages \
       python -m babel.messages.frontend compile --statistics -D messages -d templates/locale

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TRACKER_HOST=0.0.0.0 \
    TRACKER_PORT=8000 \
    TRACKER_DATABASE_URL=sqlite:///var/lib/tracker/tracker.sqlite3 \
    TRACKER_TEMPLATES_DIR=/app/templates
RUN useradd --system --uid 10001 --home-dir /app tracker \
    && mkdir -p /var/lib/tracker /app \
    && chown tracker /var/lib/tracker
COPY --from=build /install /usr/local
COPY --from=build /src/templates /app/templates
USER tracker
WORKDIR /app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4).status == 200 else 1)"
# Run `tracker migrate` once per deployment (a one-off container) before starting new instances.
CMD ["tracker", "serve"]
