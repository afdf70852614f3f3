"""Publishers: the base class, the local outbox (embedded default) and the live platforms (optional extras)."""
