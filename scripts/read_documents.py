"""Read every document of a folder as the pipeline does; print articles, metadata and seconds per file.

    python scripts/read_documents.py ../shared/data/documents [--skip-ocr]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from legal_rag_pipeline.errors import SourceFileError
from legal_rag_pipeline.readers.formats import DOCUMENT_SUFFIXES, read_document_text
from legal_rag_pipeline.readers.header import document_info
from legal_rag_pipeline.readers.limits import Limits, use_limits
from legal_rag_pipeline.text.chunking import chunk_text
from legal_rag_pipeline.text.normalize import normalize_text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--skip-ocr", action="store_true", help="skip PDFs without a text layer")
    args = parser.parse_args(argv)
    for path in sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES):
        source = str(path.relative_to(args.folder))
        if args.skip_ocr and path.suffix.lower() == ".pdf":
            import pypdfium2 as pdfium

            pdf = pdfium.PdfDocument(str(path))
            if not pdf[0].get_textpage().get_text_bounded().strip():
                print(f"{source}\tskipped (no text layer, --skip-ocr)")
                continue
        start = time.perf_counter()
        try:
            with use_limits(Limits(read_timeout_seconds=0)):  # no time limit here: OCR of a long scan runs to its end
                read = read_document_text(path, source)
        except SourceFileError as exc:
            print(f"{source}\tFAILED {time.perf_counter() - start:.2f}s\t{exc}")
            continue
        text = normalize_text(read.text)
        chunks = chunk_text(source, text)
        info = document_info(text)
        seconds = time.perf_counter() - start
        articles = {c.metadata["article"] for c in chunks if c.metadata.get("article")}
        meta = ", ".join(f"{k}={v}" for k, v in info.items() if v)
        print(f"{source}\t{read.format}\t{seconds:.2f}s\t{len(articles)} articles\t{len(chunks)} chunks\t{meta}"
              f"\t[{'; '.join(read.notes)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
