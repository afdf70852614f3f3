"""Small shared utilities: logging, captions and sidecars, the dedup ledger, image helpers."""
