"""legal_rag_pipeline: Vietnamese laws and Q&A sheets into a Qdrant collection, orchestrated by Dagster."""
