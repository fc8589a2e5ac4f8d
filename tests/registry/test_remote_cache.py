"""The registry side of the stage cache against a real registry on 127.0.0.1: entries go
up and come back byte for byte; a corrupt blob, a forged layout and an unreachable
registry each end as a note, never as a failed build."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from liveorch.orchestrator.oci_registry import OciClient, RegistryError, RegistryRef
from liveorch.orchestrator.remote_cache import RemoteCache, manifest_for, tag_of
from liveorch.stages.contract import Artifact, Record

KEY = "3" * 64


def entry(files: dict[str, bytes], stage: str = "squashfs", key: str = KEY) -> Record:
    outputs = {name: Artifact(len(data), hashlib.sha256(data).hexdigest()) for name, data in files.items()}
    return Record(stage, key, outputs, {"tar2sqfs": "1.2"}, {"n": 1}, 2.5)


def push(cache: RemoteCache, files: dict[str, bytes], **kwargs: str) -> Record:
    record = entry(files, **kwargs)
    cache.push(record, lambda name: io.BytesIO(files[name]))
    return record


@pytest.fixture
def cache(registry, request) -> tuple[RemoteCache, list[str]]:  # type: ignore[no-untyped-def]
    notes: list[str] = []
    repository = f"cache-{request.node.name.lower().replace('_', '-')[:40]}"
    return RemoteCache(RegistryRef.parse(f"{registry.host}/{repository}"), push=True, note=notes.append), notes


def test_an_entry_goes_up_and_comes_back(cache) -> None:
    remote, notes = cache
    files = {"LiveOS/squashfs.img": b"squash" * 1000, "small": b"x", "empty": b""}
    record = push(remote, files)
    found = remote.record("squashfs", KEY)
    assert found is not None and found[0] == record
    spooled = io.BytesIO()
    remote.spool("squashfs", record, spooled)
    spooled.seek(0)
    with tarfile.open(fileobj=spooled) as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    assert got["out/LiveOS/squashfs.img"] == files["LiveOS/squashfs.img"] and got["out/small"] == b"x"
    assert b'"tar2sqfs"' in got["result.json"]
    assert notes == []


def test_a_missing_entry_is_a_quiet_miss(cache) -> None:
    remote, notes = cache
    assert remote.record("squashfs", "9" * 64) is None and notes == [] and remote.enabled


def test_layers_are_the_record_outputs_under_their_own_sha256(cache) -> None:
    remote, _ = cache
    record = push(remote, {"a": b"1", "b": b"22"})
    manifest = remote.client.manifest(tag_of("squashfs", KEY))
    assert manifest is not None and manifest == manifest_for(record)[0]
    assert {layer["digest"] for layer in manifest["layers"]} == {f"sha256:{a.sha256}" for a in record.outputs.values()}


def test_a_corrupt_blob_is_found_while_it_streams(cache, registry) -> None:
    remote, _ = cache
    record = push(remote, {"LiveOS/squashfs.img": b"good bytes" * 100})
    blob = registry.blob_file(f"sha256:{record.outputs['LiveOS/squashfs.img'].sha256}")
    blob.write_bytes(b"evil bytes" * 100)
    found = remote.record("squashfs", KEY)
    assert found is not None
    with pytest.raises(RegistryError, match="does not match its sha256"):
        remote.spool("squashfs", found[0], io.BytesIO())


def test_an_entry_whose_layers_disagree_with_its_record_is_not_used(cache) -> None:
    remote, notes = cache
    record = push(remote, {"a": b"1"})
    manifest, _ = manifest_for(record)
    manifest["layers"][0]["annotations"]["org.opencontainers.image.title"] = "other"
    remote.client.put_manifest(tag_of("squashfs", KEY), manifest)
    assert remote.record("squashfs", KEY) is None
    assert notes and "layers are not the outputs its record lists" in notes[0] and remote.enabled


def test_an_unreachable_registry_is_one_note_then_off(tmp_path: Path) -> None:
    notes: list[str] = []
    remote = RemoteCache(RegistryRef.parse("127.0.0.1:9/cache"), push=True, note=notes.append)
    assert remote.record("squashfs", KEY) is None
    assert remote.record("rootfs", KEY) is None
    assert len(notes) == 1 and "127.0.0.1:9 is unreachable" in notes[0] and not remote.enabled


def test_reference_parsing() -> None:
    assert RegistryRef.parse("ghcr.io/owner/liveorch-cache") == RegistryRef("ghcr.io", "owner/liveorch-cache")
    assert RegistryRef.parse("127.0.0.1:5000/c").base == "http://127.0.0.1:5000"
    assert RegistryRef.parse("ghcr.io/o/c").base == "https://ghcr.io"
    with pytest.raises(ValueError, match="REGISTRY/REPOSITORY"):
        RegistryRef.parse("ghcr.io")


def test_a_client_streams_an_upload_from_a_file(registry, tmp_path: Path) -> None:
    client = OciClient(RegistryRef.parse(f"{registry.host}/streamed"))
    big = tmp_path / "big"
    with big.open("wb") as handle:
        for _ in range(64):
            handle.write(b"z" * (1 << 20))
    digest = "sha256:" + hashlib.sha256(big.read_bytes()).hexdigest()
    with big.open("rb") as source:
        client.put_blob(digest, source, big.stat().st_size)
    assert client.has_blob(digest)
    assert sum(len(chunk) for chunk in client.blob(digest)) == 64 << 20
