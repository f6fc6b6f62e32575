"""The gradio web demo: upload a photo; see its metric depth, focal length and 3D view; download the outputs.

Thin by design: every request goes through :class:`~metricdepth.demo.session.DepthDemo` (the inference
seam and the project's writers); this module only lays out the page and turns problems into messages.

* :func:`build_demo` returns the ``gr.Blocks`` app for a depth source (Depth Pro or an RSA pipeline);
* :func:`launch_demo` serves it: localhost by default, a bounded upload size, a queue with a
  concurrency limit (requests wait instead of running the model side by side out of memory), no share
  link, no analytics, nothing fetched from the internet.

Disk: a request writes every output at the photo's full resolution, about 21 bytes per pixel (the PLY
point cloud 15, the npz ~3, the two PNGs ~3; compressed files vary with the scene) plus a GLB of at most
~4 MB (:data:`~metricdepth.io.mesh.DEFAULT_MAX_FACES`): about 0.5 GB for a 24 MP photo, 1 GB at the
50 MP pixel bound. It is on disk twice for a while: in the demo's request folder (only the last
``keep_runs`` requests are kept) and in gradio's cache (``GRADIO_TEMP_DIR``), whose copies of outputs and
uploads are deleted 30 to 40 minutes after they were made (``delete_cache=(600, 1800)``). So the disk used
is bounded by ``keep_runs`` plus the requests the queue can finish in 40 minutes, times the size of one.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..io.images import IMAGE_EXTENSIONS
from .depth_view import DEPTH_VIEW_CSS, HOVER_JS
from .session import DEFAULT_KEEP_RUNS, DEFAULT_MAX_PIXELS, DemoInputError, DepthDemo

if TYPE_CHECKING:
    import gradio as gr

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_HOST",
    "DEFAULT_MAX_UPLOAD_MB",
    "DEFAULT_PORT",
    "DEFAULT_QUEUE_SIZE",
    "build_demo",
    "launch_demo",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 20.0
"""Largest upload, MiB (2^20 bytes)."""
DEFAULT_CONCURRENCY = 1
"""Predictions running at once; the others wait in the queue."""
DEFAULT_QUEUE_SIZE = 16
"""Requests that may wait in the queue; beyond it users are told the demo is busy."""

log = logging.getLogger(__name__)

_PLACEHOLDER = (
    '<div class="md-depth-view md-empty"><div class="md-readout">'
    "Upload a photo: its depth map appears here.</div></div>"
)
_INTRO = (
    "Upload a photo to get its depth **in metres**. Hover over the depth map to read the depth under the "
    "cursor; the 3D view is a mesh of the depth map (sky and occlusion edges removed, drag to turn it). "
)
_FOCAL_INTRO = {
    "depth-pro": "The focal length comes from the number you type, else the photo's EXIF, else the model's "
    "FOV head.",
    "rsa": "RSA turns relative depth into metres with the caption of the scene. It has no camera model: "
    "the focal length you type (else the photo's EXIF) places the 3D points.",
}


def build_demo(
    source: Any,
    *,
    extra: Mapping[str, Any] | None = None,
    description: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    work_dir: str | os.PathLike | None = None,
    keep_runs: int = DEFAULT_KEEP_RUNS,
    concurrency: int = DEFAULT_CONCURRENCY,
    **options: Any,
) -> gr.Blocks:
    """The demo's ``gr.Blocks`` app for a depth source.

    Args:
        source: a :class:`~metricdepth.DepthSource` (``DepthPro``, ``RSAPipeline``) or a ready
            :class:`~metricdepth.demo.session.DepthDemo`. RSA pipelines with a text-conditioned head get
            a caption box ("auto": the offline detector captions the photo); other sources do not.
        extra: fields for each request's JSON file (e.g. the checkpoint).
        description: a line under the title naming the model (Markdown, shown as is).
        max_pixels: photos with more pixels (W × H) are refused with a message.
        work_dir: where each request's outputs are written (default: a temporary folder, removed at exit).
        keep_runs: request folders kept on disk.
        concurrency: predictions that may run at once (the queue holds the rest).
        options: more :class:`DepthDemo` options (``mesh_faces``, ``display_size``, ``grid_size``).

    Returns:
        A ``gradio.Blocks``; serve it with :func:`launch_demo` (or its own ``queue().launch()``).
    """
    import gradio as gr

    if isinstance(source, DepthDemo):
        demo = source
    else:
        # requests that finished but whose files gradio is still copying are never removed
        keep_runs = max(keep_runs, concurrency + 1)
        demo = DepthDemo(
            source, extra=extra, max_pixels=max_pixels, work_dir=work_dir, keep_runs=keep_runs, **options
        )
        atexit.register(demo.close)

    def predict(path: str | None, f_px: str | None, caption: str | None):
        try:
            result = demo.run(path, f_px=f_px, caption=caption)
        except DemoInputError as err:
            raise gr.Error(str(err), duration=None, print_exception=False) from None
        except Exception as err:  # a bug or an exhausted machine: a message, not a stack trace
            log.exception("prediction failed")
            raise gr.Error(
                f"the prediction failed ({type(err).__name__}: {err})", duration=None, print_exception=False
            ) from None
        focal = result.focal_text
        if result.caption is not None:
            focal += f"  \nCaption used: {result.caption}"
        for note in result.notes:
            focal += f"  \nNote: {note}"
        glb = str(result.glb) if result.glb is not None else None
        return result.depth_html, _markdown_text(focal), glb, [str(p) for p in result.files]

    def clear():
        return _PLACEHOLDER, "", None, None

    title = "metricdepth — metric depth from one photo"
    # gradio's copies of uploads and outputs are deleted after 30 minutes (checked every 10)
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(600, 1800)) as blocks:
        rsa = hasattr(demo.source, "conditioning")  # RSA pipelines: no camera model, no FOV head
        intro = _INTRO + _FOCAL_INTRO["rsa" if rsa else "depth-pro"]
        gr.Markdown(f"## {title}\n{intro}" + (f"\n\n{description}" if description else ""))
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260):
                photo = gr.File(
                    label="Photo (JPEG, PNG, HEIC, …)",
                    # extensions, not "image": gradio checks the type on the server too, and a MIME
                    # type for .heic depends on the system's mimetypes tables
                    file_types=sorted(IMAGE_EXTENSIONS),
                    type="filepath",
                    elem_id="md-photo",
                )
                caption = gr.Textbox(
                    label="Caption of the scene (RSA)",
                    value="auto",
                    info="e.g. 'An image with a car and two people.', or 'auto' (offline object detector)",
                    visible=demo.takes_caption,
                    elem_id="md-caption",
                )
                focal_override = gr.Textbox(
                    label="Focal length override (px)",
                    placeholder="e.g. 1200",
                    info=(
                        "Empty: EXIF, else none (RSA has no camera)"
                        if rsa
                        else "Empty: EXIF, else the FOV head"
                    )
                    + ". Press Enter or Predict to re-run.",
                    elem_id="md-focal-override",
                )
                run = gr.Button("Predict depth", variant="primary", elem_id="md-run")
                focal = gr.Markdown(elem_id="md-focal")
            with gr.Column(scale=2):
                depth_panel = gr.HTML(
                    _PLACEHOLDER,
                    label="Depth",
                    js_on_load=HOVER_JS,
                    css_template=DEPTH_VIEW_CSS,
                    elem_id="md-depth",
                )
            with gr.Column(scale=2):
                view3d = gr.Model3D(
                    label="3D view (mesh; sky and occlusion edges removed)",
                    clear_color=(0.95, 0.95, 0.95, 1.0),
                    elem_id="md-3d",
                    height=480,
                )
        downloads = gr.File(
            label="Downloads: depth (npz, metres), 16-bit depth PNG (mm), colour map, point cloud (PLY), "
            "camera (JSON), mesh (GLB)",
            file_count="multiple",
            interactive=False,
            elem_id="md-downloads",
        )

        outputs = [depth_panel, focal, view3d, downloads]
        inputs = [photo, focal_override, caption]
        shared = {"concurrency_limit": concurrency, "concurrency_id": "predict", "show_progress": "full"}
        photo.upload(clear, None, outputs, queue=False).then(predict, inputs, outputs, **shared)
        photo.clear(clear, None, outputs, queue=False)
        run.click(predict, inputs, outputs, **shared)
        focal_override.submit(predict, inputs, outputs, **shared)
        caption.submit(predict, inputs, outputs, **shared)
    return blocks


def _markdown_text(text: str) -> str:
    """``text`` with Markdown's special characters escaped (file names and captions shown as they are)."""
    out = []
    for line in text.split("  \n"):
        escaped = "".join("\\" + c if c in "\\`*_{}[]<>()#+-!|~" else c for c in line)
        out.append(escaped)
    return "  \n".join(out)


def launch_demo(
    source: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    concurrency: int = DEFAULT_CONCURRENCY,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    block: bool = True,
    quiet: bool = False,
    **options: Any,
) -> gr.Blocks:
    """Serve the demo: ``http://HOST:PORT`` (localhost unless ``host`` says otherwise).

    Args:
        source: a depth source or a :class:`DepthDemo` (see :func:`build_demo`).
        max_upload_mb: uploads over this many MiB are refused by the server (with a message on the page).
        concurrency: predictions running at once; ``queue_size`` more wait, later ones are told to retry.
        block: serve until Ctrl-C (KeyboardInterrupt) or any other exception raised in this thread
            (e.g. SystemExit from a signal handler the caller installed), then close the server;
            Ctrl-C returns normally, other exceptions propagate after the close. No signal handler is
            installed here: under Python's default, SIGTERM ends the process at once (no close, no
            atexit clean-up of the temporary work folder); ``metricdepth demo`` installs one that turns
            SIGTERM into SystemExit. False returns at once with the server running (stop it with
            ``blocks.close()``).
        options: :func:`build_demo` options (``extra``, ``description``, ``max_pixels``, ...).

    Returns:
        The running ``gradio.Blocks`` (its ``local_url`` is the address).
    """
    if not 0 < max_upload_mb <= 10_000:
        raise ValueError(f"max_upload_mb must be in (0, 10000] MiB, got {max_upload_mb}")
    if concurrency < 1 or queue_size < 1:
        raise ValueError("concurrency and queue_size must be at least 1")
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in 1…65535, got {port}")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    blocks = build_demo(source, concurrency=concurrency, **options)
    blocks.queue(default_concurrency_limit=concurrency, max_size=queue_size, api_open=False)
    blocks.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        max_file_size=int(max_upload_mb * 2**20),
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        quiet=quiet,
        prevent_thread_lock=True,
    )
    if block:
        serve_until_stopped(blocks)
    return blocks


def serve_until_stopped(blocks: gr.Blocks) -> None:
    """Block while ``blocks`` serves; Ctrl-C returns, any other exception propagates; the server is
    closed either way."""
    try:
        while blocks.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        blocks.close()
