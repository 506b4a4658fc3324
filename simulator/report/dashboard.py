"""``scfleet run --dashboard [HOST:]PORT``: a live page of the run, k6's web-dashboard habit.

The page (``/``) is the report's charts, stage table and verdict, drawn with the same script
and uPlot as ``report.html``; ``/events`` pushes each tick's state as a server-sent event. The
state is built on the run's loop once per tick, and only while a page is connected (never per
request), from at most :data:`MAX_POINTS` points per chart; the server runs on its own threads
(http.server) and ends with the run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scfleet_core.errors import ConfigError
from simulator.run.prometheus import Endpoint

DEFAULT_PORT = 5665  # k6's web dashboard


def _page(title: str) -> str:
    from simulator.report.html import CSS, chart_scripts, esc

    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>scfleet live — {esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>scfleet live <span id='status' class='na'>waiting for the first tick</span></h1>"
        f"<p class='meta'>{esc(title)} · <span id='elapsed'></span></p>"
        "<div id='cards'></div><h2>Verdict so far</h2><div id='verdict'></div>"
        "<h2>Stages</h2><div id='stages'></div><h2>Over time</h2><div id='plots'></div>"
        + chart_scripts()
        + """<script>
const es = new EventSource('/events');
es.onmessage = (e) => {
  const d = JSON.parse(e.data);
  for (const k of ['cards', 'verdict', 'stages']) document.getElementById(k).innerHTML = d[k];
  scfleetCharts(d.charts, document.getElementById('plots'));
  const st = document.getElementById('status');
  st.textContent = d.status; st.className = d.status === 'running' ? 'ok' : 'na';
  document.getElementById('elapsed').textContent = d.elapsed.toFixed(0) + ' s';
  document.body.dataset.tick = d.tick;
  document.body.dataset.events = Number(document.body.dataset.events || 0) + 1;
};
es.onerror = () => {
  const st = document.getElementById('status');
  st.textContent = 'run over: the dashboard closed with it (report.html has the results)';
  st.className = 'na'; es.close();
};
</script></body></html>
"""
    )


def _cards(timeline: list[dict[str, Any]]) -> str:
    from simulator.report.html import cards

    reqs = sum(s["requests"] for p in timeline for s in p.get("scenarios", {}).values())
    failed = sum(s["failed"] for p in timeline for s in p.get("scenarios", {}).values())
    last = timeline[-1] if timeline else {"scenarios": {}}
    rps = sum(s["rps"] for s in last.get("scenarios", {}).values())
    p95 = max((s["p95_ms"] for s in last.get("scenarios", {}).values()), default=0.0)
    items = [
        ("requests", f"{reqs}"),
        ("req/s (last second)", f"{rps:.1f}"),
        ("error rate so far", f"{failed / reqs * 100 if reqs else 0:.2f}%"),
        ("p95 last second", f"{p95:.1f} ms"),
        ("active devices", f"{last.get('active', 0)}"),
    ]
    return cards(items)


def snapshot(env: Any, tick: int, timeline: list[dict[str, Any]] | None = None) -> str:
    """The page's state after a tick, as one JSON document (``timeline``: the run's points so
    far, default ``env.timeline``)."""
    from simulator.report import html
    from simulator.report.stages import stage_table
    from simulator.run.stage_recorder import StageRecorder

    cfg = env.cfg
    timeline = env.timeline if timeline is None else timeline
    thresholds = (
        [] if cfg.no_thresholds else [(t.metric_key, t.expr.source) for t in cfg.thresholds]
    )
    recorder = env.stage_recorder or StageRecorder.for_config(cfg)
    rows, assessments = stage_table(recorder, timeline, thresholds)
    verdict = "".join(
        (f"<h3>{html.esc(a.scenario)}</h3>" if len(assessments) > 1 else "") + html._verdict(a)
        for a in assessments
    )
    stages = "".join(
        f"<p class='meta'>{html.esc(a.scenario)}</p>"
        + html._stage_table([r for r in rows if r.scenario == a.scenario], a)
        for a in assessments
    )
    status = "stopping" if env.stop_event.is_set() else "running"
    head = json.dumps(
        {
            "tick": tick,
            "elapsed": timeline[-1]["t"] if timeline else 0.0,
            "status": status,
            "cards": _cards(timeline),
            "verdict": verdict,
            "stages": stages,
        },
        allow_nan=False,
    )
    drawn = html.charts(thinned(timeline), rows)
    return head[:-1] + ', "charts": ' + html.charts_json(drawn) + "}"


#: The live charts draw at most this many points (report.html draws every second).
MAX_POINTS = 300


def thinned(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every k-th point of a long timeline, always the latest: the per-tick cost of the
    live charts stays bounded however long the run."""
    step = -(-len(timeline) // MAX_POINTS)
    return timeline if step <= 1 else timeline[::-1][::step][::-1]


class Dashboard:
    """The live page's server: bound at construction (a port in use fails before the run
    starts), fed by :meth:`tick` (a tick hook), closed by :meth:`close`."""

    def __init__(self, endpoint: Endpoint, title: str = "", *, source: str = "--dashboard") -> None:
        self._cond = threading.Condition()
        self._state = ""
        self._points: list[dict[str, Any]] = []
        self._tick = 0
        self._clients = 0
        self._closing = False
        page = _page(title).encode()
        board = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path in ("/", "/index.html"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                elif self.path == "/events":
                    board._stream(self)
                else:
                    self.send_error(404)

        try:
            self._server = ThreadingHTTPServer((endpoint.host, endpoint.port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {endpoint}: {exc.strerror or exc}", source=source
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="scfleet-dashboard", daemon=True
        )
        self._thread.start()
        host = endpoint.host
        port = int(self._server.server_address[1])
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def _news(self, seen: int) -> Callable[[], bool]:
        return lambda: self._closing or self._tick != seen

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        seen = -1
        with self._cond:
            self._clients += 1
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(self._news(seen), timeout=15)
                    if self._closing:
                        return
                    state, fresh = self._state, self._tick != seen
                    seen = self._tick
                handler.wfile.write(f"data: {state}\n\n".encode() if fresh and state else b":\n\n")
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return  # the page was closed
        finally:
            with self._cond:
                self._clients -= 1

    def tick(self, env: Any, point: Any = None) -> None:
        """A tick hook: the state after this tick, built only while a page is connected. The
        page's stage table needs every point: the dashboard keeps its own copy (the run keeps
        only the last in memory)."""
        if point is not None:
            self._points.append(point)
        with self._cond:
            if not self._clients:
                return
        state = snapshot(env, self._tick + 1, self._points if point is not None else None)
        with self._cond:
            self._state = state
            self._tick += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
