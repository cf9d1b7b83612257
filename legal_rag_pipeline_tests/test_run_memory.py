"""What a run leaves in the process's memory: only its failures (instance.execute_keeping_failures),
freed heap given back to the system (memory.give_back), and the store's mapped pages taken out of the
resident set (memory.page_out)."""

import gc
import mmap
import sys

import dagster as dg
import pytest

from legal_rag_pipeline.instance import execute_keeping_failures
from legal_rag_pipeline.memory import (
    COLLECT_AFTER_FILES, LOADING_GC_THRESHOLD, collect_and_give_back, give_back, loading_modules, mapped_files, mapped_kb, one_heap,
    page_out,
)


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@dg.asset(partitions_def=dg.StaticPartitionsDefinition([f"f{i}" for i in range(50)]),
          backfill_policy=dg.BackfillPolicy.single_run())
def pieces(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    if "f13" in context.partition_keys and context.run.tags.get("fail") == "yes":
        raise dg.Failure(description="f13: the text cannot be read: save it as UTF-8")
    return dg.MaterializeResult()


JOB = dg.Definitions(assets=[pieces]).resolve_implicit_global_asset_job_def()


def _run(instance, fail: str):
    return execute_keeping_failures(
        JOB, instance,
        tags={"dagster/asset_partition_range_start": "f0", "dagster/asset_partition_range_end": "f49", "fail": fail},
        run_config={},
    )


def test_a_run_keeps_only_its_failures_in_memory_and_every_event_in_the_instance():
    with dg.instance_for_test() as instance:
        ok = _run(instance, "no")
        assert ok.success and ok.all_events == []
        # the instance has every file's materialisation, the run's tags and its status
        stored = instance.get_records_for_run(ok.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1000)
        assert len(stored.records) == 50
        assert instance.get_run_by_id(ok.run_id).tags["dagster/asset_partition_range_end"] == "f49"

        failed = _run(instance, "yes")
        assert not failed.success
        kinds = {e.event_type_value for e in failed.all_events}
        assert "STEP_FAILURE" in kinds and kinds <= {"STEP_FAILURE", "RUN_FAILURE", "PIPELINE_FAILURE"}
        step = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
        assert step.event_specific_data.user_failure_data.description.startswith("f13: the text cannot be read")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_freed_heap_goes_back_to_the_system():
    # 1 kB blocks come from glibc's heap (Python's own allocator takes only small ones); the last one
    # pins the top of the heap, so glibc keeps the freed pages below it until trimmed
    blocks = [bytes(1024) + i.to_bytes(4, "little") for i in range(200_000)]
    held = _rss_mb()
    last = blocks[-1]
    del blocks
    assert give_back() is True
    assert _rss_mb() < held - 100, "the freed 200 MB stayed in the process"
    assert last


def test_garbage_in_cycles_goes_back_too():
    # records that refer to each other (as resolved views and decoded records can) are freed only by a
    # collection of their generation; the 1 kB blocks they hold stay in the process until then
    gc.collect()
    gc.freeze()  # the test run's own objects: a full collection then looks only at these records
    try:
        records = [{"text": bytes(1024) + i.to_bytes(4, "little")} for i in range(200_000)]
        for a, b in zip(records, records[1:] + records[:1]):
            a["next"], b["previous"] = b, a
        gc.collect()  # they are in the oldest generation, as a stage's records are by its end
        held = _rss_mb()
        last = bytes(4096)  # allocated after them: pins the top of the heap
        del records, a, b
        give_back()
        assert _rss_mb() > held - 50, "the records were freed without a collection: nothing to test"
        collect_and_give_back(files=COLLECT_AFTER_FILES - 1)
        assert _rss_mb() > held - 50, "collected after a step of few files"
        assert collect_and_give_back(files=COLLECT_AFTER_FILES) is True
        assert _rss_mb() < held - 100, "the 200 MB in cycles stayed in the process"
        assert last
    finally:
        gc.unfreeze()


def resident_kb_under(folder) -> int:
    """The resident pages of this process's mappings of files under ``folder`` (/proc/self/smaps)."""
    prefix, total, inside = str(folder.resolve()) + "/", 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if ":" not in fields[0] and "-" in fields[0]:
                inside = len(fields) >= 6 and fields[5].startswith(prefix)
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise: Linux only")
def test_the_pages_a_store_maps_leave_the_resident_set_and_read_back_the_same(tmp_path):
    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    store.mkdir()
    elsewhere.mkdir()
    segment, other = store / "page_0.dat", elsewhere / "page_0.dat"
    for path in (segment, other):
        path.write_bytes(bytes(range(256)) * (64 * 4096))  # 64 MB
    with segment.open("r+b") as f, other.open("r+b") as g:
        mapped, kept = mmap.mmap(f.fileno(), 0), mmap.mmap(g.fileno(), 0)
        mapped[5] = 7  # a dirty page: written back, never lost
        assert sum(mapped[i + 1] for i in range(0, len(mapped), 4096)) == 64 * 256 and kept[1::4096]  # every page read
        assert resident_kb_under(store) > 60 * 1024 and resident_kb_under(elsewhere) > 60 * 1024
        assert [(end - start, shared) for start, end, shared in mapped_files(store)] == [(64 * 2**20, True)]

        before = mapped_kb()  # the process's mapped pages, what the search probe watches (assets/checks.py)
        assert before > 120 * 1024
        assert page_out(store) == 1
        assert resident_kb_under(store) < 8 * 1024, "the store's pages stayed resident"
        assert before - mapped_kb() > 56 * 1024, "page_out gave back less than the store's pages"
        assert resident_kb_under(elsewhere) > 60 * 1024, "a mapping outside the folder was touched"
        assert mapped[5] == 7 and mapped[4096 * 1000 + 3] == 3  # read back as they were
        mapped.close()
        kept.close()
    assert segment.read_bytes()[5] == 7
    assert page_out(tmp_path / "nothing-mapped") == 0

    # a private mapping's changed pages are the process's own: given back, never dropped
    with segment.open("rb") as f:
        private = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        private[9] = 42
        assert [shared for _, _, shared in mapped_files(store)] == [False]
        page_out(store)
        assert private[9] == 42 and segment.read_bytes()[9] == 9
        private.close()


def test_threads_can_share_the_main_heap():
    assert one_heap() is True  # glibc took M_ARENA_MAX (the CI and this machine run glibc)


_LARGE_BLOCKS = """
import sys
from legal_rag_pipeline.memory import one_heap

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS:"))

big = bytearray(8 << 20)
del big  # a large mapped block freed: glibc raises its threshold to 8 MB unless it was set
if sys.argv[1] == "one_heap":
    assert one_heap()
blocks, kept = [], []
for _ in range(20):  # 40 MB of 2 MB blocks, each followed by a small block that stays
    blocks.append(bytearray(2 << 20))
    blocks[-1][::4096] = b"x" * 512  # a byte a page: resident
    kept.append(bytearray(1000))
before = rss_mb()
del blocks
print(before - rss_mb())
"""


def test_large_blocks_are_given_back_as_soon_as_they_are_freed():
    """After ``one_heap`` (the ingestion step), a freed block of 128 KB or more goes back to the system at
    once, also after a larger one was freed before (which otherwise moves such blocks into the heap,
    where the small blocks between them keep their pages)."""
    import subprocess
    import sys

    def freed(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _LARGE_BLOCKS, mode], capture_output=True, text=True, check=True)
        return int(out.stdout)

    assert freed("one_heap") >= 36  # of 40 MB
    assert freed("glibc") <= 4  # the same without it: kept in the heap


def test_the_collector_runs_less_often_while_modules_load_and_garbage_is_still_collected():
    """cli.py loads Dagster, the definitions and the instance under ``loading_modules``: the collector's
    thresholds raised meanwhile (fewer collections for the same objects), restored after, also when
    loading fails; garbage in cycles made meanwhile is collected as before, not kept."""
    import weakref

    class Node:
        pass

    collections = []

    def count(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    before = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(count)
    try:
        made = [[Node()] for _ in range(5000)]  # 10,000 new containers
        usual = len(collections)
        collections.clear()
        with loading_modules():
            assert gc.get_threshold() == LOADING_GC_THRESHOLD
            loaded = [[Node()] for _ in range(5000)]
            during = len(collections)
            a, b = Node(), Node()
            a.other, b.other = b, a
            gone = weakref.ref(a)
            del a, b
        assert usual >= 10 and during == 0  # at Python's thresholds a collection every 700 objects
        assert gc.get_threshold() == before
        gc.collect()
        assert gone() is None  # made while loading, collected as any garbage
        with pytest.raises(ImportError), loading_modules():
            import legal_rag_pipeline_no_such_module  # noqa: F401
        assert gc.get_threshold() == before
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*before)
    del made, loaded
