"""The platform's command line, `fk` (also `python -m fk`): its commands are in `fk.cli`."""
