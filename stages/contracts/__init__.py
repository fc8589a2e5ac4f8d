"""One contract per stage: its typed options, inputs, outputs, privileges.

Each module here defines one `SPEC` (a `StageSpec`) and the option classes it names. The
orchestrator finds them all (orchestrator/stage_specs.py); a stage imports only its own,
so a change to one stage's contract reruns that stage alone. Nothing in this file may
import a stage's contract: every stage image carries it.
"""
