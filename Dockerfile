# syntax=docker/dockerfile:1
# The casework image: the `casework` CLI with its flows, and the MLflow server that
# docker-compose.yml runs from the same image (same mlflow and psycopg as the clients).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The CPU build of torch first: left to PyPI, the `torch` requirement of casework would
# pull a CUDA build of several GB. `pip install .` below then finds it satisfied.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.3,<2.14"

WORKDIR /opt/casework
COPY pyproject.toml README.md ./
COPY casework ./casework
COPY flows ./flows
COPY tasks ./tasks
COPY usecases ./usecases
# For `prefect deploy --all` run from this folder (see docs/stack.md).
COPY prefect.yaml ./
RUN pip install . && rm -rf build *.egg-info

# A non-root user owning the two folders that compose mounts named volumes on: a fresh
# named volume takes the ownership of the folder it is mounted over.
RUN useradd --create-home --uid 10001 --user-group casework \
    && mkdir -p /data /mlartifacts \
    && chown casework:casework /data /mlartifacts
USER casework
WORKDIR /home/casework

ENV CASEWORK_HOME=/data \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

CMD ["casework", "deploy"]
