"""The ``deepspark`` command line."""
