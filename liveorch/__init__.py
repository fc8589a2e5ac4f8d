"""liveorch: hybrid live ISOs from KIWI descriptions, built by unprivileged container stages.

The installed packages are `liveorch.orchestrator` (the host side: CLI, plan, engine) and
`liveorch.stages` (the code that runs inside the stage containers); in the repository they
are the top-level folders orchestrator/ and stages/, linked here.
"""

__version__ = "0.1.0"
