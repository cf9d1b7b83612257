"""The one Definitions object: assets, checks, jobs, automation and resources built from settings."""

from __future__ import annotations

import dagster as dg

from .assets.ingestion import ASSETS
from .assets.quality import QUALITY_CHECKS, QUALITY_JOBS
from .assets.validity import law_validity
from .automation import build_automation
from .dagster_steps import install as install_step_loop
from .instance import use_event_batches
from .partitions import source_files
from .resources.data_folder import DataFolder
from .resources.embeddings import Embedder
from .resources.qdrant import QdrantStore
from .services import (
    ENDPOINT_KEY_VARS,
    QDRANT_KEY_VARS,
    TOKEN_VARS,
    dense_embedder,
    secret_name,
    secret_value,
    store_fields,
)
from .settings import Settings, load_env_file, load_settings

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(*ASSETS),
    partitions_def=source_files,
    executor_def=dg.in_process_executor,
    description="Read, chunk, embed and sync the selected files (one run for many files); the writer step also "
    "keeps the law in force across the folder current (law_validity).",
)


def _secret(*names: str, resolve: bool = False) -> str | dg.EnvVar | None:
    """The first variable that is set: as an EnvVar (the UI shows its name, never its value) for
    Dagster runs, or its value (``resolve=True``) for resources used outside a run (CLI commands)."""
    name = secret_name(*names)
    if name is None:
        return None
    return secret_value(name) if resolve else dg.EnvVar(name)


def build_embedder(settings: Settings, *, resolve: bool = False) -> Embedder:
    """The embedder resource (``services.dense_embedder``; ``Embedder`` when BM25-only)."""
    embedder = dense_embedder(
        settings,
        token=_secret(*TOKEN_VARS, resolve=resolve),
        endpoint_api_key=_secret(*ENDPOINT_KEY_VARS, resolve=resolve),
    )
    return Embedder() if embedder is None else embedder


def build_store(settings: Settings, *, resolve: bool = False, lock_wait_seconds: float | None = None) -> QdrantStore:
    """The store resource (``services.store_fields``); `legal-rag search` opens ``services.open_store``."""
    extra = {} if lock_wait_seconds is None else {"lock_wait_seconds": lock_wait_seconds}
    return QdrantStore(**extra, **store_fields(settings), api_key=_secret(*QDRANT_KEY_VARS, resolve=resolve))


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "data_folder": DataFolder(
            data_dir=settings.data_dir,
            state_dir=settings.state_dir,
            token_budget=settings.token_budget,
            max_delete_fraction=settings.max_delete_fraction,
            max_delete_points_fraction=settings.max_delete_points_fraction,
            verify_sync=settings.verify_sync,
            confirm_delete=settings.confirm_delete,
        ),
        # a run waits for an embedded folder a search holds for a moment (QDRANT_LOCK_WAIT_SECONDS);
        # a CLI command waits QdrantStore's default (5 s)
        "qdrant": build_store(settings, lock_wait_seconds=settings.qdrant_lock_wait_seconds),
        "embedder": build_embedder(settings),
    }


def configured(resource: dg.ConfigurableResource, instance: dg.DagsterInstance | None = None):
    """``resource`` with its EnvVar fields resolved (the value a run's steps get).

    Dagster's ``process_config_and_initialize()`` builds its init context without an instance, so
    Dagster makes a throw-away in-memory one (its SQLite schema and migrations: about 0.1 s each, 1 s
    the first in a process) and leaves it entered until the garbage collector gets to it; when several
    are collected out of order, the process is left pointing at a dead instance's state storage ("Attempted
    to resolve undefined DagsterInstance weakref"). Here the context is entered and left in order, with
    ``instance`` (a run's own) when there is one: a run starts without making three throw-away
    instances. None of our resources has a teardown, so the value outlives the context."""
    from dagster._config.post_process import post_process_config  # what process_config_and_initialize_cm does

    processed = post_process_config(resource._config_schema.config_type, resource._convert_to_config_dictionary())
    if not processed.success:
        raise dg.DagsterInvalidConfigError("Errors while initializing resource", processed.errors, processed)
    with (
        dg.build_init_resource_context(config=processed.value, instance=instance) as context,
        resource.from_resource_context_cm(context, nested_resources=resource.nested_resources) as value,
    ):
        return value


def _locked(resource: dg.ConfigurableResource) -> dg.ResourceDefinition:
    """``resource`` exactly as the code location's environment configured it, with an empty config
    schema: a launchpad run config that sets ``resources:`` (another DATA_DIR, another Qdrant URL or
    embedding endpoint that would receive the keys) is refused. Dagster OSS has no login, so anyone
    who reaches the UI can launch runs; they must not choose where a run reads, writes or sends
    secrets. EnvVar fields are still resolved when a run starts."""
    return dg.ResourceDefinition(
        resource_fn=lambda context: configured(resource, context.instance),
        config_schema={},
        description=f"{(type(resource).__doc__ or type(resource).__name__).strip().splitlines()[0]} "
        "Set from the code location's environment; not changeable from the launchpad.",
    )


def build_definitions(settings: Settings) -> dg.Definitions:
    automation = build_automation(ingest_job)
    return dg.Definitions(
        assets=[*ASSETS, law_validity],
        asset_checks=QUALITY_CHECKS,
        jobs=[ingest_job, *QUALITY_JOBS, *automation.jobs],
        sensors=automation.sensors,
        schedules=automation.schedules,
        resources={key: _locked(resource) for key, resource in build_resources(settings).items()},
        # "Materialize" in the UI runs an implicit asset job: in process too (its steps are I/O
        # bound and sequential; a process per step costs 2-10 s each on two cores)
        executor=dg.in_process_executor,
    )


load_env_file()
use_event_batches()  # the code location executes the runs (and, in a deployment, the daemon creates them)
install_step_loop()  # a step's events not held to its end (dagster_steps.py)
defs = build_definitions(load_settings())
