# base: the tools of every stage, installed once; each stage image is this plus its code.
# trixie: its mke2fs (1.47.2) and mkfs.erofs (1.8) read a tar directly. When no registry serves
# debian:trixie-slim, `images build` makes this image with mmdebstrap from base.packages instead.
FROM debian:trixie-slim
COPY Dockerfiles/base.packages /tmp/base.packages
RUN apt-get update \
 && sed -e 's/#.*//' /tmp/base.packages | xargs env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/base.packages
