"""The library's own version: read by its distribution's build (packaging/autoinstrument/pyproject.toml) and by
`autoinstrument.__version__` when the package runs bundled in another distribution (an app's wheel that ships it)."""

__version__ = "1.0.0"
