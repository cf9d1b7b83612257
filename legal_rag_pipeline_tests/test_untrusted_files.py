"""Untrusted names and untrusted files, one at a time, through the real read stage (paths gate, child
reader process, limits). The same attacks inside whole Dagster runs: test_untrusted_runs.py."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

import pytest

from legal_rag_pipeline import ingest
from legal_rag_pipeline.artifacts import FileArtifacts, StageOutcome
from legal_rag_pipeline.automation.sensors import stat_folder
from legal_rag_pipeline.errors import SourceFileError
from legal_rag_pipeline.paths import check_key, open_source, source_path
from legal_rag_pipeline.readers import worker
from legal_rag_pipeline.readers.limits import Limits
from legal_rag_pipeline_tests import hostile_files as hostile

LAW = "LUẬT THỬ\nĐiều 1. Phạm vi\nLuật này quy định việc thử.\n"


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(data folder with one good law, state folder, a secret file beside the data folder)."""
    data, state, outside = tmp_path / "data", tmp_path / "state", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    (data / "luat.txt").write_text(LAW, encoding="utf-8")
    (outside / "bi-mat.txt").write_text("Điều 1. Bí mật\nMật khẩu là outside-marker.\n", encoding="utf-8")
    return data, state, outside


def read(data: Path, state: Path, key: str, **limits) -> StageOutcome:
    return ingest.read_stage(data, key, state, "run-1", Limits(**limits) if limits else Limits())


# ---------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "key, reason",
    [
        ("../x.txt", "goes up out of the data folder"),
        ("a/../../x.txt", "goes up out of the data folder"),
        ("/etc/passwd", "is an absolute path"),
        ("a//b.txt", "not a plain relative path"),
        ("./luat.txt", "not a plain relative path"),
        (".env", "hidden file or folder"),
        ("sub/.git/config.txt", "hidden file or folder"),
        ("", "empty or holds a NUL"),
        ("a\x00.txt", "empty or holds a NUL"),
    ],
)
def test_keys_that_could_leave_the_folder_are_refused(folder, key, reason):
    data, state, _ = folder
    with pytest.raises(SourceFileError) as refused:
        check_key(key)
    assert reason in refused.value.reason
    outcome = read(data, state, key)
    assert outcome.status == "failed" and reason in outcome.error
    assert "only files inside DATA_DIR are read" in outcome.fix


def test_absolute_key_naming_a_file_inside_the_folder_is_still_refused(folder):
    data, state, _ = folder
    outcome = read(data, state, str(data / "luat.txt"))
    assert outcome.status == "failed" and "absolute path" in outcome.error


def test_links_leading_out_fifos_devices_and_sockets_are_refused(folder, tmp_path):
    data, state, outside = folder
    (data / "link.txt").symlink_to(outside / "bi-mat.txt")
    (data / "zero.txt").symlink_to("/dev/zero")
    (data / "environ.txt").symlink_to("/proc/self/environ")
    (data / "thu-muc").symlink_to(outside, target_is_directory=True)
    (data / "vong.txt").symlink_to(data / "vong.txt")
    os.mkfifo(data / "pipe.txt")
    (data / "folder.txt").mkdir()
    expected = {
        "link.txt": "symbolic link leading outside the data folder",
        "zero.txt": "symbolic link leading outside the data folder",
        "environ.txt": "symbolic link leading outside the data folder",
        "thu-muc/bi-mat.txt": "symbolic link leading outside the data folder",
        "pipe.txt": "a named pipe (FIFO), not a regular file",
        "folder.txt": "a folder, not a regular file",
    }
    sock_path = data / "s.txt"
    if len(str(sock_path)) < 100:  # AF_UNIX path limit
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(sock_path))
        expected["s.txt"] = "a socket, not a regular file"
    started = time.monotonic()
    for key, reason in expected.items():
        outcome = read(data, state, key)
        assert outcome.status == "failed", key
        assert reason in outcome.error, (key, outcome.error)
    assert read(data, state, "vong.txt").status == "failed"  # a link loop: refused, not followed forever
    assert time.monotonic() - started < 10  # the FIFO did not block the open
    assert read(data, state, "luat.txt").status == "ok"
    # Nothing from outside reached the state folder.
    for path in state.rglob("*"):
        if path.is_file():
            assert b"outside-marker" not in path.read_bytes(), path


def test_links_inside_the_folder_are_followed(folder):
    data, state, _ = folder
    (data / "sub").mkdir()
    (data / "sub" / "ban-sao.txt").symlink_to(data / "luat.txt")
    assert source_path(data, "sub/ban-sao.txt") == (data / "luat.txt").resolve()
    assert read(data, state, "sub/ban-sao.txt").status == "ok"


def test_the_gate_resolves_every_kind_of_path_as_realpath_does(folder):
    """The gate looks at each part of a key once and falls back to ``os.path.realpath`` at a link:
    the answer is realpath's for plain files, links to files and folders (inside and out), chains,
    loops, dangling links and missing parts."""
    from legal_rag_pipeline.paths import _real_path

    data, _, outside = folder
    (data / "sub" / "con").mkdir(parents=True)
    (data / "sub" / "con" / "dieu-1.txt").write_text(LAW, encoding="utf-8")
    (data / "sub" / "ban-sao.txt").symlink_to(data / "luat.txt")
    (data / "noi-bo").symlink_to(data / "sub", target_is_directory=True)
    (data / "chuoi.txt").symlink_to(data / "sub" / "ban-sao.txt")
    (data / "ra-ngoai").symlink_to(outside, target_is_directory=True)
    (data / "vong.txt").symlink_to(data / "vong.txt")
    (data / "treo.txt").symlink_to(data / "khong-co.txt")
    root = os.path.realpath(data)
    keys = ["luat.txt", "sub/con/dieu-1.txt", "sub/ban-sao.txt", "noi-bo/con/dieu-1.txt", "chuoi.txt",
            "ra-ngoai/bi-mat.txt", "vong.txt", "treo.txt", "khong-co.txt", "sub/khong-co/x.txt", "sub/con"]
    for key in keys:
        real, mode = _real_path(root, tuple(key.split("/")))
        assert real == os.path.realpath(os.path.join(root, key)), key
        if mode is not None:
            assert mode == os.lstat(real).st_mode, key
    assert _real_path(root, ("ra-ngoai", "bi-mat.txt"))[0] == os.path.realpath(outside / "bi-mat.txt")
    with pytest.raises(SourceFileError, match="leading outside"):
        source_path(data, "ra-ngoai/bi-mat.txt")
    assert source_path(data, "noi-bo/con/dieu-1.txt") == (data / "sub" / "con" / "dieu-1.txt").resolve()


def test_a_link_swapped_in_after_the_check_is_not_followed(folder):
    """open_source checks the descriptor it opened: the final component is opened with O_NOFOLLOW,
    and what the kernel says was opened must lie inside the folder."""
    data, _, outside = folder
    with open_source(data, "luat.txt") as handle:
        (data / "luat.txt").unlink()
        (data / "luat.txt").symlink_to(outside / "bi-mat.txt")
        assert handle.changed()  # the read is refused as changed
        assert b"outside-marker" not in os.pread(handle.fd, 1 << 16, 0)
    with pytest.raises(SourceFileError, match="symbolic link leading outside"):
        open_source(data, "luat.txt")
    # O_NOFOLLOW itself: a link at the final component cannot be opened through the gate's flags.
    from legal_rag_pipeline.paths import _OPEN_FLAGS

    with pytest.raises(OSError):
        os.open(data / "luat.txt", _OPEN_FLAGS)


def test_readers_get_a_path_to_the_checked_descriptor_even_for_programs_they_start(folder):
    """Readers that want a path (openpyxl, LibreOffice) get a link to the opened descriptor: swapping
    the file afterwards changes nothing for them."""
    import subprocess

    data, _, outside = folder
    with open_source(data, "luat.txt") as handle, worker._path_for(handle.fd, ".txt") as path:
        (data / "luat.txt").unlink()
        (data / "luat.txt").symlink_to(outside / "bi-mat.txt")
        assert path.suffix == ".txt"
        assert path.read_text(encoding="utf-8") == LAW
        assert subprocess.run(["cat", str(path)], capture_output=True, check=True).stdout.decode() == LAW


def test_the_sensor_stats_through_the_same_gate(folder):
    data, _, outside = folder
    (data / "link.txt").symlink_to(outside / "bi-mat.txt")
    current, skipped = stat_folder(data)
    assert set(current) == {"luat.txt"}
    assert ("link.txt", "symbolic link to a location outside the data folder") in skipped


@pytest.mark.parametrize("key", ["../../etc/passwd", "/etc/passwd", "a/../../b", "..", ".", "x/" * 200 + "y.txt", "Điều 1.txt"])
def test_the_state_folder_layout_cannot_be_escaped_by_a_key(tmp_path, key):
    art = FileArtifacts(tmp_path / "state", key)
    assert art.dir.parent == tmp_path / "state" / "files"
    assert art.dir.name not in {".", ".."} and "/" not in art.dir.name
    art.write_raw([{"text": key}])
    assert [p.parent for p in (tmp_path / "state").rglob("raw.jsonl")] == [art.dir]
    art.write_document({"source": key})  # a row of files.db, keyed by the source itself
    assert FileArtifacts(tmp_path / "state", key).document() == {"source": key}


# ---------------------------------------------------------------------------- limits
def test_zip_bomb_xlsx_is_refused_before_reading(folder):
    data, state, _ = folder
    hostile.xlsx_zip_bomb(data / "bom.xlsx")
    assert (data / "bom.xlsx").stat().st_size < 2 * 1024 * 1024
    started = time.monotonic()
    outcome = read(data, state, "bom.xlsx")
    assert outcome.status == "failed"
    assert "would expand to 700.0 MB when unpacked, over the 512.0 MB limit (MAX_UNCOMPRESSED_BYTES)" in outcome.error
    assert time.monotonic() - started < 10


def test_zip_bomb_docx_is_refused_by_its_ratio(folder):
    data, state, _ = folder
    hostile.docx_zip_bomb(data / "bom.docx")
    outcome = read(data, state, "bom.docx")
    assert outcome.status == "failed"
    assert "its part 'word/document.xml' expands" in outcome.error and "(MAX_COMPRESSION_RATIO)" in outcome.error


def test_billion_laughs_docx_is_refused(folder):
    data, state, _ = folder
    hostile.docx_billion_laughs(data / "cuoi.docx")
    outcome = read(data, state, "cuoi.docx")
    assert outcome.status == "failed"
    assert "its part 'word/document.xml' declares XML entities" in outcome.error


def test_external_entity_xlsx_is_refused_and_its_target_never_read(folder):
    data, state, outside = folder
    hostile.xlsx_external_entity(data / "xxe.xlsx", outside / "bi-mat.txt")
    outcome = read(data, state, "xxe.xlsx")
    assert outcome.status == "failed"
    assert "declares an external XML entity, a reference to a file or URL" in outcome.error
    for path in state.rglob("*"):
        if path.is_file():
            assert b"outside-marker" not in path.read_bytes(), path


def test_ten_thousand_page_pdf_is_refused(folder):
    data, state, _ = folder
    hostile.pdf_pages(data / "dai.pdf", 10_000)
    outcome = read(data, state, "dai.pdf")
    assert outcome.status == "failed"
    assert "it has 10,000 pages, over the 2,000-page limit (MAX_PDF_PAGES)" in outcome.error
    hostile.pdf_pages(data / "ngan.pdf", 3)
    assert "MAX_PDF_PAGES" not in (read(data, state, "ngan.pdf").error or "")  # a small PDF goes to the readers


def test_benign_docx_goes_to_whatever_reader_the_dispatcher_has(folder):
    data, state, _ = folder
    hostile.docx(data / "tot.docx")
    outcome = read(data, state, "tot.docx")
    assert outcome.status == "ok" or "unsupported file type" in outcome.error, outcome


def test_a_reader_that_keeps_running_is_stopped_and_the_next_file_reads(folder):
    data, state, _ = folder
    hostile.csv_that_keeps_the_reader_busy(data / "ban.csv")
    assert read(data, state, "luat.txt").status == "ok"
    stopped = worker.shared_worker()._proc.pid  # the child that is about to be stopped while reading
    started = time.monotonic()
    outcome = read(data, state, "ban.csv", read_timeout_seconds=2)
    took = time.monotonic() - started
    assert outcome.status == "failed"
    assert outcome.error == "reading it took longer than the 2-second limit (READ_TIMEOUT_SECONDS), so its reader was stopped"
    assert took < 12, took  # the busy CSV alone keeps a reader 13.6 s on an idle machine
    assert not list(state.rglob(".raw.jsonl.*.tmp"))  # the killed reader's half-written file is gone
    leftovers = Path(tempfile.gettempdir()).glob(f"{worker.LINK_FOLDER_PREFIX}*")
    assert not [f for f in leftovers if worker._link_folder_pid(f) == stopped]  # nor the folder of its link to the file
    (data / "luat2.txt").write_text(LAW, encoding="utf-8")
    assert read(data, state, "luat2.txt").status == "ok"  # a new reader process serves the next file


def test_a_child_started_early_reads_the_files_and_one_with_other_limits_replaces_it(folder):
    """`legal-rag ingest` starts the child reader before it imports Dagster (ReadWorker.start): the
    file is then read by that child, a second start keeps it, and a start under another memory limit
    replaces it."""
    data, state, _ = folder
    shared = worker.shared_worker()
    shared.stop()
    shared.start(Limits())
    early = shared._proc.pid
    shared.start(Limits())
    assert shared._proc.pid == early  # already running under these limits: kept
    assert read(data, state, "luat.txt").status == "ok"
    assert shared._proc.pid == early and shared._proc.poll() is None  # the early child read the file
    shared.start(Limits(max_reader_memory_bytes=Limits().max_reader_memory_bytes // 2))
    assert shared._proc.pid != early
    assert read(data, state, "luat.txt", max_reader_memory_bytes=Limits().max_reader_memory_bytes // 2).status in {"ok", "unchanged"}
    shared.stop()


def test_the_link_folders_of_stopped_readers_are_removed(tmp_path):
    """A reader killed while it reads leaves its link folder (named after its process, or in an earlier
    version holding one link to /proc/<pid>/fd/<n>); the next stop removes those of processes that are
    gone and nothing else."""
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()
    prefix = worker.LINK_FOLDER_PREFIX
    folders = {
        "dead, named": (tmp_path / f"{prefix}{gone.pid}-ab12_x", f"/proc/{gone.pid}/fd/3"),
        "dead, earlier name": (tmp_path / f"{prefix}ab12_x9", f"/proc/{gone.pid}/fd/3"),
        "dead, named, empty": (tmp_path / f"{prefix}{gone.pid}-zz", None),
        "alive, named": (tmp_path / f"{prefix}{os.getpid()}-ab12_x", f"/proc/{os.getpid()}/fd/0"),
        "alive, earlier name": (tmp_path / f"{prefix}cd34_y5", f"/proc/{os.getpid()}/fd/0"),
        "earlier name, empty": (tmp_path / f"{prefix}ef56_z7", None),
        "earlier name, a file": (tmp_path / f"{prefix}gh78_w1", "not a link"),
    }
    for folder, link in folders.values():
        folder.mkdir()
        if link == "not a link":
            (folder / "document.csv").write_text("x", encoding="utf-8")
        elif link:
            os.symlink(link, folder / "document.csv")
    (tmp_path / f"{prefix}{gone.pid}-file").write_text("x", encoding="utf-8")  # not a folder
    assert worker.remove_leftover_links(tmp_path) == 3
    left = {name for name, (folder, _) in folders.items() if folder.exists()}
    assert left == {"alive, named", "alive, earlier name", "earlier name, empty", "earlier name, a file"}
    assert (tmp_path / f"{prefix}{gone.pid}-file").exists()


def test_files_queued_behind_a_stopped_reader_are_read_by_the_next_one(folder):
    """read_stages keeps two files with the child: the one sent after a file whose reader is stopped
    (timeout) or killed (memory) goes to the next child, and every other file reads."""
    data, state, _ = folder
    hostile.csv_that_keeps_the_reader_busy(data / "b-ban.csv")
    (data / "d-lon.json").write_text("[" + ",".join(['{"page_content": "x"}'] * 1_000_000) + "]", encoding="utf-8")
    for name in ("a.txt", "c.txt", "e.txt", "f.txt"):
        (data / name).write_text(LAW.replace("thử", name), encoding="utf-8")
    keys = ["a.txt", "b-ban.csv", "c.txt", "d-lon.json", "e.txt", "f.txt", "a.txt"]
    limits = Limits(read_timeout_seconds=2, max_reader_memory_bytes=256 * 1024 * 1024)
    outcomes = list(ingest.read_stages(data, keys, state, "run-1", limits))
    assert [o.source for o in outcomes] == keys
    assert [o.status for o in outcomes] == ["ok", "failed", "ok", "failed", "ok", "ok", "unchanged"]
    assert "2-second limit (READ_TIMEOUT_SECONDS)" in outcomes[1].error
    assert "256 MB memory limit (READ_MEMORY_BYTES)" in outcomes[3].error
    for name in ("a.txt", "c.txt", "e.txt", "f.txt"):
        assert name in next(FileArtifacts(state, name).read_raw())["text"]
    assert not list(state.rglob(".raw.jsonl.*.tmp"))


def test_rows_cells_text_and_size_limits(folder):
    data, state, _ = folder
    hostile.qa_workbook(data / "qa.xlsx", rows=30)
    (data / "qa.csv").write_text("Câu hỏi,Đáp án\n" + "Hỏi?,Đáp.\n" * 30, encoding="utf-8")
    (data / "dai.txt").write_text(LAW * 200, encoding="utf-8")
    fresh = iter(state / str(i) for i in range(100))  # a new state folder each time: no "unchanged"
    assert read(data, next(fresh), "qa.xlsx").status == "ok"
    error = read(data, next(fresh), "qa.xlsx", max_sheet_rows=10).error
    assert error == "sheet 'QA' has more than 10 rows, the limit (MAX_SHEET_ROWS)"
    error = read(data, next(fresh), "qa.csv", max_sheet_cells=40).error
    assert "the CSV file has more than 40 cells (rows x columns), the limit (MAX_SHEET_CELLS)" in error
    error = read(data, next(fresh), "dai.txt", max_text_chars=1000).error
    assert error == "it holds over 1,000 characters of text, the limit for one file (MAX_TEXT_CHARS)"
    assert "characters of text" in read(data, next(fresh), "qa.csv", max_text_chars=50).error
    error = read(data, next(fresh), "dai.txt", max_file_bytes=1000).error
    assert error.endswith("KB, over the 1,000 bytes limit for one file (MAX_FILE_BYTES)"), error


def test_a_reader_that_needs_too_much_memory_fails_alone(folder):
    data, state, _ = folder
    (data / "lon.json").write_text("[" + ",".join(['{"page_content": "x"}'] * 1_000_000) + "]", encoding="utf-8")
    outcome = read(data, state, "lon.json", max_reader_memory_bytes=256 * 1024 * 1024)
    assert outcome.status == "failed"
    assert outcome.error == "reading it needed more than the 256 MB memory limit (READ_MEMORY_BYTES)"
    assert read(data, state, "luat.txt", max_reader_memory_bytes=256 * 1024 * 1024).status == "ok"
    assert read(data, state / "2", "lon.json").status == "ok"  # the default limit (4 GiB) lets it through


def test_limits_come_from_the_environment(monkeypatch):
    from legal_rag_pipeline.errors import ConfigurationError
    from legal_rag_pipeline.settings import load_limits

    monkeypatch.setenv("MAX_PDF_PAGES", "50")
    monkeypatch.setenv("READ_TIMEOUT_SECONDS", "7.5")
    limits = load_limits()
    assert limits.max_pdf_pages == 50 and limits.read_timeout_seconds == 7.5
    assert limits.max_file_bytes == Limits().max_file_bytes
    monkeypatch.setenv("MAX_SHEET_ROWS", "lots")
    with pytest.raises(ConfigurationError, match="MAX_SHEET_ROWS"):
        load_limits()


def test_the_reader_process_has_no_secrets_in_its_environment(folder, monkeypatch):
    data, state, _ = folder
    monkeypatch.setenv("HF_TOKEN", "hf_planted-marker-in-env")
    monkeypatch.setenv("LEGAL_RAG_PLANTED", "planted-marker-in-env")
    worker._worker.stop()  # the next read starts a child with today's environment
    assert read(data, state, "luat.txt").status == "ok"
    child = worker._worker._proc
    assert child is not None and child.poll() is None
    environ = Path(f"/proc/{child.pid}/environ").read_bytes()
    assert b"planted-marker-in-env" not in environ
    assert b"HF_TOKEN" not in environ and b"DAGSTER_HOME" not in environ


def test_a_run_s_read_stage_stops_its_reader_once_every_file_is_read(folder):
    """The read stage of a run leaves no idle reader child holding its memory for the rest of the run;
    the next read starts another, and each file's outcome is as before."""
    data, state, _ = folder
    (data / "nghi-dinh.txt").write_text("Điều 1. Phạm vi điều chỉnh\nNghị định này quy định chi tiết.\n", encoding="utf-8")
    outcomes = list(ingest.read_stages(data, ["luat.txt", "nghi-dinh.txt"], state, "run-1", Limits(), stop_reader=True))
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert worker._worker._proc is None
    (data / "thong-tu.txt").write_text("Điều 1. Đối tượng áp dụng\nThông tư này áp dụng với cơ quan.\n", encoding="utf-8")
    assert read(data, state, "thong-tu.txt").status == "ok"  # a new child reads it
    child = worker._worker._proc
    assert child is not None and child.poll() is None
    # without stop_reader (one file at a time, as read_stage), the child stays for the next file
    assert [o.status for o in ingest.read_stages(data, ["luat.txt"], state, "run-2", Limits())] == ["unchanged"]
    assert worker._worker._proc is child and child.poll() is None
