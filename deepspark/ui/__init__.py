"""The training UI: a server in its own process (``deepspark ui``) and self-contained HTML reports.

Importing this package imports neither Starlette nor uvicorn; ``deepspark.ui.server`` does.
"""

from __future__ import annotations

from deepspark.ui.report import export_tensorboard, write_report

__all__ = ["export_tensorboard", "write_report"]
