"""The HTML report in a real browser: headless Chromium (Debian's `chromium`, installed by .ci/run) renders the
page at a screen's width (1280 px) and a phone's (390 px) and takes a screenshot of each; every image must have
decoded, no script error may have occurred, nothing may scroll sideways (at 1280 px neither the page nor a table's
box, every folded table opened), and the summary on top must list every task that ran. The screenshots are kept as
test artefacts in $CXRBENCH_TEST_ARTEFACTS (default: test-artefacts/ in the project, ignored by git).

The test drives Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages ending in
NUL, written to the browser's fd 3 and read from its fd 4), so it needs nothing beyond the standard library.
A page with a broken image and a failing script proves the check catches both. The report of the session's
tiny pipeline run (the `tiny_run` fixture) is checked too, and the one at $CXRBENCH_REPORT_HTML when set.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from cxrbench.report.document import Report

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1024", "--remote-debugging-pipe"]
SCREEN, PHONE = 1280, 390
ARTEFACTS = Path(os.environ.get("CXRBENCH_TEST_ARTEFACTS", Path(__file__).resolve().parents[1] / "test-artefacts"))
TIMEOUT_S = 60.0
IMAGES_JS = """Array.from(document.images, image => {
    const box = image.getBoundingClientRect();
    return {alt: image.alt, complete: image.complete, width: image.naturalWidth,
            left: box.left + scrollX, top: box.top + scrollY, right: box.right + scrollX, bottom: box.bottom + scrollY};
})"""
# Measured after the screenshot, every folded table opened: what scrolls sideways, and the summary's tasks.
LAYOUT_JS = """(() => {
    document.querySelectorAll('details').forEach(details => details.open = true);
    const wide = Array.from(document.querySelectorAll('.scroll'))
        .filter(box => box.scrollWidth > box.clientWidth)
        .map(box => (box.closest('details') ? box.closest('details').querySelector('summary').textContent
                     : (box.previousElementSibling || box.parentElement).textContent).slice(0, 80));
    return {pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth,
            height: document.documentElement.scrollHeight, wideTables: wide,
            summaryTasks: Array.from(document.querySelectorAll('#summary tbody tr td:first-child'), td => td.textContent)};
})()"""
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} not installed (Debian package chromium)")]


class DevTools:
    """One headless Chromium with a fresh profile, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path, log: Path):
        to_browser, self._writer = os.pipe()
        self._reader, from_browser = os.pipe()
        # move the browser's ends above 3 and 4 first, so placing them there cannot overwrite one another
        child_ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
        for fd in (to_browser, from_browser):
            os.close(fd)

        def on_fds_3_and_4() -> None:
            os.dup2(child_ends[0], 3)
            os.dup2(child_ends[1], 4)

        with open(log, "wb") as stderr:
            self.process = subprocess.Popen([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}"], close_fds=False,
                                            preexec_fn=on_fds_3_and_4, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=stderr)
        for fd in child_ends:
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._reader], [], [], remaining)[0]:
                raise TimeoutError("no answer from Chromium over the DevTools pipe")
            chunk = os.read(self._reader, 1 << 20)
            if not chunk:
                raise ConnectionError(f"Chromium closed the DevTools pipe (exit code {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Call a DevTools method and return its result; events that arrive meanwhile are kept in order."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, event: str, after: int) -> dict[str, Any]:
        """The first `event` among the events received after the first `after` ones, waiting for it."""
        deadline = time.monotonic() + TIMEOUT_S
        while not any(message.get("method") == event for message in self.events[after:]):
            self.events.append(self._receive(deadline))
        return next(message for message in self.events[after:] if message.get("method") == event)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (ConnectionError, TimeoutError, OSError):
            pass
        finally:
            os.close(self._writer)
            os.close(self._reader)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Rendered:
    images: list[dict[str, Any]]  # per <img>: alt, complete, width (naturalWidth), left/top/right/bottom on the page
    errors: list[str]  # uncaught exceptions, console errors and failed loads the browser reported
    screenshot: np.ndarray  # the full page as decoded RGB pixels
    layout: dict[str, Any]  # LAYOUT_JS: page and viewport width, page height, tables wider than their box, summary
    png: bytes  # the screenshot as the browser encoded it


def render(page: Path, workdir: Path, width: int = SCREEN) -> Rendered:
    """Open `page` in headless Chromium `width` CSS pixels wide (a phone's viewport below 600), wait for its load
    event, take a screenshot of the whole page, and collect what the checks need."""
    log = workdir / "chromium.log"
    browser = DevTools(workdir / "profile", log)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 1024, "deviceScaleFactor": 1,
                                                             "mobile": width < 600}, session)
        before_navigation = len(browser.events)
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session)
        browser.wait_for("Page.loadEventFired", after=before_navigation)
        images = browser.send("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True},
                              session)["result"]["value"]
        shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
        layout = browser.send("Runtime.evaluate", {"expression": LAYOUT_JS, "returnByValue": True},
                              session)["result"]["value"]
    except (ConnectionError, TimeoutError) as error:
        raise AssertionError(f"{error}; end of {log}:\n{log.read_text(errors='replace')[-3000:]}") from error
    finally:
        browser.close()
    png = base64.b64decode(shot["data"])
    return Rendered(images, _errors(browser.events), cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR),
                    layout, png)


def _errors(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            found.append(f"exception: {details.get('exception', {}).get('description', details.get('text'))}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            found.append(f"console.error: {[arg.get('value', arg.get('description')) for arg in params['args']]}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}".strip())
    return found


def assert_renders_cleanly(page: Path, workdir: Path, expected_images: int | None = None,
                           width: int = SCREEN) -> Rendered:
    rendered = render(page, workdir, width)
    if expected_images is not None:
        assert len(rendered.images) == expected_images
    assert rendered.images, "the page shows no image"
    broken = [image["alt"] for image in rendered.images if not (image["complete"] and image["width"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    assert not rendered.errors, f"script errors: {rendered.errors}"
    for image in rendered.images:  # the screenshot shows each picture where the page laid it out
        area = rendered.screenshot[round(image["top"]):round(image["bottom"]),
                                   round(image["left"]):round(image["right"])]
        assert area.size and area.std() > 10, f"{image['alt']}: nothing drawn at its place in the screenshot"
    layout = rendered.layout
    assert layout["pageWidth"] <= layout["viewport"] == width, f"the page scrolls sideways at {width} px: {layout}"
    if width >= SCREEN:
        assert not layout["wideTables"], f"tables that scroll sideways at {width} px: {layout['wideTables']}"
    return rendered


def small_report() -> Report:
    report = Report("browser check", "SYNTHETIC DATA: a page made by the test")
    report.heading("A table")
    report.table(pd.DataFrame({"label": ["Atelectasis", "Effusion"], "auc": [0.81, 0.88]}), "Per-class AUC")
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 0.2, 1], [0, 0.7, 1], label="ROC")
    ax.legend()
    report.figure(fig, "a line plot", "line")
    fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(np.arange(64 * 64).reshape(64, 64) % 251, cmap="gray")
    report.figure(fig, "an image", "image")
    return report


def test_a_report_page_renders_with_every_image_and_no_script_error(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(small_report().html())
    rendered = assert_renders_cleanly(page, tmp_path, expected_images=2)
    assert sorted(image["alt"] for image in rendered.images) == ["a line plot", "an image"]
    assert rendered.screenshot.shape[1] == SCREEN
    below_figures = rendered.screenshot[round(max(image["bottom"] for image in rendered.images)) + 40:]
    assert below_figures.std() < 10  # blank page under the captions: the pictures are where the DOM says


def test_the_check_catches_a_broken_image_and_a_script_error(tmp_path):
    html = small_report().html().replace(
        "</body>", '<img src="data:image/png;base64,iVBORw0KGgo=" alt="truncated png">'
                   "<script>throw new Error('deliberate failure')</script></body>")
    page = tmp_path / "broken.html"
    page.write_text(html)
    rendered = render(page, tmp_path)
    widths = {image["alt"]: image["width"] for image in rendered.images}
    assert widths["truncated png"] == 0 and widths["a line plot"] > 0
    assert any("deliberate failure" in error for error in rendered.errors), rendered.errors
    (tmp_path / "again").mkdir()
    with pytest.raises(AssertionError, match="images that did not load: \\['truncated png'\\]"):
        assert_renders_cleanly(page, tmp_path / "again")


def test_the_check_catches_a_page_or_a_table_that_scrolls_sideways(tmp_path):
    report = small_report()
    report.table(pd.DataFrame({f"column {n}": ["a-long-unbreakable-cell-" * 3] for n in range(30)}), "A wide table")
    wide_table = report.html().replace("</style>", ".scroll td{white-space:nowrap}</style>")
    (tmp_path / "table.html").write_text(wide_table)
    with pytest.raises(AssertionError, match="tables that scroll sideways at 1280 px: \\['A wide table"):
        assert_renders_cleanly(tmp_path / "table.html", tmp_path)
    (tmp_path / "page.html").write_text(small_report().html().replace("</body>", '<div style="width:1500px">x</div></body>'))
    (tmp_path / "again").mkdir()
    with pytest.raises(AssertionError, match="the page scrolls sideways at 390 px"):
        assert_renders_cleanly(tmp_path / "page.html", tmp_path / "again", width=PHONE)


# The summary's task names for a run of all four datasets (cxrbench.report.summary).
TASKS_OF_ALL_DATASETS = ["NIH ChestX-ray14 classification", "Weakly supervised localisation", "Google expert labels",
                         "SCR segmentation", "SCR segmentation", "SCR segmentation", "JSRT nodule detection",
                         "JSRT malignancy", "External validation (NIH classifier on JSRT)"]


def test_the_pipeline_report_fits_a_screen_and_a_phone_and_answers_on_top(tiny_run, tmp_path):
    """The tiny run's report (all four datasets) at 1280 and 390 px, screenshots kept in ARTEFACTS; and the report
    at $CXRBENCH_REPORT_HTML when set (e.g. the demo's)."""
    candidates = {"tiny": tiny_run / "results" / "report.html"}
    if os.environ.get("CXRBENCH_REPORT_HTML"):
        candidates["given"] = Path(os.environ["CXRBENCH_REPORT_HTML"])
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for name, page in candidates.items():
        for width in (SCREEN, PHONE):
            workdir = tmp_path / f"{name}_{width}"
            workdir.mkdir()
            rendered = assert_renders_cleanly(page, workdir, width=width)
            (ARTEFACTS / f"report_{name}_{width}px.png").write_bytes(rendered.png)
            if name == "tiny":
                assert rendered.layout["summaryTasks"] == TASKS_OF_ALL_DATASETS
            else:
                assert rendered.layout["summaryTasks"], "the summary lists no task"
