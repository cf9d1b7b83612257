"""The Qdrant store: one resource owning the connection, the collection layout and all writes.

``QdrantStore`` is the Dagster resource (``resources/qdrant_resource.py``); its behaviour, and the
plain ``Store`` that `legal-rag search`, `status` and `doctor` open, are ``stores/store.py``. The
engines behind ``stores.base.Collection`` are ``stores/edge.py`` (Qdrant Edge, embedded default)
and ``stores/client.py`` (qdrant-client: a server, or its local mode).

Importing this module does not import Dagster (half a second): ``ingest.py`` takes ``Collection``
and ``PointRecord`` from here, and `legal-rag status` imports ``ingest.py``. ``QdrantStore`` is
loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..stores.base import (  # noqa: F401 - the store's public names, re-exported
    INDEX_FIELDS,
    SPARSE_NAME,
    Collection,
    Layout,
    PointRecord,
    ScoredPoint,
    StoredPoint,
    vector_is_valid,
    versioned_name,
)
from ..stores.store import ENGINES, Store, StoreMethods  # noqa: F401

if TYPE_CHECKING:
    from .qdrant_resource import QdrantStore  # noqa: F401 - for type checkers; loaded by __getattr__


def __getattr__(name: str) -> Any:
    if name == "QdrantStore":
        from .qdrant_resource import QdrantStore

        return QdrantStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
