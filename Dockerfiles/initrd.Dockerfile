# initrd: unpacks the root and runs the image's own dracut in it through chroot, so the
# initramfs matches the image's kernel and systemd exactly. fakeroot stands in for mknod
# where the engine cannot create device nodes (rootless Podman's user namespace).
# A thin layer on liveorch/base, which has the tools (Dockerfiles/base.packages).
ARG BASE=liveorch/base:latest
FROM ${BASE}
ENV PYTHONPATH=/opt/liveorch PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8
COPY stages/ /opt/liveorch/liveorch/stages/
ENTRYPOINT ["python3", "-m", "liveorch.stages", "initrd"]
