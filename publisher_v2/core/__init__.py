"""Domain models, exceptions and the workflow orchestrator (no SDK imports here)."""
