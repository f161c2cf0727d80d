# cello-rollout controller image. Build: docker build -t cello-rollout .
# Stage 1 builds a wheel-only virtualenv; stage 2 copies just the venv: no compiler, pip
# cache or sources in the final image.
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /venv
COPY pyproject.toml README.md ./
COPY rollout ./rollout
RUN /venv/bin/pip install --no-compile . \
 && /venv/bin/pip uninstall -y pip setuptools wheel

FROM python:3.12-slim
RUN groupadd --gid 10001 rollout \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin rollout
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["rollout", "controller"]
