"""Entrypoint of every stage image: `python3 -m stages <stage> <work-dir>`."""

from stages.runner import main

raise SystemExit(main())
