"""The command line: `publisher` (console.py, then app.py), its `ledger` and `migrate-to-postgres` commands,
`publisher-sample`. Kept free of imports so the console script starts at once (see console.py)."""
