"""The runner in-process: request.json in, the stage run on the fake tree, claims out."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from liveorch.stages import runner
from liveorch.stages.contract import ContractError, StageClaims, StageRequest
from liveorch.stages.contracts.checksum import ChecksumOptions

ISO_BYTES = b"CD001 fake iso for the runner\n"
ISO_NAME = "unit-live.x86_64-1.2.3.iso"


def checksum_request(epoch: int) -> StageRequest:
    return StageRequest(stage="checksum", key="checksum-key", source_date_epoch=epoch, inputs={"iso": "iso-key"},
                        options=ChecksumOptions(iso_name=ISO_NAME, mediacheck=False))


def test_execute_runs_the_stage_from_its_request(workspace, publish, commands, runner_environment, epoch) -> None:
    publish("iso", {"image.iso": ISO_BYTES})
    workspace.request.write_text(checksum_request(epoch).to_json())

    claims = runner.execute("checksum", workspace)

    digest = hashlib.sha256(ISO_BYTES).hexdigest()
    assert isinstance(claims, StageClaims)
    assert claims.facts == {"sha256": digest}
    assert claims.tools == {"coreutils": commands.version, "isomd5sum": commands.version}
    assert 0 <= claims.seconds < 5
    assert (workspace.out / "image.iso.sha256").read_text() == f"{digest}  {ISO_NAME}\n"
    assert json.loads(claims.to_json())["facts"] == {"sha256": digest}
    # what the runner sets for every stage (the fixture puts the test process's back)
    assert os.environ["SOURCE_DATE_EPOCH"] == str(epoch)
    assert os.environ["TZ"] == "UTC"
    current = os.umask(0o022)
    os.umask(current)
    assert current == 0o022


def test_execute_makes_out_and_tmp(workspace, publish, commands, runner_environment, epoch) -> None:
    workspace.out.rmdir()
    workspace.tmp.rmdir()
    publish("iso", {"image.iso": ISO_BYTES})
    workspace.request.write_text(checksum_request(epoch).to_json())

    runner.execute("checksum", workspace)

    assert workspace.tmp.is_dir()
    assert (workspace.out / "image.iso.sha256").is_file()


def test_an_unknown_option_field_is_a_contract_error(workspace, publish, commands, runner_environment,
                                                     epoch) -> None:
    publish("iso", {"image.iso": ISO_BYTES})
    data = json.loads(checksum_request(epoch).to_json())
    data["options"]["md5"] = True
    workspace.request.write_text(json.dumps(data))

    with pytest.raises(ContractError, match=r"^options: unknown field\(s\) md5$"):
        runner.execute("checksum", workspace)
    assert not (workspace.out / "image.iso.sha256").exists()
    assert os.environ["SOURCE_DATE_EPOCH"] == "1"  # refused before anything was set


@pytest.mark.parametrize(("change", "message"), [
    (lambda data: data.update(stage="iso"), r"request is for stage 'iso', this image runs 'checksum'"),
    (lambda data: data.update(inputs={}), r"request.inputs: expected iso"),
    (lambda data: data["options"].update(mediacheck="yes"), r"options.mediacheck: expected bool, got str"),
    (lambda data: data["options"].pop("iso_name"), r"options: missing field iso_name"),
    (lambda data: data.update(extra=1), r"request: unknown field\(s\) extra"),
], ids=["other-stage", "inputs", "option-type", "missing-option", "request-field"])
def test_a_request_that_does_not_fit_the_contract_is_refused(workspace, publish, commands, runner_environment,
                                                             epoch, change, message) -> None:
    publish("iso", {"image.iso": ISO_BYTES})
    data = json.loads(checksum_request(epoch).to_json())
    change(data)
    workspace.request.write_text(json.dumps(data))

    with pytest.raises(ContractError, match=message):
        runner.execute("checksum", workspace)
    assert commands.versions == []  # the stage never ran


def test_main_writes_claims_or_the_one_line_error(workspace, publish, commands, runner_environment, epoch,
                                                  monkeypatch, capsys) -> None:
    """main() with the injected workspace: claims to result.json, a StageError as one line."""
    monkeypatch.setattr(runner, "Workspace", lambda: workspace)
    workspace.request.write_text(checksum_request(epoch).to_json())

    assert runner.main(["checksum"]) == 1  # no ISO published yet
    assert "liveorch-stage-error: the iso stage left no image.iso\n" in capsys.readouterr().err
    assert not workspace.claims.exists()

    publish("iso", {"image.iso": ISO_BYTES})
    assert runner.main(["checksum"]) == 0
    claims = json.loads(workspace.claims.read_text())
    assert claims["facts"] == {"sha256": hashlib.sha256(ISO_BYTES).hexdigest()}
