"""``python -m deepspark.cli``: the same as the ``deepspark`` command."""

from deepspark.cli.main import entry

entry()
