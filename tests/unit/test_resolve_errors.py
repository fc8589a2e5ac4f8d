"""apt-get update's complaints are pinned on the right repository (URL *and* suite)."""

from __future__ import annotations

import pytest

from liveorch.stages.resolve import Repository, _repository_lines

DEBIAN = Repository("http://deb.debian.org/debian", "bookworm", ("main",), "debian", False)
UPDATES = Repository("http://deb.debian.org/debian", "bookworm-updates", ("main",), "updates", False)
LOCAL = Repository("http://172.17.0.1:4000/repo", "bookworm", ("main",), "local", False)
SECURITY_LIKE = Repository("http://172.17.0.1:4000/repo-security", "bookworm", ("main",), "other", False)

UNKNOWN_KEY = """\
Get:1 http://172.17.0.1:4000/repo bookworm InRelease [517 B]
Get:2 http://deb.debian.org/debian bookworm InRelease [151 kB]
Get:3 http://deb.debian.org/debian bookworm-updates InRelease [55.4 kB]
Err:1 http://172.17.0.1:4000/repo bookworm InRelease
  The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 9C0E0B07F7692E74
Get:5 http://deb.debian.org/debian bookworm/main amd64 Packages [8790 kB]
Reading package lists...
W: GPG error: http://172.17.0.1:4000/repo bookworm InRelease: The following signatures couldn't be verified \
because the public key is not available: NO_PUBKEY 9C0E0B07F7692E74
E: The repository 'http://172.17.0.1:4000/repo bookworm InRelease' is not signed.
"""

UNREACHABLE = """\
Err:1 http://deb.debian.org/debian bookworm-updates InRelease
  Could not connect to deb.debian.org:80 (151.101.2.132). - connect (111: Connection refused)
Hit:2 http://deb.debian.org/debian bookworm InRelease
W: Failed to fetch http://deb.debian.org/debian/dists/bookworm-updates/InRelease  Could not connect
"""


def test_a_signature_problem_is_pinned_on_its_repository_only() -> None:
    assert _repository_lines(UNKNOWN_KEY, DEBIAN) == []
    assert _repository_lines(UNKNOWN_KEY, UPDATES) == []
    lines = _repository_lines(UNKNOWN_KEY, LOCAL)
    assert lines[0].startswith("Err:1 ") and "NO_PUBKEY 9C0E0B07F7692E74" in lines[1]
    assert lines[-1].startswith("E: The repository")


@pytest.mark.parametrize(("repo", "expected"), [(DEBIAN, 0), (UPDATES, 2), (SECURITY_LIKE, 0)])
def test_a_suite_or_url_prefix_is_not_the_same_repository(repo: Repository, expected: int) -> None:
    assert len(_repository_lines(UNREACHABLE, repo)) == expected
    assert _repository_lines(UNKNOWN_KEY, SECURITY_LIKE) == []
