"""The law in force: validity read from the texts (extract), resolved across the folder (resolve),
written to the points as payload updates (sync)."""
