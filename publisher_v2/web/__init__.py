"""The web app: FastAPI routes over the same services the CLI uses."""
