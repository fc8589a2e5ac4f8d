"""Entrypoint of every stage image: `python3 -m liveorch.stages <stage>`."""

from liveorch.stages.runner import main

raise SystemExit(main())
