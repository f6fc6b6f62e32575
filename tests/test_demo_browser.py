"""``metricdepth demo`` end to end in headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright)

The demo runs as the command line starts it (``python -m metricdepth demo -c CKPT --host 127.0.0.1 --port
P``) with the tiny camera checkpoint; the browser has no network beyond 127.0.0.1 (so the page must
render offline). The tests upload photos and check what the page shows: the depth image, the focal
length and its source, the depth under the mouse, the 3D view, a focal override, messages for bad
uploads. ``demo.png`` (the whole page with a result) is saved in the test's folder and, when
``METRICDEPTH_TEST_ARTIFACTS`` is set, copied there.

Without Chromium or Playwright the tests skip, unless ``METRICDEPTH_REQUIRE_BROWSER=1`` (CI) makes that a
failure. Nothing is downloaded at run time.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metricdepth import load_image

CHROMIUM = Path(os.environ.get("METRICDEPTH_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("METRICDEPTH_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI containers run as root
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # offline: only the demo answers
    "--use-angle=swiftshader",  # WebGL (the 3D view) in software, without a GPU
    "--enable-unsafe-swiftshader",
]
MAX_UPLOAD_MB = 1  # small, so the upload bound is tested with a small file
READOUT = re.compile(r"^(\d+(?:\.\d+)?) m at \((\d+), (\d+)\)$")


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if REQUIRED:
        pytest.fail(f"{reason} (METRICDEPTH_REQUIRE_BROWSER=1 asks for the browser test)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    _require(CHROMIUM.is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright is not installed (pip install playwright; no browser download needed)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(browser, camera_checkpoint, tmp_path_factory):
    """The demo as ``metricdepth demo`` serves it; its temporary files stay in the test's folder."""
    root = tmp_path_factory.mktemp("demo-server")
    env = {
        **os.environ,
        "TMPDIR": str(root),  # the demo's request folders
        "GRADIO_TEMP_DIR": str(root / "gradio"),  # gradio's uploads and served files
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    port = _free_port()
    command = [sys.executable, "-m", "metricdepth", "demo", "-c", str(camera_checkpoint)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--max-upload-mb", str(MAX_UPLOAD_MB)]
    log_path = root / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"the demo exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the demo did not serve {url} within 60 s:\n{log_path.read_text()}")
        time.sleep(0.25)
    yield {"url": url, "root": root, "log": log_path}
    process.terminate()  # SIGTERM: the command closes the server and says so
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    output = log_path.read_text()
    assert f"demo running at {url}" in output and "demo stopped" in output, output
    assert "Traceback" not in output, output


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=False)
    page = context.new_page()
    outside = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith((server["url"], "data:", "blob:")) else None,
    )
    page.set_default_timeout(60_000)
    page.goto(server["url"])
    page.wait_for_selector("#md-photo input[type=file]", state="attached")
    yield page
    context.close()
    assert outside == [], f"the page asked for something beyond the demo: {outside}"


IDLE_JS = """() => {
    const trackers = [...document.querySelectorAll('[data-testid="status-tracker"]')];
    const done = (t) => t.classList.contains('hide') || t.querySelector('.error') !== null;
    return trackers.length > 0 && trackers.every(done);
}"""
"""True when no event is running: every gradio status tracker is hidden or shows the last event's error."""


def wait_until_idle(page) -> None:
    """Until the page's last event has finished (gradio ignores an upload while its event is pending)."""
    page.wait_for_function(IDLE_JS)


def upload(page, path: Path) -> None:
    """Upload ``path`` as the photo, once the previous request has finished (removing the photo shown
    first, as a user would, and waiting until the file component is empty again)."""
    wait_until_idle(page)
    clear = page.locator("#md-photo button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
        clear.first.wait_for(state="detached")
        wait_until_idle(page)  # the clear event resets the outputs
    page.locator("#md-photo input[type=file]").set_input_files(str(path))


def wait_for_result(page, name: str) -> None:
    """Until the depth image of ``name`` is shown and loaded."""
    page.wait_for_function(
        """name => {
            const image = document.querySelector('#md-depth img.md-depth');
            return image && image.alt === `depth map of ${name}` && image.complete && image.naturalWidth > 0;
        }""",
        arg=name,
    )


def canvas_contrast(page) -> tuple[float, float]:
    """(pixel standard deviation, share of pixels unlike the background) of the 3D view's canvas."""
    pixels = np.asarray(Image.open(io.BytesIO(page.locator("#md-3d canvas").screenshot())).convert("RGB"))
    background = np.median(pixels.reshape(-1, 3), axis=0)
    unlike = np.abs(pixels.astype(int) - background).sum(-1) > 30
    return float(pixels.std()), float(unlike.mean())


def save_screenshot(page, tmp_path: Path) -> Path:
    path = tmp_path / "demo.png"
    page.screenshot(path=str(path), full_page=True)
    artifacts = os.environ.get("METRICDEPTH_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / path.name)
    return path


def test_photo_shows_depth_focal_hover_readout_and_3d_view(page, data_dir, tmp_path):
    photo = data_dir / "leuvenA.jpg"
    upload(page, photo)
    wait_for_result(page, photo.name)
    assert page.locator("#md-depth img.md-colorbar").evaluate("i => i.complete && i.naturalWidth") > 0

    # the focal length used and where it came from (the photo's EXIF)
    exif_focal = load_image(photo).focal_px
    page.wait_for_function("() => document.querySelector('#md-focal').innerText.includes('from EXIF')")
    focal_text = page.locator("#md-focal").inner_text()
    assert f"Focal length: {exif_focal:.1f} px — from EXIF" in focal_text

    # every output is offered for download; the depth file is the one the readout shows
    links = [a.get_attribute("href") for a in page.locator("#md-downloads a[href]").all()]
    names = [link.rsplit("/", 1)[-1] for link in links]
    assert names == [
        "leuvenA.npz",
        "leuvenA_depth.png",
        "leuvenA_inverse_depth.png",
        "leuvenA.ply",
        "leuvenA.json",
        "leuvenA.glb",
    ]
    with urllib.request.urlopen(links[0]) as response, np.load(io.BytesIO(response.read())) as npz:
        depth = npz["depth"]
    assert depth.shape == (563, 751)

    # the depth under the mouse, in metres, at the pixel under it
    for fx, fy in ((0.5, 0.5), (0.2, 0.8), (0.9, 0.1)):
        value, x, y = read_depth_at(page, fx, fy)
        assert abs(x - fx * 751) <= 4 and abs(y - fy * 563) <= 4  # the grid's nearest sample (stride 3)
        assert value == pytest.approx(float(depth[y, x]), rel=2e-3)

    # the 3D view: a canvas that shows a rendered mesh, not an empty background
    page.wait_for_selector("#md-3d canvas")
    deadline = time.monotonic() + 30
    while (contrast := canvas_contrast(page))[1] < 0.2 and time.monotonic() < deadline:
        time.sleep(0.5)
    spread, covered = contrast
    assert spread > 10 and covered > 0.2, f"3D view looks blank: std {spread:.1f}, {covered:.0%} drawn"

    read_depth_at(page, 0.5, 0.5)  # a readout in the screenshot
    path = save_screenshot(page, tmp_path)
    assert Image.open(path).size[0] == 1400


def read_depth_at(page, fx: float, fy: float) -> tuple[float, int, int]:
    """Move the mouse to (fx, fy) of the depth image (fractions of its size); the readout's (metres, x, y)."""
    box = page.locator("#md-depth img.md-depth").bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] - 20)  # off the map first: each call is a fresh mousemove
    page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    page.wait_for_function("() => / at \\(/.test(document.querySelector('#md-depth .md-readout').innerText)")
    text = page.locator("#md-depth .md-readout").inner_text().strip()
    match = READOUT.match(text)
    assert match, text
    return float(match[1]), int(match[2]), int(match[3])


def test_focal_override_reruns_with_the_typed_in_focal(page, data_dir):
    photo = data_dir / "motorcycle_left.png"  # no EXIF: the FOV head's focal first
    upload(page, photo)
    wait_for_result(page, photo.name)
    page.wait_for_function("() => document.querySelector('#md-focal').innerText.includes('FOV head')")
    match = re.search(
        r"Focal length: (\d+\.\d) px — predicted by the FOV head", page.locator("#md-focal").inner_text()
    )
    assert match, page.locator("#md-focal").inner_text()
    predicted = float(match[1])
    before = read_depth_at(page, 0.5, 0.5)

    field = page.locator("#md-focal-override textarea, #md-focal-override input").first
    field.fill("800")
    field.press("Enter")
    page.wait_for_function("() => document.querySelector('#md-focal').innerText.includes('typed in')")
    assert "Focal length: 800.0 px — typed in" in page.locator("#md-focal").inner_text()
    wait_for_result(page, photo.name)
    after = read_depth_at(page, 0.5, 0.5)
    # the same pixel, its depth scaled by the focal length (metric inverse depth = canonical · W / f)
    assert after[1:] == before[1:]
    assert after[0] / before[0] == pytest.approx(800.0 / predicted, rel=5e-3)


def test_bad_uploads_show_a_message_and_the_server_stays_up(page, data_dir, tmp_path):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello, this is not a photo\n")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((data_dir / "leuvenA.jpg").read_bytes()[:20_000])
    too_big = tmp_path / "huge.jpg"
    too_big.write_bytes(os.urandom(int(1.5 * MAX_UPLOAD_MB * 2**20)))
    cases = [
        (not_image, "notes.jpg: not a recognised image format"),
        (truncated, "cut.jpg: cannot decode image, the file is truncated or corrupt"),
        (too_big, "exceed the maximum allowed size"),
    ]
    for path, message in cases:
        upload(page, path)
        page.get_by_text(message).first.wait_for(state="visible", timeout=60_000)
    assert "Traceback" not in page.content()

    photo = data_dir / "leuvenA.jpg"  # and the demo still works
    upload(page, photo)
    wait_for_result(page, photo.name)
