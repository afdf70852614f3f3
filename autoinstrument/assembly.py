"""The one module that knows both floors: the runtime's install with the web part plugged in.

`autoinstrument.install()` and the start-up trigger (`_bootstrap.py`) install through here, so the runtime never
imports the web part (it sits above), and a process that never imports the web app never imports it at all.
"""

from __future__ import annotations

from typing import Any, Callable, Union

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from autoinstrument.manifest import Manifest


def _attach(state: Any) -> Any:
    from autoinstrument.web.attachment import attach

    return attach(state)


def _gate() -> Callable[[Any], Callable[..., Any]]:
    from autoinstrument.web.gate import gate

    return gate


def _exporters(manifest: Manifest, fault: Callable[..., None]) -> Any:
    """The exporters' hub, or None: with every exporter off, nothing of `autoinstrument.export` is imported."""
    if not manifest.exporters.enabled:
        return None
    from autoinstrument.export import build

    return build(manifest, fault)


def install(manifest: Union[None, str, Manifest] = None, *, defer_report: bool = False) -> bool:
    """`runtime.install.install` with the web part and the exporters."""
    from autoinstrument.runtime.install import WebPart
    from autoinstrument.runtime.install import install as _install

    return _install(manifest, defer_report=defer_report, web=WebPart(_attach, _gate), exporters=_exporters)
