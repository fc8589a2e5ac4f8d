# store: the store keeper, the only writer of the store. It publishes a stage's outputs
# (hashing them itself), verifies cache entries and prunes; it never runs user code.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONPATH=/opt/liveorch PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8
COPY stages/ /opt/liveorch/liveorch/stages/
COPY orchestrator/ /opt/liveorch/liveorch/orchestrator/
ENTRYPOINT ["python3", "-m", "liveorch.orchestrator.store_keeper"]
