"""The cohort manifest: one row per CT series (schema, loading, validation, summary)."""
