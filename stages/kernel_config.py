"""The image kernel's build configuration (/boot/config-*): what its kernel can read.

Stages check it before writing something the kernel could not open at boot: an EROFS
compressor (root_image), an initramfs format (initramfs_compress).
"""

from __future__ import annotations


def parse_kernel_config(text: str) -> dict[str, str]:
    """CONFIG_X -> y/m/value for the options that are set (the others are absent)."""
    return dict(line.split("=", 1) for line in text.splitlines() if line.startswith("CONFIG_"))
