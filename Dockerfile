# One image for every ihook process; docker-compose.yml picks the command
# (api, worker, scheduler, db upgrade).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IHOOK_DATA_DIR=/data

WORKDIR /src
# Only what the package needs, so a local .venv or .ihook never ends up in the image.
COPY pyproject.toml README.md ./
COPY ihook ./ihook
COPY workflows ./workflows
COPY connectors ./connectors
RUN pip install . && rm -rf /src

RUN useradd --system --create-home --uid 10001 ihook \
    && install -d -o ihook -g ihook /data
USER ihook
WORKDIR /data

EXPOSE 8000
ENTRYPOINT ["ihook"]
# `ihook api` binds 127.0.0.1 by default, which nothing outside the container can reach.
CMD ["api", "--bind", "0.0.0.0:8000"]
