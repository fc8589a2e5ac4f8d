"""The stage cache in an OCI registry, shared by a fleet: one artifact per store entry.

An entry is an OCI image manifest tagged `<stage>-<key>` in the cache repository: its
config blob is the entry's record.json, and each output is one layer whose digest is the
output's sha256 (its title annotation the output's name). So the registry's content
addresses and the record agree, and a pulled entry is checked like a local one: every blob
is hashed while it streams in and must match the record, and the store keeper then
publishes it into the local store, hashing it once more.

Nothing here may fail a build that could succeed without the registry: an unreachable
registry or refused credentials give one note and switch the remote cache off for the
rest of the build; a corrupt or inconsistent entry gives one note and its stage runs here.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from liveorch.orchestrator.oci_registry import OciClient, RegistryError, RegistryRef
from liveorch.orchestrator.volume_io import archive_for_engine
from liveorch.stages.contract import Artifact, Record

ARTIFACT_TYPE = "application/vnd.liveorch.stage.v1"
RECORD_TYPE = "application/vnd.liveorch.record.v1+json"
OUTPUT_TYPE = "application/vnd.liveorch.output.v1"
TITLE = "org.opencontainers.image.title"
MAX_RECORD_BYTES = 1 << 20


class CorruptEntry(RegistryError):
    """A registry entry whose bytes or layout do not match its record."""


def tag_of(stage: str, key: str) -> str:
    return f"{stage}-{key}"


def manifest_for(record: Record) -> tuple[dict[str, Any], bytes]:
    """The manifest of an entry and its config blob (the record)."""
    config = record.to_json().encode()
    layers = [{"mediaType": OUTPUT_TYPE, "digest": f"sha256:{a.sha256}", "size": a.size,
               "annotations": {TITLE: name}} for name, a in sorted(record.outputs.items())]
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": ARTIFACT_TYPE,
                "config": {"mediaType": RECORD_TYPE, "digest": f"sha256:{hashlib.sha256(config).hexdigest()}",
                           "size": len(config)},
                "layers": layers}
    return manifest, config


def check_layout(manifest: dict[str, Any], record: Record, stage: str, key: str) -> None:
    """The manifest must list exactly the record's outputs, each under its own sha256."""
    if (record.stage, record.key) != (stage, key):
        raise CorruptEntry(f"the {stage} entry's record names {record.stage}/{record.key[:12]}")
    layers = {layer.get("annotations", {}).get(TITLE): layer for layer in manifest.get("layers", [])}
    wanted = {name: (f"sha256:{a.sha256}", a.size) for name, a in record.outputs.items()}
    found = {name: (layer.get("digest"), layer.get("size")) for name, layer in layers.items()}
    if found != wanted:
        raise CorruptEntry(f"the {stage} entry's layers are not the outputs its record lists")


@dataclass
class HashingReader:
    """A blob's chunks as a file object for tarfile, hashed as they are read."""

    chunks: Iterator[bytes]
    expected: Artifact
    name: str

    def __post_init__(self) -> None:
        self.digest, self.size, self.buffer = hashlib.sha256(), 0, b""

    def read(self, wanted: int = -1) -> bytes:
        while wanted < 0 or len(self.buffer) < wanted:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.digest.update(chunk)
            self.size += len(chunk)
            self.buffer += chunk
        if wanted < 0:
            data, self.buffer = self.buffer, b""
        else:
            data, self.buffer = self.buffer[:wanted], self.buffer[wanted:]
        return data

    def finish(self) -> None:
        """All of the blob was read, and it is what the record says."""
        self.read()
        if (self.size, self.digest.hexdigest()) != (self.expected.size, self.expected.sha256):
            raise CorruptEntry(f"{self.name} does not match its sha256")


class RemoteCache:
    """The registry side of the stage cache for one build."""

    def __init__(self, ref: RegistryRef, push: bool, note: Callable[[str], None]) -> None:
        self.ref, self.push_enabled, self.note = ref, push, note
        self.client = OciClient(ref)
        self.enabled = True

    def _off(self, error: RegistryError) -> None:
        self.note(f"note: remote cache {self.ref}: {error}; going on without it")
        self.enabled = False

    def record(self, stage: str, key: str) -> tuple[Record, dict[str, Any]] | None:
        """The entry's record and manifest when the registry has it (checked for layout)."""
        if not self.enabled:
            return None
        try:
            manifest = self.client.manifest(tag_of(stage, key))
            if manifest is None:
                return None
            config = manifest.get("config", {})
            if config.get("mediaType") != RECORD_TYPE or int(config.get("size", 0)) > MAX_RECORD_BYTES:
                raise CorruptEntry(f"the {stage} entry has no liveorch record")
            data = b"".join(self.client.blob(config["digest"]))
            if f"sha256:{hashlib.sha256(data).hexdigest()}" != config["digest"]:
                raise CorruptEntry(f"the {stage} entry's record does not match its digest")
            record = Record.from_json(data.decode())
            check_layout(manifest, record, stage, key)
            return record, manifest
        except CorruptEntry as error:
            self.note(f"note: remote cache {self.ref}: {error}: the stage runs here")
        except (RegistryError, ValueError, KeyError, TypeError) as error:
            self._off(error if isinstance(error, RegistryError) else RegistryError(f"a malformed answer ({error})"))
        return None

    def spool(self, stage: str, record: Record, target: IO[bytes]) -> None:
        """Every output, streamed from the registry into a tar (out/<name>), each checked
        against the record while it streams; a mismatch stops with CorruptEntry."""
        with archive_for_engine(target) as tar:
            for name, artifact in sorted(record.outputs.items()):
                info = tarfile.TarInfo(f"out/{name}")
                info.size, info.mode = artifact.size, 0o644
                reader = HashingReader(self.client.blob(f"sha256:{artifact.sha256}"), artifact, f"{stage}'s {name}")
                try:
                    tar.addfile(info, reader)  # type: ignore[arg-type]
                except OSError:
                    raise CorruptEntry(f"{stage}'s {name} is shorter than its record says") from None
                reader.finish()
            claims = json.dumps({"tools": record.tools, "facts": record.facts, "seconds": record.seconds}).encode()
            info = tarfile.TarInfo("result.json")
            info.size = len(claims)
            tar.addfile(info, io.BytesIO(claims))

    def has(self, stage: str, key: str) -> bool:
        if not self.enabled:
            return True
        try:
            return self.client.has_manifest(tag_of(stage, key))
        except RegistryError as error:
            self._off(error)
            return True

    def push(self, record: Record, open_output: Callable[[str], IO[bytes]]) -> int:
        """Upload an entry (blobs the registry lacks, then the manifest); returns bytes sent."""
        manifest, config = manifest_for(record)
        sent = 0
        try:
            for name, artifact in sorted(record.outputs.items()):
                digest = f"sha256:{artifact.sha256}"
                if not self.client.has_blob(digest):
                    with open_output(name) as source:
                        self.client.put_blob(digest, source, artifact.size)
                    sent += artifact.size
            self.client.put_blob(manifest["config"]["digest"], io.BytesIO(config), len(config))
            self.client.put_manifest(tag_of(record.stage, record.key), manifest)
        except RegistryError as error:
            self._off(error)
        return sent
