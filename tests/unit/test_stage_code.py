"""Each stage's image carries, and its cache key covers, exactly the code it runs."""

from __future__ import annotations

from liveorch.orchestrator.images import STORE_IMAGE, context_files, context_hash, image_names
from liveorch.orchestrator.stage_code import code_files
from liveorch.orchestrator.stage_specs import stage_specs

COMMON = {"__init__.py", "__main__.py", "runner.py", "contract.py", "tools.py", "limits.py", "contracts/__init__.py"}


def owners(relative: str) -> list[str]:
    return [name for name, spec in stage_specs().items() if relative in code_files(spec)]


def test_every_stage_runs_the_common_runner_and_its_own_contract() -> None:
    for name, spec in stage_specs().items():
        files = set(code_files(spec))
        assert files >= COMMON
        assert {f"{name}.py", f"contracts/{name}.py"} <= files


def test_the_grub_menu_code_belongs_to_the_iso_stage_alone() -> None:
    assert owners("grub_config.py") == ["iso"]
    assert owners("grub_efi.py") == ["iso"]


def test_stage_modules_belong_to_their_stage() -> None:
    assert owners("squashfs.py") == ["squashfs"]
    assert owners("hooks.py") == ["rootfs"] and owners("configure_root.py") == ["rootfs"]
    assert owners("signed_chain.py") == ["initrd"]


def test_a_stage_reads_the_contracts_of_the_stages_whose_outputs_it_names() -> None:
    assert "contracts/rootfs.py" in code_files(stage_specs()["squashfs"])
    assert "contracts/iso.py" in code_files(stage_specs()["checksum"])
    assert "contracts/iso.py" not in code_files(stage_specs()["rootfs"])


def test_data_folders_are_part_of_the_code() -> None:
    assert owners("dracut/90liveorch-live/liveorch-live-root.sh") == ["initrd"]


def test_contexts_hold_the_dockerfile_and_the_code_only() -> None:
    for name in stage_specs():
        files = context_files(name)
        assert f"Dockerfiles/{name}.Dockerfile" in files
        assert {f"stages/{relative}" for relative in code_files(stage_specs()[name])} == set(files) - {
            f"Dockerfiles/{name}.Dockerfile"}
    assert set(context_files(STORE_IMAGE)) == {"Dockerfiles/store.Dockerfile", "orchestrator/__init__.py",
                                               "orchestrator/store_keeper.py", "stages/__init__.py",
                                               "stages/contract.py"}


def test_every_image_has_its_own_content_hash() -> None:
    hashes = {context_hash(name) for name in image_names()}
    assert len(hashes) == len(image_names())
