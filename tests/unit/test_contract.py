"""stages.contract: the request/result records and their digests."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from liveorch.stages.contract import (
    STAGE_CAPABILITIES,
    STAGE_INPUTS,
    STAGES,
    Artifact,
    StageRequest,
    StageResult,
    canonical_json,
    stage_dir,
)

SHA_A = "a" * 64
SHA_B = "b" * 64


@pytest.fixture
def request_() -> StageRequest:
    return StageRequest(
        stage="iso",
        key="0123abcd" * 8,
        source_date_epoch=1700000000,
        inputs={"squashfs": "/artifacts/squashfs/k1", "initrd": "/artifacts/initrd/k2"},
        options={"volid": "LIVE", "timeout": 3, "nested": {"list": [1, 2, "ä"]}, "none": None},
    )


@pytest.fixture
def result() -> StageResult:
    return StageResult(
        stage="iso",
        key="k" * 64,
        outputs={"live.iso": Artifact(size=1024, sha256=SHA_A), "live.log": Artifact(size=10, sha256=SHA_B)},
        tools={"xorriso": "1.5.4"},
        seconds=12.5,
        facts={"iso_name": "live.iso"},
    )


def test_request_round_trip(request_: StageRequest) -> None:
    text = request_.to_json()
    assert text.endswith("\n")
    again = StageRequest.from_json(text)
    assert again == request_
    assert again.to_json() == text


def test_request_json_is_sorted(request_: StageRequest) -> None:
    assert list(json.loads(request_.to_json())) == ["inputs", "key", "options", "source_date_epoch", "stage"]


def test_request_rejects_unknown_fields(request_: StageRequest) -> None:
    data = json.loads(request_.to_json())
    data["network"] = "host"
    with pytest.raises(ValueError, match="network"):
        StageRequest.from_json(json.dumps(data))


def test_request_with_missing_field_is_refused(request_: StageRequest) -> None:
    data = json.loads(request_.to_json())
    del data["key"]
    with pytest.raises((TypeError, ValueError)):
        StageRequest.from_json(json.dumps(data))


def test_request_defaults() -> None:
    request = StageRequest.from_json('{"stage": "resolve", "key": "k", "source_date_epoch": 0}')
    assert request.inputs == {}
    assert request.options == {}


def test_result_round_trip(result: StageResult) -> None:
    again = StageResult.from_json(result.to_json())
    assert again == result
    assert isinstance(again.outputs["live.iso"], Artifact)
    assert again.digest() == result.digest()


def test_digest_ignores_seconds_and_tools(result: StageResult) -> None:
    other = replace(result, seconds=99.0, tools={"xorriso": "9.9", "extra": "1"})
    assert other.digest() == result.digest()


def test_digest_ignores_output_order(result: StageResult) -> None:
    reversed_outputs = dict(reversed(list(result.outputs.items())))
    assert replace(result, outputs=reversed_outputs).digest() == result.digest()


def test_digest_changes_with_an_output_sha256(result: StageResult) -> None:
    outputs = {**result.outputs, "live.iso": Artifact(size=1024, sha256="c" * 64)}
    assert replace(result, outputs=outputs).digest() != result.digest()


def test_digest_changes_with_size_and_names(result: StageResult) -> None:
    resized = {**result.outputs, "live.iso": Artifact(size=1025, sha256=SHA_A)}
    renamed = {"other.iso" if n == "live.iso" else n: a for n, a in result.outputs.items()}
    assert replace(result, outputs=resized).digest() != result.digest()
    assert replace(result, outputs=renamed).digest() != result.digest()


def test_digest_is_a_sha256_hex(result: StageResult) -> None:
    digest = result.digest()
    assert len(digest) == 64
    int(digest, 16)


def test_canonical_json_is_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == canonical_json({"a": [1, {"c": 3, "d": 2}], "b": 1})
    assert canonical_json({"a": "ä"}) == '{"a":"ä"}'


def test_stage_tables_are_consistent() -> None:
    assert set(STAGE_INPUTS) == set(STAGES) == set(STAGE_CAPABILITIES)
    for position, stage in enumerate(STAGES):
        for needed in STAGE_INPUTS[stage]:
            assert STAGES.index(needed) < position, (stage, needed)


def test_stage_dir() -> None:
    assert str(stage_dir("iso", "abc")) == "/artifacts/iso/abc"
