"""``python -m vechnost_bot`` runs the CLI."""

from vechnost_bot.cli import main

raise SystemExit(main())
