"""checksum: the sha256 file of the ISO, with and without the MD5 implanted first."""

from __future__ import annotations

import hashlib
import subprocess
from typing import Any

import pytest

from liveorch.stages import checksum
from liveorch.stages.contracts.checksum import ChecksumOptions
from liveorch.stages.tools import StageError

ISO_BYTES = b"CD001 fake iso bytes\n" * 7
ISO_NAME = "unit-live.x86_64-1.2.3.iso"


class FakeCheck:
    """Stands in for subprocess.run of checkisomd5: records argv, answers with `returncode`."""

    def __init__(self, returncode: int = 0, stdout: str = "Fragment count is 20\nThe media check is complete, "
                                                            "the result is: PASS.\n") -> None:
        self.returncode, self.stdout = returncode, stdout
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((list(argv), kwargs))
        return subprocess.CompletedProcess(argv, self.returncode, stdout=self.stdout, stderr="")


@pytest.fixture
def checkisomd5(monkeypatch: pytest.MonkeyPatch) -> FakeCheck:
    fake = FakeCheck()
    monkeypatch.setattr("liveorch.stages.checksum.subprocess.run", fake)
    return fake


def test_without_mediacheck_writes_the_sha256_of_the_input_iso(workspace, publish, make_request, commands) -> None:
    publish("iso", {"image.iso": ISO_BYTES})
    request = make_request("checksum", ChecksumOptions(iso_name=ISO_NAME, mediacheck=False), {"iso": "iso-key"})

    outcome = checksum.execute(request, workspace)

    digest = hashlib.sha256(ISO_BYTES).hexdigest()
    assert (workspace.out / "image.iso.sha256").read_text() == f"{digest}  {ISO_NAME}\n"
    assert outcome.facts == {"sha256": digest}
    assert outcome.tools == {"coreutils": commands.version, "isomd5sum": commands.version}
    assert not (workspace.out / "image.iso").exists()  # the iso stage's ISO stays the final one
    assert commands.calls == []


def test_mediacheck_implants_into_a_copy_and_sums_the_copy(workspace, publish, make_request, commands,
                                                           checkisomd5) -> None:
    entry = publish("iso", {"image.iso": ISO_BYTES})
    request = make_request("checksum", ChecksumOptions(iso_name=ISO_NAME, mediacheck=True), {"iso": "iso-key"})

    outcome = checksum.execute(request, workspace)

    copy = workspace.out / "image.iso"
    assert commands.argvs == [["implantisomd5", "--force", str(copy)]]
    assert [argv for argv, _ in checkisomd5.calls] == [["checkisomd5", "--verbose", str(copy)]]
    implanted = ISO_BYTES + b"implanted md5\n"  # what the fake implantisomd5 appended
    assert copy.read_bytes() == implanted
    assert (entry / "image.iso").read_bytes() == ISO_BYTES  # the store entry is never written to
    digest = hashlib.sha256(implanted).hexdigest()
    assert (workspace.out / "image.iso.sha256").read_text() == f"{digest}  {ISO_NAME}\n"
    assert outcome.facts == {"sha256": digest}


def test_mediacheck_refuses_an_iso_checkisomd5_rejects(workspace, publish, make_request, commands,
                                                       checkisomd5) -> None:
    checkisomd5.returncode, checkisomd5.stdout = 1, "The media check is complete, the result is: FAIL.\n"
    publish("iso", {"image.iso": ISO_BYTES})
    request = make_request("checksum", ChecksumOptions(iso_name=ISO_NAME, mediacheck=True), {"iso": "iso-key"})

    with pytest.raises(StageError, match=r"checkisomd5 does not accept the implanted ISO \(exit 1\)"):
        checksum.execute(request, workspace)
    assert not (workspace.out / "image.iso.sha256").exists()


@pytest.mark.parametrize("mediacheck", [False, True])
def test_missing_input_iso_is_a_stage_error(workspace, publish, make_request, commands, mediacheck) -> None:
    publish("iso", {"other.file": b"x"})
    request = make_request("checksum", ChecksumOptions(iso_name=ISO_NAME, mediacheck=mediacheck), {"iso": "iso-key"})

    with pytest.raises(StageError, match=r"the iso stage left no image\.iso"):
        checksum.execute(request, workspace)
    assert commands.calls == []
    assert list(workspace.out.iterdir()) == []
