"""stages.contract: the typed codec, requests checked against a stage's contract, records
and their digests, and the stage specs the orchestrator finds."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from liveorch.orchestrator.stage_specs import stage_names, stage_specs
from liveorch.stages.contract import (
    Artifact,
    ContractError,
    Record,
    StageRequest,
    decode,
    encode,
)
from liveorch.stages.contracts.iso import BootMenu, Firmware, IsoOptions, MenuEntry, Terminal, TimeoutStyle
from liveorch.stages.contracts.squashfs import SPEC as SQUASHFS
from liveorch.stages.contracts.squashfs import (
    Compression,
    ErofsAlgorithm,
    ErofsCompression,
    RootFilesystem,
    SquashfsOptions,
)

SHA_A = "a" * 64
SHA_B = "b" * 64


def iso_options(**changes: object) -> IsoOptions:
    menu = BootMenu(Terminal.BOTH, 10, TimeoutStyle.MENU, (MenuEntry("Live", "root=live:CDLABEL=LIVE"),),
                    "iso-scan/filename=${iso_path} root=live:CDLABEL=LIVE")
    options = IsoOptions(volid="LIVE", title="Live", application_id="LIVE", publisher="liveorch",
                         firmware=Firmware.EFI, efifatimagesize=None, menu=menu, verity=None,
                         netboot_loader=False)
    return replace(options, **changes)  # type: ignore[arg-type]


@pytest.fixture
def request_() -> StageRequest:
    return StageRequest(stage="iso", key="0123abcd" * 8, source_date_epoch=1700000000,
                        inputs={"squashfs": "k1", "initrd": "k2"}, options=iso_options())


@pytest.fixture
def record() -> Record:
    return Record(stage="iso", key="k" * 64,
                  outputs={"image.iso": Artifact(size=1024, sha256=SHA_A), "x.log": Artifact(size=10, sha256=SHA_B)},
                  tools={"xorriso": "1.5.4"}, facts={"marker": "m"}, seconds=12.5)


# --- the codec ----------------------------------------------------------------------------------

def test_encode_decode_round_trip_keeps_types() -> None:
    options = iso_options(efifatimagesize=8)
    data = json.loads(json.dumps(encode(options)))
    assert data["firmware"] == "efi" and data["menu"]["entries"][0]["title"] == "Live"
    again = decode(IsoOptions, data)
    assert again == options
    assert isinstance(again.menu.entries, tuple) and again.firmware is Firmware.EFI


def test_unknown_field_is_refused() -> None:
    data = encode(SquashfsOptions(RootFilesystem.SQUASHFS, Compression.XZ, None))
    data["compresion"] = "xz"
    with pytest.raises(ContractError, match=r"unknown field.*compresion"):
        decode(SquashfsOptions, data)


def test_a_nested_optional_dataclass_round_trips() -> None:
    options = SquashfsOptions(RootFilesystem.EROFS, Compression.XZ, ErofsCompression(ErofsAlgorithm.LZ4HC, 12))
    assert decode(SquashfsOptions, encode(options)) == options
    data = encode(options)
    data["erofs"]["algorithm"] = "brotli"
    with pytest.raises(ContractError, match=r"options\.erofs\.algorithm: 'brotli' is not one of lz4, lz4hc"):
        decode(SquashfsOptions, data)


def test_missing_field_is_refused() -> None:
    data = encode(iso_options())
    del data["menu"]["timeout"]
    with pytest.raises(ContractError, match=r"options\.menu: missing field timeout"):
        decode(IsoOptions, data)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("volid", 7, "expected str"),
    ("efifatimagesize", "8", "expected int"),
    ("efifatimagesize", True, "expected an integer"),
    ("firmware", "coreboot", "is not one of bios, efi, uefi"),
])
def test_wrong_types_are_refused(field: str, value: object, message: str) -> None:
    data = encode(iso_options())
    data[field] = value
    with pytest.raises(ContractError, match=message):
        decode(IsoOptions, data)


def test_optional_fields_take_none() -> None:
    assert decode(IsoOptions, {**encode(iso_options()), "efifatimagesize": None}).efifatimagesize is None


def test_option_classes_have_no_defaults() -> None:
    """A stage restating a default is what the contract exists to prevent: every field is set by the plan."""
    import dataclasses

    for spec in stage_specs().values():
        for field in dataclasses.fields(spec.options):
            assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING, \
                f"{spec.name}: {field.name} has a default"


# --- requests -----------------------------------------------------------------------------------

def test_request_round_trip(request_: StageRequest) -> None:
    spec = stage_specs()["iso"]
    text = request_.to_json()
    assert text.endswith("\n")
    again = StageRequest.from_json(text, spec)
    assert again == request_ and again.to_json() == text


def test_request_for_another_stage_is_refused(request_: StageRequest) -> None:
    with pytest.raises(ContractError, match="this image runs 'squashfs'"):
        StageRequest.from_json(request_.to_json(), SQUASHFS)


def test_request_with_unknown_or_missing_fields_is_refused(request_: StageRequest) -> None:
    spec = stage_specs()["iso"]
    data = json.loads(request_.to_json())
    with pytest.raises(ContractError, match="network"):
        StageRequest.from_json(json.dumps({**data, "network": "host"}), spec)
    del data["key"]
    with pytest.raises(ContractError, match=r"request\.key"):
        StageRequest.from_json(json.dumps(data), spec)


def test_request_inputs_must_be_the_declared_ones(request_: StageRequest) -> None:
    data = json.loads(request_.to_json())
    data["inputs"] = {"squashfs": "k1"}
    with pytest.raises(ContractError, match="expected squashfs, initrd"):
        StageRequest.from_json(json.dumps(data), stage_specs()["iso"])


# --- records ------------------------------------------------------------------------------------

def test_record_round_trip(record: Record) -> None:
    again = Record.from_json(record.to_json())
    assert again == record and isinstance(again.outputs["image.iso"], Artifact)
    assert again.digest() == record.digest()


def test_digest_ignores_seconds_tools_and_facts(record: Record) -> None:
    other = replace(record, seconds=99.0, tools={"xorriso": "9.9"}, facts={})
    assert other.digest() == record.digest()


def test_digest_follows_every_output(record: Record) -> None:
    resized = {**record.outputs, "image.iso": Artifact(size=1025, sha256=SHA_A)}
    rehashed = {**record.outputs, "image.iso": Artifact(size=1024, sha256="c" * 64)}
    renamed = {"other.iso" if n == "image.iso" else n: a for n, a in record.outputs.items()}
    for outputs in (resized, rehashed, renamed):
        assert replace(record, outputs=outputs).digest() != record.digest()
    assert replace(record, outputs=dict(reversed(record.outputs.items()))).digest() == record.digest()


# --- specs --------------------------------------------------------------------------------------

def test_the_stages_and_their_order() -> None:
    core = ("resolve", "rootfs", "squashfs", "initrd", "iso", "checksum")
    assert [name for name in stage_names() if name in core] == list(core)
    for index, name in enumerate(stage_names()):
        assert all(stage_names().index(source) < index for source in stage_specs()[name].inputs)


def test_only_resolve_has_the_network_and_unprivileged_stages_keep_no_capability() -> None:
    specs = stage_specs()
    assert [name for name, spec in specs.items() if spec.network] == ["resolve"]
    for spec in specs.values():
        assert spec.user in (0, 1000)
        if spec.user:
            assert spec.capabilities == ()


def test_declared_outputs() -> None:
    spec = stage_specs()["initrd"]
    assert spec.undeclared(["vmlinuz", "initrd.img", "efi/shim.efi", "evil.sh"]) == ["evil.sh"]
    assert spec.missing(["vmlinuz"]) == ["initrd.img"], "efi/ is optional"
