"""Per-domain knowledge: documents in SQL, ingestion jobs, index publishing, retrieval."""
