# base: the tools of every stage but squashfs, installed once; each stage image on it is this plus its code.
# When no registry serves debian:bookworm-slim, `images build` makes this image with mmdebstrap from
# base.packages instead.
FROM debian:bookworm-slim
COPY Dockerfiles/base.packages /tmp/packages
RUN apt-get update \
 && sed -e 's/#.*//' /tmp/packages | xargs env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/packages
