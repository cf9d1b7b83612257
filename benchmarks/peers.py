"""Ours vs LangChain vs LlamaIndex: the same chunks of the same laws, the same loopback embeddings server.

    pip install -e '.[peers]'
    python benchmarks/peers.py                 # the first 100 laws (sorted) of ../shared/data/laws
    python benchmarks/peers.py --laws 5        # a quick check

Three steps, each tool in its own fresh subprocess per step (wall time and peak RSS of that process,
measured by ``run.py``'s ``run_measured``):
  a  full first ingest of the laws (copied into a temporary folder)
  b  re-ingest, nothing changed
  c  re-ingest after one paragraph of one article of one law changed (``run.py``'s ``change_one_article``)

Tools:
  ours        ``legal-rag ingest`` as ``run.py`` runs it (dense, the loopback endpoint, embedded Qdrant Edge)
  langchain   ``langchain_core.indexes.index(cleanup="scoped_full", source_id_key="source")`` with a
              ``SQLRecordManager`` (sqlite file) and ``langchain_qdrant.QdrantVectorStore`` on
              qdrant-client local mode; one ``Document`` per chunk, ``source`` = the file name
  llamaindex  ``IngestionPipeline(docstore_strategy=UPSERTS_AND_DELETE)`` with a ``SimpleDocumentStore``
              persisted to a file and ``llama_index.vector_stores.qdrant.QdrantVectorStore`` on
              qdrant-client local mode (async client); one ``Document`` per file (doc_id = file name),
              split by a transform that calls our chunker (node id = our point id), run with ``arun``

The peers get exactly our chunks: each file is read by our reader and cut by our chunker
(``legal_rag_pipeline.text.chunking.chunk_text``, as the normalize stage does), and the script checks
that every tool sent the server exactly the chunk texts in step a and that every collection holds
exactly our chunk count after every step. The peers' embeddings send batches of 32 texts (ours) with
``huggingface_hub``'s ``feature_extraction`` to the same server; LlamaIndex has 4 requests in flight
(``num_workers=4`` on the embedding model, honoured by ``arun``); LangChain's ``index()`` has no
concurrency knob, so its requests go one at a time.

The loopback server (legal_rag_pipeline_tests/loopback.py) runs in this process: 50 ms per request
plus 1 ms per text, 768 dimensions. Nothing is written inside the repository except the ``peers``
section of RESULTS.md (--results).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402 - the benchmark's own helpers
    CHANGED_ARTICLE,
    CHANGED_LAW,
    DEFAULT_DATA,
    DIM,
    ENDPOINT_KEY,
    LATENCY,
    LATENCY_PER_TEXT,
    REPO,
    base_env,
    change_one_article,
    finish,
    ingest_cmd,
    machine,
    measure,
    section_head,
)

TOOLS = ("ours", "langchain", "llamaindex")
STEPS = {"a": "full ingest", "b": "re-ingest, nothing changed", "c": "re-ingest, one article changed"}
TOKEN_BUDGET = 128  # CHUNK_TOKEN_BUDGET's default (settings.py)
BATCH_SIZE, CONCURRENCY = 32, 4  # our embedder's defaults (resources/embeddings.py)
COLLECTION = "laws"
PROBE = "dummy_text"  # langchain_qdrant embeds it once per QdrantVectorStore(...) to learn the dimension
PEER_PACKAGES = ("langchain-core", "langchain-classic", "langchain-qdrant", "llama-index-core",
                 "llama-index-vector-stores-qdrant", "qdrant-client", "huggingface_hub")


# ---------------------------------------------------------------------------- our chunks, as plain functions
def chunks_of_text(source: str, text: str) -> list:
    """What the normalize stage makes of a decoded text file (ingest.normalize, kind "text")."""
    from legal_rag_pipeline.readers.header import document_info
    from legal_rag_pipeline.records import Chunk
    from legal_rag_pipeline.text.chunking import chunk_text
    from legal_rag_pipeline.text.normalize import normalize_text
    from legal_rag_pipeline.text.tokens import count_tokens

    text = normalize_text(text)
    info = document_info(text)
    return [Chunk(c.source, c.chunk_key, c.text, {**c.metadata, **info})
            for c in chunk_text(source, text, TOKEN_BUDGET, count_tokens)]


def read_file(path: Path) -> str:
    from legal_rag_pipeline.readers.document import read_document

    return read_document(path, path.name).text or ""


def corpus_chunks(data: Path) -> list:
    return [c for path in sorted(data.iterdir()) for c in chunks_of_text(path.name, read_file(path))]


def payload_metadata(chunk) -> dict:
    return {**chunk.metadata, "source": chunk.source, "chunk_key": chunk.chunk_key}


# ---------------------------------------------------------------------------- the peers (run in a subprocess)
def run_langchain(data: Path, store: Path, endpoint: str) -> dict:
    from huggingface_hub import InferenceClient
    from langchain_classic.indexes import SQLRecordManager
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.indexing import index
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient
    from qdrant_client.models import Distance, VectorParams

    class LoopbackEmbeddings(Embeddings):
        """Batches of 32 texts, one request at a time (embed_documents is called once per index batch)."""

        def __init__(self) -> None:
            self.client = InferenceClient(base_url=endpoint, token=ENDPOINT_KEY, timeout=60)

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [row for i in range(0, len(texts), BATCH_SIZE)
                    for row in self.client.feature_extraction(texts[i:i + BATCH_SIZE]).tolist()]

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    def documents():
        for path in sorted(data.iterdir()):
            for c in chunks_of_text(path.name, read_file(path)):
                yield Document(page_content=c.text, metadata=payload_metadata(c))

    client = QdrantClient(path=str(store / "qdrant"))
    if not client.collection_exists(COLLECTION):
        client.create_collection(COLLECTION, vectors_config=VectorParams(size=DIM, distance=Distance.COSINE))
    vector_store = QdrantVectorStore(client=client, collection_name=COLLECTION, embedding=LoopbackEmbeddings())
    record_manager = SQLRecordManager(f"qdrant/{COLLECTION}", db_url=f"sqlite:///{store / 'records.sqlite'}")
    record_manager.create_schema()
    # batch_size 128 = 4 full requests of 32 per add_documents call
    result = index(documents(), record_manager, vector_store, cleanup="scoped_full", source_id_key="source",
                   batch_size=4 * BATCH_SIZE)
    client.close()
    return dict(result)


def run_llamaindex(data: Path, store: Path, endpoint: str) -> dict:
    from huggingface_hub import AsyncInferenceClient, InferenceClient
    from llama_index.core import Document
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.schema import NodeRelationship, TextNode, TransformComponent
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from pydantic import PrivateAttr
    from qdrant_client import AsyncQdrantClient

    class LoopbackEmbedding(BaseEmbedding):
        _client: InferenceClient = PrivateAttr()
        _aclient: AsyncInferenceClient = PrivateAttr()

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._client = InferenceClient(base_url=endpoint, token=ENDPOINT_KEY, timeout=60)
            self._aclient = AsyncInferenceClient(base_url=endpoint, token=ENDPOINT_KEY, timeout=60)

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._client.feature_extraction(texts).tolist()

        async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return (await self._aclient.feature_extraction(texts)).tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        async def _aget_text_embedding(self, text: str) -> list[float]:
            return (await self._aget_text_embeddings([text]))[0]

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return await self._aget_text_embedding(query)

    class LawChunker(TransformComponent):
        """A file's Document -> our chunks as TextNodes (id = our point id; only the text is embedded)."""

        def __call__(self, nodes, **kwargs):
            out = []
            for doc in nodes:
                source = {NodeRelationship.SOURCE: doc.as_related_node_info()}  # hashes the file: once
                for c in chunks_of_text(doc.doc_id, doc.text):
                    metadata = payload_metadata(c)
                    node = TextNode(id_=c.point_id, text=c.text, metadata=metadata,
                                    excluded_embed_metadata_keys=list(metadata),
                                    excluded_llm_metadata_keys=list(metadata), relationships=dict(source))
                    out.append(node)
            return out

    docstore_file = store / "docstore.json"
    docstore = SimpleDocumentStore.from_persist_path(str(docstore_file)) if docstore_file.exists() else SimpleDocumentStore()
    aclient = AsyncQdrantClient(path=str(store / "qdrant"))
    pipeline = IngestionPipeline(
        transformations=[LawChunker(), LoopbackEmbedding(embed_batch_size=BATCH_SIZE, num_workers=CONCURRENCY)],
        docstore=docstore,
        vector_store=QdrantVectorStore(collection_name=COLLECTION, aclient=aclient),
        docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
        disable_cache=True,  # in memory only; unchanged files never reach the transforms anyway
    )
    documents = [Document(text=read_file(path), doc_id=path.name, metadata={"source": path.name})
                 for path in sorted(data.iterdir())]

    async def go():
        nodes = await pipeline.arun(documents=documents)
        await aclient.close()
        return nodes

    nodes = asyncio.run(go())
    docstore.persist(str(docstore_file))
    return {"nodes_written": len(nodes), "documents": len(documents)}


def count_points(tool: str, store: Path) -> int:
    if tool == "ours":
        from legal_rag_pipeline.resources.qdrant import QdrantStore

        with QdrantStore(path=str(store)).connect() as collection:
            return collection.count()
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(store))
    try:
        return client.count(COLLECTION, exact=True).count if client.collection_exists(COLLECTION) else 0
    finally:
        client.close()


# ---------------------------------------------------------------------------- the benchmark
def step(tool: str, name: str, server, work: Path, data: Path) -> dict:
    """Run one tool's step in a fresh subprocess; return its figures."""
    folder = work / tool
    folder.mkdir(exist_ok=True)
    state = folder / "state"
    env = base_env(folder, data, state, server.url)
    if tool == "ours":
        (folder / "dagster_home").mkdir(exist_ok=True)
        cmd, qdrant = ingest_cmd(), state / "qdrant"
    else:
        state.mkdir(exist_ok=True)
        cmd = [sys.executable, __file__, "--worker", tool, "--data", str(data), "--store", str(state),
               "--endpoint", server.url]
        qdrant = state / "qdrant"
    server.reset_records()
    log = folder / f"{name}.log"
    m = measure(cmd, env, work, log)
    wall, rss, code = m.wall_s, m.peak_rss_mb, m.exit_code
    sent = [t for r in list(server.requests) if r.texts is not None for t in r.texts]
    out = {"tool": tool, "step": name, "wall_s": round(wall, 2), "peak_rss_mb": round(rss, 1), "exit_code": code,
           "peak_anon_mb": round(m.peak_anon_mb), "peak_file_mb": round(m.peak_file_mb), "cpu_s": round(m.cpu_s, 1),
           "peak_tree_mb": round(m.peak_tree_mb), "peak_tree_pss_mb": round(m.peak_tree_pss_mb),
           "embedded": len(sent), "requests": server.count(), "max_in_flight": server.max_in_flight,
           "probes": sent.count(PROBE), "sent": Counter(t for t in sent if t != PROBE)}
    if code != 0:
        print(log.read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
        out["points"] = -1
    else:
        counted = subprocess.run([sys.executable, __file__, "--count", tool, "--store", str(qdrant)], env=env,
                                 capture_output=True, text=True)
        out["points"] = int(counted.stdout.split()[-1]) if counted.returncode == 0 else -1
        if counted.returncode:
            print(counted.stderr[-2000:], file=sys.stderr)
    print(f"  {name} {tool:<10} {wall:7.1f} s  peak {rss:6.0f} MB  {out['embedded']:6} texts in "
          f"{out['requests']:5} requests (max {out['max_in_flight']} in flight)  {out['points']} points", flush=True)
    return out


def changed_law(data: Path) -> Path:
    """run.py's law when it is among the laws taken, else the first ``Luat-`` file with that article."""
    files = sorted(data.iterdir())
    if (data / CHANGED_LAW).exists():
        return data / CHANGED_LAW
    has = [p for p in files if any(line.strip().startswith(CHANGED_ARTICLE) for line in p.read_text("utf-8").split("\n"))]
    return next((p for p in has if p.name.startswith("Luat-")), has[0])


def ratio(ours: float, best: float) -> str:
    return f"{ours / best:.2f}×" if best else "n/a"


def markdown(report: dict, command: str) -> str:
    lines = [
        *section_head(f"ours vs LangChain vs LlamaIndex, {report['laws']} laws", command, report["machine"],
                      report["load_after"], report["peer_packages"]),
        f"Corpus: the first {report['laws']} files (sorted) of ../shared/data/laws, {report['chunks']:,} chunks (ours); "
        f"step c: {report['changed']}. Loopback server: 50 ms per request + 1 ms per text, 768 dims.  ",
        "Every tool got the same chunks (our reader and chunker) and sent the server exactly the chunk texts in step a"
        f": {'yes' if report['same_texts'] else '**no**'}.",
        "",
        ("| step | tool | wall s | peak RSS MB | private / mapped MB | with child processes MB: RSS / PSS | CPU s | texts embedded "
         "| requests | max in flight | points | expected |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(f"| {r['step']}: {STEPS[r['step']]} | {r['tool']} | {r['wall_s']:,} | {r['peak_rss_mb']:,} | "
                     f"{r.get('peak_anon_mb', 0):,} / {r.get('peak_file_mb', 0):,} | {r.get('peak_tree_mb', '')} / {r.get('peak_tree_pss_mb', '')} | "
                     f"{r.get('cpu_s', 0):,} | "
                     f"{r['embedded']:,} | {r['requests']:,} | {r['max_in_flight']} | {r['points']:,} | "
                     f"{r['expected']:,} |")
    lines += ["", "Ours vs the best peer (below 1: ours is faster / smaller):", ""]
    for s, q in report["ratios"].items():
        lines.append(f"- {s}: wall {q['wall']} (best peer {q['wall_best']}), peak RSS {q['rss']} "
                     f"(best peer {q['rss_best']}), peak private memory {q['anon']} (best peer {q['anon_best']}), "
                     f"with child processes as proportional set sizes {q['tree']} (best peer {q['tree_best']})")
    probes = sum(r["probes"] for r in report["results"])
    lines += [
        "",
        "- LangChain: one `Document` per chunk, so step c embeds only the changed chunks; its `index()` has no "
        f"concurrency knob (one request in flight); its texts include {probes} `\"dummy_text\"` in all "
        "(`langchain_qdrant.QdrantVectorStore(...)` embeds it once per process to check the dimension).",
        "- LlamaIndex: one `Document` per file (the docstore's unit), so step c embeds every chunk of the changed "
        "file; `embed_batch_size=32, num_workers=4` with `IngestionPipeline.arun`; ingestion cache off (in memory "
        "only, and unchanged files never reach the transforms).",
        "- Stores differ: ours is Qdrant Edge (embedded engine); the peers use qdrant-client's local mode "
        "(`path=...`: pure Python, every point a SQLite write, the whole collection loaded to open it), the "
        "embedded mode both libraries' Qdrant guides show; it is meant for tests and small collections.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--laws", type=int, default=100, help="the first N laws (sorted) of --data (default 100)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of laws (default ../shared/data/laws)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md",
                        help="the Markdown page whose `peers` section is rewritten (default benchmarks/RESULTS.md)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--worker", choices=("langchain", "llamaindex"), help=argparse.SUPPRESS)
    parser.add_argument("--count", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # one peer's step, in its own process
        run = run_langchain if args.worker == "langchain" else run_llamaindex
        print(json.dumps(run(args.data, args.store, args.endpoint), default=str))
        return 0
    if args.count:
        print(count_points(args.count, args.store))
        return 0

    from legal_rag_pipeline_tests.loopback import EmbeddingServer

    files = sorted(args.data.iterdir())[: args.laws] if args.data.is_dir() else []
    if not files:
        print(f"no laws in {args.data}: pass --data DIR", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="legal_rag_peers_"))
    data = work / "data"
    data.mkdir()
    for path in files:
        shutil.copy2(path, data / path.name)
    info = machine()
    print(f"work folder {work}; {len(files)} laws; load {info['load_before']}", flush=True)
    report: dict = {"machine": info, "laws": len(files),
                    "peer_packages": {p: version(p) for p in PEER_PACKAGES if p not in info["packages"]}}
    results: list[dict] = []
    with EmbeddingServer(dim=DIM, latency=LATENCY, latency_per_text=LATENCY_PER_TEXT) as server:
        chunks = corpus_chunks(data)
        expected_texts = Counter(c.text for c in chunks)
        report["chunks"] = len(chunks)
        for name in STEPS:
            if name == "c":
                law = changed_law(data)
                report["changed"] = change_one_article(law)
                chunks = corpus_chunks(data)
            for tool in TOOLS:
                result = step(tool, name, server, work, data)
                result["expected"] = len(chunks)
                results.append(result)
    report["load_after"] = os.getloadavg()
    report["same_texts"] = all(r["sent"] == expected_texts for r in results if r["step"] == "a")
    ours_ids = ours_chunk_ids(work / "ours" / "state")
    report["same_ids"] = ours_ids == {c.point_id for c in chunks}
    for r in results:
        del r["sent"]
    report["results"] = results
    report["ratios"] = {}
    for name in STEPS:
        row = {r["tool"]: r for r in results if r["step"] == name}
        peers = [row[t] for t in TOOLS if t != "ours"]
        fast = min(peers, key=lambda r: r["wall_s"])
        small = min(peers, key=lambda r: r["peak_rss_mb"])
        private = min(peers, key=lambda r: r["peak_anon_mb"])
        tree = min(peers, key=lambda r: r["peak_tree_pss_mb"])
        report["ratios"][name] = {"wall": ratio(row["ours"]["wall_s"], fast["wall_s"]), "wall_best": fast["tool"],
                                  "rss": ratio(row["ours"]["peak_rss_mb"], small["peak_rss_mb"]), "rss_best": small["tool"],
                                  "anon": ratio(row["ours"]["peak_anon_mb"], private["peak_anon_mb"]),
                                  "anon_best": private["tool"],
                                  "tree": ratio(row["ours"]["peak_tree_pss_mb"], tree["peak_tree_pss_mb"]),
                                  "tree_best": tree["tool"]}

    print()
    head = f"{'step':<5} {'tool':<11} {'wall s':>8} {'peak MB':>8} {'embedded':>9} {'requests':>9} {'points':>7} {'expected':>8}"
    print(head + "\n" + "-" * len(head))
    for r in results:
        print(f"{r['step']:<5} {r['tool']:<11} {r['wall_s']:>8.1f} {r['peak_rss_mb']:>8.0f} {r['embedded']:>9} "
              f"{r['requests']:>9} {r['points']:>7} {r['expected']:>8}")
    for name, q in report["ratios"].items():
        print(f"{name}: ours/best peer wall {q['wall']} ({q['wall_best']}), peak RSS {q['rss']} ({q['rss_best']})")
    print(f"same texts sent in step a: {report['same_texts']}; our point ids = the script's chunks: {report['same_ids']}")
    ok = all(r["exit_code"] == 0 and r["points"] == r["expected"] for r in results)
    ok = ok and report["same_texts"] and report["same_ids"]
    command = ("python benchmarks/peers.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    return finish(args, ok, "peers", markdown(report, command), work, "a step failed or a count is off")


def ours_chunk_ids(state: Path) -> set[str]:
    """The point ids our pipeline chunked (its artifacts), to check the script's chunks are the same."""
    from legal_rag_pipeline.artifacts import FileArtifacts, known_sources

    return {i for source in known_sources(state) for i in FileArtifacts(state, source).chunk_ids()}


if __name__ == "__main__":
    sys.exit(main())
