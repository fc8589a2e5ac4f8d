# base-trixie: the squashfs stage's tools, from trixie; each stage image on it is this plus its code.
# When no registry serves debian:trixie-slim, `images build` makes this image with mmdebstrap from
# base-trixie.packages instead.
FROM debian:trixie-slim
COPY Dockerfiles/base-trixie.packages /tmp/packages
RUN apt-get update \
 && sed -e 's/#.*//' /tmp/packages | xargs env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/packages
