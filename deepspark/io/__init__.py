"""Model archives: the zip format that carries a network's config, parameters and training state."""

from __future__ import annotations

from deepspark.io.archive import (
    DEFAULT_MAX_BYTES,
    FORMAT_VERSION,
    Archive,
    ArchiveInfo,
    read_archive,
    read_archive_metadata,
    write_archive,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMAT_VERSION",
    "Archive",
    "ArchiveInfo",
    "read_archive",
    "read_archive_metadata",
    "write_archive",
]
