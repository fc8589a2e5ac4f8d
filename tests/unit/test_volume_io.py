"""The tars liveorch hands to put_archive end at their end blocks (no record padding),
which Podman's copier needs (it closes its pipe at the end blocks, buildah#6573)."""

from __future__ import annotations

import io
import tarfile
import tempfile

from liveorch.orchestrator.volume_io import archive_for_engine


def test_the_archive_stops_after_its_two_end_blocks_and_still_reads_back() -> None:
    with tempfile.TemporaryFile() as spool:
        with archive_for_engine(spool) as tar:
            info = tarfile.TarInfo("out/root.tar")
            info.size = 700
            tar.addfile(info, io.BytesIO(b"x" * 700))
        data = spool.read()
        assert spool.tell() == len(data)
    assert len(data) == 512 + 1024 + 1024  # header, 700 bytes padded to 1024, two end blocks
    assert data[-1024:] == bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(data)) as back:
        member = back.getmember("out/root.tar")
        handle = back.extractfile(member)
        assert handle is not None and handle.read() == b"x" * 700


def test_a_failure_while_writing_propagates_and_leaves_no_finished_archive() -> None:
    with tempfile.TemporaryFile() as spool:
        try:
            with archive_for_engine(spool) as tar:
                tar.addfile(tarfile.TarInfo("empty"))
                raise OSError("registry stream ended")
        except OSError as error:
            assert "registry stream ended" in str(error)
        else:
            raise AssertionError("the error was swallowed")
        spool.seek(0)
        assert len(spool.read()) == 512  # the header only: no end blocks, so no reader takes it as whole
