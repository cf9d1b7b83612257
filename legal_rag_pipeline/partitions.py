"""One dynamic partition per source file, keyed by its path relative to the data folder."""

import dagster as dg

source_files = dg.DynamicPartitionsDefinition(name="source_files")
