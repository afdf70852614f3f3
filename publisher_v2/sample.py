"""`publisher_v2.sample:main`, the path earlier versions documented: it now lives in `publisher_v2.cli.sample`."""

from publisher_v2.cli.sample import main

__all__ = ["main"]
