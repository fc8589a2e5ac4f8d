"""`python -m orchestrator` is the `liveorch` command."""

from orchestrator.cli import app

app(prog_name="liveorch")
