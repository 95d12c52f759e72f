"""Pure functions on DataFrames and records: no I/O, no Prefect, the clock a parameter."""
