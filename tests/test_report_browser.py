"""The report in a real browser: headless Chromium opens it from file:// and every figure
must have rendered (no console errors, nothing fetched from the network, each
``.rp-figure`` holding an SVG with drawn paths of a real size). A full-page screenshot
is saved to test-artifacts/report.png.

Chromium is driven over the DevTools protocol (``--remote-debugging-port=0``: the browser
picks a free port and writes it to DevToolsActivePort in its profile directory), with
aiohttp's websocket client. Install it with ``apt-get install -y chromium``; without it the
test skips, except under CI=true where it must run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from reasonperf.analysis.base import AnalysisResult, RunData
from reasonperf.report.html import render_html
from tests.test_report import make_run, sample_results

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
START_TIMEOUT_S = 60.0
STEP_TIMEOUT_S = 60.0


def _chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("CI is set but chromium is not installed (apt-get install -y chromium)")
    pytest.skip("chromium not installed (apt-get update && apt-get install -y chromium)")


class Cdp:
    """The few DevTools-protocol calls the test needs, over one browser websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.last_id = 0
        self.events: list[dict[str, Any]] = []

    async def _receive(self, deadline: float) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.ws.receive(), max(deadline - time.monotonic(), 0.01))
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"DevTools websocket closed: {msg.type!r}")
        return json.loads(msg.data)

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   session: str | None = None) -> dict[str, Any]:
        self.last_id += 1
        msg: dict[str, Any] = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send_json(msg)
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            data = await self._receive(deadline)
            if data.get("id") == self.last_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data.get("result", {})
            self.events.append(data)

    async def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while True:
            data = await self._receive(deadline)
            self.events.append(data)
            if data.get("method") == method:
                return data


FIGURE_PROBE = """(() => [...document.querySelectorAll('figure.rp-figure')].map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : f.getBoundingClientRect();
  const drawn = svg ? [...svg.querySelectorAll('path')].filter(p => {
      const b = p.getBBox(); return b.width > 0 || b.height > 0; }).length : 0;
  return {id: f.id, svg: !!svg, paths: svg ? svg.querySelectorAll('path').length : 0,
          drawn: drawn, width: box.width, height: box.height};
}))()"""


async def _inspect(port_file: Path, url: str, shot: Path) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("chromium did not write DevToolsActivePort")
        await asyncio.sleep(0.05)
    port, path = port_file.read_text().splitlines()[:2]
    async with aiohttp.ClientSession() as http, http.ws_connect(
        f"ws://127.0.0.1:{port}{path}", max_msg_size=0
    ) as ws:
        cdp = Cdp(ws)
        target = await cdp.send("Target.createTarget", {"url": "about:blank"})
        sid = (await cdp.send("Target.attachToTarget",
                              {"targetId": target["targetId"], "flatten": True}))["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            await cdp.send(f"{domain}.enable", session=sid)
        await cdp.send("Emulation.setDeviceMetricsOverride",
                       {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, sid)
        await cdp.send("Page.navigate", {"url": url}, sid)
        await cdp.wait_for("Page.loadEventFired")
        probe = await cdp.send("Runtime.evaluate", {"expression": FIGURE_PROBE, "returnByValue": True}, sid)
        figures = probe["result"]["value"]
        metrics = await cdp.send("Page.getLayoutMetrics", session=sid)
        height = int(min(metrics["cssContentSize"]["height"], 16_000))
        await cdp.send("Emulation.setDeviceMetricsOverride",
                       {"width": 1400, "height": height, "deviceScaleFactor": 1, "mobile": False}, sid)
        png = await cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, sid)
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(base64.b64decode(png["data"]))
        await cdp.send("Browser.close")
        return {"figures": figures, "events": cdp.events, "height": height}


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for ev in events:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(str((d.get("exception") or {}).get("description") or d.get("text")))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(str([a.get("value") for a in p.get("args", [])]))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(str(p["entry"].get("text")))
    return out


def _fetched(events: list[dict[str, Any]]) -> list[str]:
    urls = [ev["params"]["request"]["url"] for ev in events if ev.get("method") == "Network.requestWillBeSent"]
    return [u for u in urls if not u.startswith(("file:", "data:", "about:"))]


def _runs_and_results() -> tuple[list[RunData], list[AnalysisResult]]:
    """A batch run and a gamma-like open-loop run with their analyses: the registered
    ones when that module is there, plus results using every figure kind."""
    runs = [make_run(160, name="batch", arrival="batch", seed=11),
            make_run(240, name="gamma", arrival="poisson", rate=3.0, error_frac=0.03, seed=12)]
    results = sample_results()
    try:
        from reasonperf.analysis.registry_all import run_analyses
    except ImportError:
        return runs, results
    return runs, [*run_analyses(runs), *results]


def open_in_chromium(report: Path, tmp_path: Path, shot: Path) -> dict[str, Any]:
    """Open a report in headless Chromium; return the figure probe and the page events."""
    chrome = _chromium()
    profile = tmp_path / "profile"
    log = (tmp_path / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "about:blank"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        return asyncio.run(_inspect(profile / "DevToolsActivePort", report.as_uri(), shot))
    finally:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


def assert_every_figure_rendered(report: Path, seen: dict[str, Any], shot: Path) -> list[dict[str, Any]]:
    n_figures = report.read_text(encoding="utf-8").count('class="rp-figure"')
    figures = seen["figures"]
    assert len(figures) == n_figures
    assert _errors(seen["events"]) == []
    assert _fetched(seen["events"]) == []
    for f in figures:
        assert f["svg"] and f["paths"] > 0, f"{f['id']}: no SVG paths"
        assert f["drawn"] > 0, f"{f['id']}: no path with a visible size"
        assert f["width"] > 200 and f["height"] > 100, f"{f['id']}: rendered {f['width']}x{f['height']}"
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    return figures


def test_every_figure_renders_in_chromium(tmp_path: Path) -> None:
    _chromium()
    runs, results = _runs_and_results()
    report = render_html(runs, results, tmp_path / "report.html")
    shot = ARTIFACTS / "report.png"
    seen = open_in_chromium(report, tmp_path, shot)
    figures = assert_every_figure_rendered(report, seen, shot)
    assert len(figures) >= 7 + len(results)
    ids = {f["id"] for f in figures}
    assert {"fig-cdf-ttft", "fig-cdf-ttfvt", "fig-cdf-e2e", "fig-timeline-1", "fig-gantt-2"} <= ids
