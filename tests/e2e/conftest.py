"""Fixtures of the end-to-end tests: rootless Podman users (see podman_users.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from podman_users import PodmanUser, podman_user_for


@pytest.fixture(scope="module")
def podman_user() -> Iterator[PodmanUser]:
    yield from podman_user_for("liveorch-ci")
