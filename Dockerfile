# Tuner: one image for the web server (Daphne), the Celery workers and Celery beat.
#   docker compose up -d --scale worker=N      (see README "Deployment")

# --- front-end assets: pinned by package-lock.json, no CDN at run time -----------------------
FROM node:20-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# --- the application ---------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_ENV=production \
    TUNER_VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles \
    FASHION_MNIST_DIR=/data \
    TUNER_ARTIFACT_DIR=/artifacts \
    TUNER_CACHE_DIR=/cache \
    OPENBLAS_NUM_THREADS=1 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY --from=assets /build/node_modules ./node_modules
COPY manage.py pyproject.toml ./
COPY tuner_site ./tuner_site
COPY experiments ./experiments
COPY frontend ./frontend
COPY training ./training

# Static files (whitenoise, hashed + compressed) at build time. The secret key is a throwaway:
# collectstatic needs settings to load, and production settings refuse to load without one.
RUN SECRET_KEY="build-only-$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    ALLOWED_HOSTS=build.invalid \
    python manage.py collectstatic --noinput --verbosity 0

RUN groupadd --system --gid 10001 tuner \
    && useradd --system --uid 10001 --gid tuner --home-dir /app --shell /usr/sbin/nologin tuner \
    && mkdir -p /app/var /artifacts /cache /data \
    && chown -R tuner:tuner /app/var /artifacts /cache
USER tuner

# Fashion-MNIST (the four .gz files, read-only), checkpoints/weights (shared by web + workers) and,
# on a volume of its own, the parsed dataset cache (rebuilt from /data when empty).
VOLUME ["/data", "/artifacts", "/cache"]
EXPOSE 8000

# /health answers 200 when the database and Redis answer (503 otherwise). It is sent with the
# first ALLOWED_HOSTS name as Host, which Django requires; the SSL redirect exempts /health.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; host = os.environ['ALLOWED_HOSTS'].split(',')[0].strip().lstrip('.'); u.urlopen(u.Request('http://127.0.0.1:8000/health', headers={'Host': host}), timeout=4)"]

# The web server; docker-compose.yml overrides this for the worker and beat services, and runs it with
# --proxy-headers behind the reverse proxy (with TUNER_NUM_PROXIES=1). Add both only behind a proxy.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "tuner_site.asgi:application"]
