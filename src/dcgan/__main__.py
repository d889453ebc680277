"""`python -m dcgan` runs the command-line program."""

from .cli import main

raise SystemExit(main())
