"""The mass-deletion guard counts files (deletion.py): a person deleting one file, however large, removes
it; a folder half gone, emptied or replaced by an empty mount point is refused with the files named.

Real `legal-rag ingest` runs (bm25 only) over a temporary data folder, the embedded Qdrant, the state folder."""

from __future__ import annotations

import shutil

import pytest

from legal_rag_pipeline import cli, rebuild
from legal_rag_pipeline.definitions import build_embedder, build_store
from legal_rag_pipeline.deletion import Deletion, DeletionLimits, check_deletion
from legal_rag_pipeline.errors import MassDeletionRefused
from legal_rag_pipeline.settings import load_settings
from legal_rag_pipeline_tests.pipeline_env import make_env


def law(title: str, articles: int) -> str:
    body = "\n".join(
        f"Điều {i}. Quy định số {i} về {title.lower()}\n"
        f"Cơ quan, tổ chức và cá nhân thực hiện quy định số {i} của luật {title.lower()} theo trình tự mẫu."
        for i in range(1, articles + 1)
    )
    return f"QUỐC HỘI\nLUẬT\n{title.upper()}\nChương I\nQUY ĐỊNH CHUNG\n{body}\n"


SMALL = ["an-ninh", "bao-chi", "cong-doan", "dan-quan", "giao-duc", "hai-quan"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)  # bm25 only: no token, no endpoint
    for name in SMALL:
        (env.data / f"luat-{name}.txt").write_text(law(f"Luật {name.replace('-', ' ')}", 2), encoding="utf-8")
    return env


def by_source(env) -> dict[str, int]:
    counts: dict[str, int] = {}
    for payload in env.points().values():
        counts[payload["source"]] = counts.get(payload["source"], 0) + 1
    return counts


def test_one_large_file_deleted_among_small_ones_is_removed(env):
    """The Civil Code case: 98 % of the points in one file a person deleted on purpose."""
    (env.data / "bo-luat-dan-su.txt").write_text(law("Bộ luật dân sự", 120), encoding="utf-8")
    assert env.ingest()[0] == 0
    before = by_source(env)
    assert before["bo-luat-dan-su.txt"] == 121 and sum(before.values()) == 139  # each law: its articles + its header

    (env.data / "bo-luat-dan-su.txt").unlink()
    code, out = env.ingest()
    assert code == 0, out
    assert "Refusing" not in out and "bo-luat-dan-su.txt (121 points)" in out
    assert set(by_source(env)) == {f"luat-{n}.txt" for n in SMALL}


def test_one_of_two_files_deleted_is_removed(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    (env.data / "a.txt").write_text(law("Luật a", 3), encoding="utf-8")
    (env.data / "b.txt").write_text(law("Luật b", 30), encoding="utf-8")
    assert env.ingest()[0] == 0
    (env.data / "b.txt").unlink()
    code, out = env.ingest()
    assert code == 0, out
    assert set(by_source(env)) == {"a.txt"}


def test_half_the_folder_gone_at_once_is_refused_with_the_files_named(env):
    assert env.ingest()[0] == 0
    points = env.points()
    for name in SMALL[:3]:
        (env.data / f"luat-{name}.txt").unlink()
    code, out = env.ingest()
    assert code == 1, out
    assert "Refusing to remove 3 of the 6 files of collection legal_rag at once (50%" in out, out
    assert "luat-an-ninh.txt, luat-bao-chi.txt, luat-cong-doan.txt" in out
    assert "MAX_DELETE_FRACTION" in out and "legal-rag ingest --confirm-delete" in out
    assert env.points() == points  # nothing deleted

    # two at once is still ordinary in this folder (2 of 6)
    (env.data / "luat-an-ninh.txt").write_text(law("Luật an ninh", 2), encoding="utf-8")
    code, out = env.ingest()
    assert code == 0, out
    assert set(by_source(env)) == {f"luat-{n}.txt" for n in SMALL if n not in {"bao-chi", "cong-doan"}}

    # confirmed: removed
    for name in ("an-ninh", "dan-quan"):
        (env.data / f"luat-{name}.txt").unlink()
    assert env.ingest()[0] == 1
    code, out = env.ingest("--confirm-delete")
    assert code == 0, out
    assert set(by_source(env)) == {"luat-giao-duc.txt", "luat-hai-quan.txt"}


def test_the_folder_emptied_is_refused(env):
    assert env.ingest()[0] == 0
    points = env.points()
    for path in env.data.iterdir():
        path.unlink()
    code, out = env.ingest()
    assert code == 1, out
    assert "Refusing to empty collection legal_rag" in out and "missing or has no files" in out
    assert "all 6 files (luat-an-ninh.txt" in out and "and 1 more" in out and "--confirm-delete" in out
    assert env.points() == points
    code, out = env.ingest("--confirm-delete")
    assert code == 0, out
    assert env.points() == {}


def test_the_folder_replaced_by_an_empty_mount_point_is_refused(env):
    assert env.ingest()[0] == 0
    points = env.points()
    env.data.rename(env.root / "data-before-unmount")
    env.data.mkdir()
    (env.data / "lost+found").mkdir()  # what an empty ext4 file system shows
    code, out = env.ingest()
    assert code == 1, out
    assert "Refusing to empty collection legal_rag" in out and "unmounted or replaced" in out
    assert env.points() == points

    shutil.rmtree(env.data)  # the mount point itself gone: the same refusal
    code, out = env.ingest()
    assert code == 1 and "does not exist" in out and "Refusing to empty" in out, out
    assert env.points() == points


def test_many_files_shrinking_at_once_is_refused_by_the_points_and_files_rule(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    for name in ("a", "b", "c"):
        (env.data / f"{name}.txt").write_text(law(f"Luật {name}", 10), encoding="utf-8")
    assert env.ingest()[0] == 0
    for name in ("a", "b"):  # a reader that suddenly yields one article out of ten
        (env.data / f"{name}.txt").write_text(law(f"Luật {name}", 1), encoding="utf-8")
    code, out = env.ingest()
    assert code == 1, out
    assert "Refusing to delete 18 of the 33 points" in out and "MAX_DELETE_POINTS_FRACTION" in out, out
    assert "2 shrunk (a.txt, b.txt)" in out
    assert sum(by_source(env).values()) == 33
    # one file shrinking is ordinary, whatever its share of the points
    (env.data / "b.txt").write_text(law("Luật b", 10), encoding="utf-8")
    code, out = env.ingest()
    assert code == 0, out
    assert by_source(env) == {"a.txt": 2, "b.txt": 11, "c.txt": 11}


def test_the_limits_come_from_the_environment(env, monkeypatch):
    assert env.ingest()[0] == 0
    monkeypatch.setenv("MAX_DELETE_FRACTION", "0.3")
    for name in SMALL[:2]:
        (env.data / f"luat-{name}.txt").unlink()
    code, out = env.ingest()
    assert code == 1 and "Refusing to remove 2 of the 6 files" in out and "30% limit" in out, out
    monkeypatch.setenv("MAX_DELETE_FRACTION", "0.5")
    assert env.ingest()[0] == 0


def test_confirm_delete_from_the_environment_lifts_the_guard(env, monkeypatch):
    """LEGAL_RAG_CONFIRM_DELETE reaches the writer through Settings and the data folder resource."""
    assert env.ingest()[0] == 0
    for name in SMALL[:3]:
        (env.data / f"luat-{name}.txt").unlink()
    assert env.ingest()[0] == 1
    monkeypatch.setenv("LEGAL_RAG_CONFIRM_DELETE", "1")
    code, out = env.ingest()
    assert code == 0, out
    assert set(by_source(env)) == {f"luat-{n}.txt" for n in SMALL[3:]}


def test_the_prune_only_path_and_the_rebuild_use_the_same_guard(env):
    assert env.ingest()[0] == 0
    for name in SMALL[:4]:
        (env.data / f"luat-{name}.txt").unlink()
    settings = load_settings()
    with pytest.raises(MassDeletionRefused, match=r"Refusing to remove 4 of the 6 files"):
        rebuild.rebuild(
            build_store(settings, resolve=True), build_embedder(settings, resolve=True), env.state, env.data
        )
    assert cli.main(["rebuild"]) == 1
    report = rebuild.rebuild(
        build_store(settings, resolve=True), build_embedder(settings, resolve=True), env.state, env.data,
        confirm_delete=True,
    )
    assert report is not None and report.files == 2
    assert set(by_source(env)) == {"luat-giao-duc.txt", "luat-hai-quan.txt"}


def test_rules_as_plain_functions():
    limits = DeletionLimits(0.5, 0.5)

    def refused(**kw) -> bool:
        try:
            check_deletion(Deletion(**kw), limits, collection="c", data_dir="d")
        except MassDeletionRefused:
            return True
        return False

    assert not refused(files_held=25, points_held=1369, vanished=["bo-luat-dan-su.txt"], points_removed=1344)
    assert not refused(files_held=2, points_held=10, vanished=["a"], points_removed=9)
    assert refused(files_held=3, points_held=10, vanished=["a", "b"], points_removed=2)
    assert not refused(files_held=10, points_held=100, vanished=["a", "b", "c", "d"], points_removed=40)
    assert refused(files_held=10, points_held=100, vanished=list("abcde"), points_removed=10)
    assert refused(files_held=1, points_held=5, vanished=["a"], points_removed=5, folder_empty=True)
    assert not refused(files_held=0, points_held=0, folder_empty=True)
    # points and files: many files losing most points
    assert refused(files_held=4, points_held=100, shrunk=["a", "b"], points_removed=60)
    assert not refused(files_held=4, points_held=100, shrunk=["a", "b"], points_removed=40)
    assert not refused(files_held=4, points_held=100, shrunk=["a"], points_removed=90)


def test_the_prune_job_the_sensor_starts_removes_one_large_file_and_refuses_half_the_folder(env):
    """The sensor starts `prune_vanished_job` when files were only deleted: a real Dagster run of it."""
    from legal_rag_pipeline.definitions import build_definitions
    from legal_rag_pipeline.instance import get_instance

    (env.data / "bo-luat-dan-su.txt").write_text(law("Bộ luật dân sự", 120), encoding="utf-8")
    assert env.ingest()[0] == 0
    job = build_definitions(load_settings()).resolve_job_def("prune_vanished_job")

    (env.data / "bo-luat-dan-su.txt").unlink()
    result = job.execute_in_process(instance=get_instance(), raise_on_error=False)
    assert result.success
    assert "bo-luat-dan-su.txt" not in by_source(env)

    for name in SMALL[:3]:
        (env.data / f"luat-{name}.txt").unlink()
    result = job.execute_in_process(instance=get_instance(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "Refusing to remove 3 of the 6 files" in failure.event_specific_data.user_failure_data.description
    assert len(by_source(env)) == 6
