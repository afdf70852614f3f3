"""`python -m publisher_v2` runs the same CLI as the `publisher` console script."""

from publisher_v2.cli.console import main

if __name__ == "__main__":
    raise SystemExit(main())
