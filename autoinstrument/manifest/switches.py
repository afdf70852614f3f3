"""The start-up switches: is telemetry on (`AUTOINSTRUMENT=1`, or an app's own variable), and which manifest.

The one place these are decided: the start-up trigger (`_bootstrap.py`), `install()` and `check` all ask here.
Imports only `os` and `sys`: it runs in every interpreter started with a switch on.
"""

import os
import sys

ENV_ENABLE = "AUTOINSTRUMENT"
ENV_MANIFEST = "AUTOINSTRUMENT_MANIFEST"
DEFAULT_MANIFEST = "telemetry.yaml"
_ON = ("1", "true", "yes", "on")



def enabled(var=ENV_ENABLE, environ=os.environ):
    """Is the switch `var` on?"""
    return environ.get(var, "").strip().lower() in _ON


def manifest_path(manifest_var=ENV_MANIFEST, default=None, environ=os.environ):
    """The manifest to use: `$manifest_var`, else `$AUTOINSTRUMENT_MANIFEST`, else `default`, else
    ./telemetry.yaml. `default` may be `package:file`: the file in the (regular) package's directory, or beside
    the package (a source checkout), found on sys.path without importing the package."""
    for var in (manifest_var, ENV_MANIFEST):
        value = environ.get(var, "").strip() if var else ""
        if value:
            return value
    if default and ":" in default and not os.path.isabs(default):
        package, _, name = default.partition(":")
        found = _beside_package(package, name)
        if found:
            return found
    elif default:
        return default
    return DEFAULT_MANIFEST


def _beside_package(package, name):
    top = package.split(".")
    for entry in sys.path:
        base = os.path.join(entry or os.curdir, *top)
        if os.path.isfile(os.path.join(base, "__init__.py")):  # the package itself, not a data-only folder
            for candidate in (os.path.join(base, name), os.path.join(os.path.dirname(base), name)):
                if os.path.isfile(candidate):
                    return os.path.abspath(candidate)
    return None
