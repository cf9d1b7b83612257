"""Readers: one source file → text or streamed rows, with encoding detection and header mapping.

No Dagster here. ``scan_data_dir`` lists the data folder cheaply; ``read_document`` reads one file
or raises ``SourceFileError`` (what is wrong with the file, and what to do, in one sentence).
"""

from .decode import decode_bytes, detect_encoding
from .document import Document, read_document
from .scan import SUPPORTED_SUFFIXES, ScanResult, is_ignored, scan_data_dir
from .tabular import HEADER_SEARCH_ROWS, fold_name, map_columns

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
