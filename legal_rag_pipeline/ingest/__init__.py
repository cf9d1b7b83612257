"""The four stages of an ingest, as plain functions over one file or a set of files, one module each.

* ``read`` — raw_documents: each file fingerprinted, decoded to UTF-8 records by the child reader;
* ``normalize`` — normalized_records: records normalised and chunked (per article, Điều, split at
  clauses, khoản), with the document's validity facts;
* ``embed`` — embedding_batches: dense vectors for the chunks that have none, saved per file;
* ``sync`` — qdrant_collection: what the plan needs is read (``sync_plan.plan_sync`` is the pure
  plan), the deletion guard runs on it, and ``write`` carries it out; ``marks`` are the sync markers,
  ``points`` turns a chunk into a Qdrant point;
* ``overlap`` — chunk, embed and sync run together in one step: the embedding waits for each file's
  chunks, the writer for each file's vectors;
* ``failures`` — a failure in a file's own bytes is recorded with what it failed with: the plan does not
  run the file again until that changes;
* ``verify`` — the daily comparison of the collection with the folder, made by the plan.

The assets (assets/ingestion.py) call these per partition and only report what they return. A
problem with one file becomes a failed ``StageOutcome`` for that file (``outcomes``): the other files
go on, and nothing already in Qdrant is touched for the failed one.
"""

from .embed import EMBED_GROUP_TEXTS, embed_stage, embedded_groups, groups_of
from .failures import conditions as failure_conditions
from .failures import fails_as_before
from .marks import VERIFY_AFTER_SECONDS, forget_sync_state, sync_mark
from .marks import _write_sync_state as write_sync_state
from .normalize import CHUNKER_VERSION, VALIDITY_VERSION, normalize_stage, normalize_stages
from .outcomes import BM25_ONLY_MODEL, STAGES, file_sha256
from .overlap import Chunked, Embedded, Settled
from .points import chunk_point, lexical_text
from .read import READER_VERSION, read_stage, read_stages
from .summary import FileSummary, file_summaries, file_summary
from .sync import TRUSTED, sync_stage
from .verify import IDS_A_DAY, count_as_expected, files_missing_points, files_out_of_line, next_files

__all__ = [
    "BM25_ONLY_MODEL",
    "CHUNKER_VERSION",
    "Chunked",
    "Embedded",
    "Settled",
    "EMBED_GROUP_TEXTS",
    "READER_VERSION",
    "STAGES",
    "TRUSTED",
    "VALIDITY_VERSION",
    "VERIFY_AFTER_SECONDS",
    "FileSummary",
    "chunk_point",
    "embed_stage",
    "embedded_groups",
    "groups_of",
    "fails_as_before",
    "failure_conditions",
    "file_sha256",
    "files_out_of_line",
    "files_missing_points",
    "count_as_expected",
    "next_files",
    "IDS_A_DAY",
    "file_summaries",
    "file_summary",
    "forget_sync_state",
    "lexical_text",
    "normalize_stage",
    "normalize_stages",
    "read_stage",
    "read_stages",
    "sync_mark",
    "sync_stage",
    "write_sync_state",
]
