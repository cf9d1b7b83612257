"""Readers: one source file → text or streamed rows, with encoding detection and header mapping.

No Dagster here. ``scan_data_dir`` lists the data folder cheaply; ``read_document`` reads one file
or raises ``SourceFileError`` (what is wrong with the file, and what to do, in one sentence).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes

if TYPE_CHECKING:
    from .decode import decode_bytes, detect_encoding
    from .document import Document, read_document
    from .scan import SUPPORTED_SUFFIXES, ScanResult, is_ignored, scan_data_dir
    from .tabular import HEADER_SEARCH_ROWS, fold_name, map_columns

# Imported on first use: every command imports ``readers.limits`` (through settings), and a search
# needs none of the readers (30 ms of a cold `legal-rag search`).
_MODULE_OF = {
    "decode_bytes": "decode", "detect_encoding": "decode", "Document": "document", "read_document": "document",
    "SUPPORTED_SUFFIXES": "scan", "ScanResult": "scan", "is_ignored": "scan", "scan_data_dir": "scan",
    "HEADER_SEARCH_ROWS": "tabular", "fold_name": "tabular", "map_columns": "tabular",
}


__getattr__ = lazy_attributes(__name__, _MODULE_OF)

__all__ = [
    "HEADER_SEARCH_ROWS",
    "SUPPORTED_SUFFIXES",
    "Document",
    "ScanResult",
    "decode_bytes",
    "detect_encoding",
    "fold_name",
    "is_ignored",
    "map_columns",
    "read_document",
    "scan_data_dir",
]
