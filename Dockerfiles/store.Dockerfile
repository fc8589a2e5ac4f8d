# store: the store keeper, the only writer of the store. It publishes a stage's outputs
# (hashing them itself), verifies cache entries and prunes; it never runs user code.
# A thin layer on liveorch/base, which has the tools (Dockerfiles/base.packages).
ARG BASE=liveorch/base:latest
FROM ${BASE}
ENV PYTHONPATH=/opt/liveorch PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8
COPY stages/ /opt/liveorch/liveorch/stages/
COPY orchestrator/ /opt/liveorch/liveorch/orchestrator/
ENTRYPOINT ["python3", "-m", "liveorch.orchestrator.store_keeper"]
