"""Small torch modules that tests build through ``ModuleConfig``/``TorchLayer`` factory references.

Tests put ``tests/support`` on ``sys.path`` (tests/conftest.py) for the driver, and ship this package to
Spark's Python workers with ``spark.sparkContext.addPyFile`` as a zip, the way users ship their own.
"""
