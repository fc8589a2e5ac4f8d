"""`python -m liveorch` is the `liveorch` command."""

from liveorch.orchestrator.cli import app

app(prog_name="liveorch")
