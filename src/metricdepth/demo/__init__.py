"""The web demo (``metricdepth demo``): a gradio page on the inference seam and the project's writers.

=========================  ===========================================================================
module                     what
=========================  ===========================================================================
``demo.session``           :class:`DepthDemo`: one photo → prediction, every output file, a GLB mesh,
                           the page's depth panel and focal text (no gradio: unit-testable)
``demo.depth_view``        the depth panel: colour map, colour bar in metres, hover readout (HTML, JS)
``demo.app``               :func:`build_demo` (``gr.Blocks``) and :func:`launch_demo` (serve it)
=========================  ===========================================================================

Exports are lazy: ``import metricdepth.demo`` loads neither gradio nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "DepthDemo": "metricdepth.demo.session",
    "DemoResult": "metricdepth.demo.session",
    "DemoInputError": "metricdepth.demo.session",
    "DEFAULT_MAX_PIXELS": "metricdepth.demo.session",
    "build_demo": "metricdepth.demo.app",
    "launch_demo": "metricdepth.demo.app",
    "DEFAULT_HOST": "metricdepth.demo.app",
    "DEFAULT_PORT": "metricdepth.demo.app",
    "DEFAULT_MAX_UPLOAD_MB": "metricdepth.demo.app",
}

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_UPLOAD_MB",
    "DEFAULT_PORT",
    "DemoInputError",
    "DemoResult",
    "DepthDemo",
    "build_demo",
    "launch_demo",
]

if TYPE_CHECKING:
    from .app import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT, build_demo, launch_demo
    from .session import DEFAULT_MAX_PIXELS, DemoInputError, DemoResult, DepthDemo

__getattr__, __dir__ = lazy_exports("metricdepth.demo", _EXPORTS, globals())
