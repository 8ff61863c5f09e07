"""Stage 8, compliance: the compliance report (JSON, validated by its schema, and PDF)."""
