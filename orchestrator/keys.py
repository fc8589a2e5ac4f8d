"""Cache keys: what makes two runs of a stage the same run.

A stage's key covers its code (the hash of its image's build context: its Dockerfile and
the files it runs, see orchestrator/stage_code.py), its options, the build's
SOURCE_DATE_EPOCH and its inputs' output digests, and nothing else. An edit to one stage's
code reruns that stage, and later ones only where its outputs' bytes change.
"""

from __future__ import annotations

from typing import Any

from liveorch.stages.contract import Record, canonical_json, encode, sha256_text


def stage_key(stage: str, code: str, epoch: int, options: Any, inputs: dict[str, Record]) -> str:
    return sha256_text(canonical_json({
        "stage": stage,
        "code": code,
        "source_date_epoch": epoch,
        "options": encode(options),
        "inputs": {name: record.digest() for name, record in sorted(inputs.items())},
    }))
