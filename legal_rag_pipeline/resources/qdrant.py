"""The Qdrant store: one resource owning the connection, the collection layout and all writes.

``QdrantStore`` is the Dagster resource (``resources/qdrant_resource.py``); its behaviour, and the
plain ``Store`` that `legal-rag search`, `status` and `doctor` open, are ``stores/store.py``. The
engines behind ``stores.base.Collection`` are ``stores/edge.py`` (Qdrant Edge, embedded default)
and ``stores/client.py`` (qdrant-client: a server, or its local mode).

The pipeline's core (the ``ingest`` package, ``evaluation.py``) takes ``Collection`` and ``PointRecord`` from
``stores.base``, so a command that needs no Dagster (`legal-rag search`, `status`) never imports this
module.
"""

from __future__ import annotations

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
from .qdrant_resource import QdrantStore  # noqa: F401
