"""`publisher_v2.app:main`, the path earlier versions documented: the CLI now lives in `publisher_v2.cli.app`."""

from publisher_v2.cli.app import main

__all__ = ["main"]
