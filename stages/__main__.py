"""Entrypoint of every stage image: `python3 -m liveorch.stages <stage> <work-dir>`."""

from liveorch.stages.runner import main

raise SystemExit(main())
