"""``python -m bench.ui``: how fast the dashboard renders, from the browser's own performance entries.

Starts ``workplane serve`` on a loaded inventory (``python -m bench load --db sqlite [--size N]`` first),
opens the dashboard in headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) with a
token already in the tab's session, and reads the marks the dashboard sets when a view has drawn its
data (``<view>-rendered``) and the measures from the action that started it:

- first render: navigation start → the Workloads table drawn with its first page (a new tab each time,
  nothing cached: the HTML, every script, the token check and the list request);
- page switches: next page, a sort, a filter, opening a workload, back to the list, the overview.

Each is repeated ``--reps`` times; the median and the worst are printed and saved to
``bench/out/ui-<size>.json``. Targets (localhost): first render < 1 s, a page switch < 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.http_load import Server, get_token
from bench.load import DEFAULT_PG_URL, DEFAULT_SIZE, SQLITE, make_target

OUT_DIR = Path(__file__).resolve().parent / "out"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FIRST_RENDER_TARGET_MS = 1000.0
SWITCH_TARGET_MS = 300.0


def _last_measure(page: Any, name: str) -> float:
    duration: float = page.evaluate(
        "name => performance.getEntriesByName(name, 'measure').at(-1).duration", name
    )
    return duration


def _wait_measures(page: Any, name: str, count: int, timeout_ms: float = 30_000) -> None:
    page.wait_for_function(
        "([name, count]) => performance.getEntriesByName(name, 'measure').length >= count",
        arg=[name, count],
        timeout=timeout_ms,
    )


def _one_round(browser: Any, base_url: str, session: dict[str, Any], overview: bool) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    # A signed-in tab: the token goes into sessionStorage before any script of the page runs.
    context.add_init_script(f"sessionStorage.setItem('workplane.session', {json.dumps(json.dumps(session))})")
    page = context.new_page()
    page.set_default_timeout(30_000)
    got: dict[str, float] = {}
    try:
        page.goto(f"{base_url}/#/workloads")
        page.wait_for_function("() => performance.getEntriesByName('workloads-rendered').length > 0")
        got["first render (navigation → table drawn)"] = page.evaluate(
            "performance.getEntriesByName('workloads-rendered')[0].startTime"
        )
        got["  of which the HTML document"] = page.evaluate(
            "performance.getEntriesByType('navigation')[0].responseEnd"
        )

        page.click("button.next")
        _wait_measures(page, "workloads-page", 1)
        got["next page"] = _last_measure(page, "workloads-page")
        page.click("th button[data-sort=name]")
        _wait_measures(page, "workloads-page", 2)
        got["sort by name"] = _last_measure(page, "workloads-page")
        page.select_option("select.field", "phase")
        page.select_option("select.op", "==")
        page.fill("input.value", "Running")
        page.click("form.add-filter button[type=submit]")
        _wait_measures(page, "workloads-page", 3)
        got["add filter phase==Running"] = _last_measure(page, "workloads-page")

        page.focus("tbody tr[data-id]")
        page.keyboard.press("Enter")
        _wait_measures(page, "workload", 1)
        got["open a workload"] = _last_measure(page, "workload")
        page.click("a.back")
        _wait_measures(page, "workloads", 2)
        got["back to the list"] = _last_measure(page, "workloads")
        if overview:
            page.click("nav a[data-nav=overview]")
            try:
                _wait_measures(page, "overview", 1, timeout_ms=15_000)
                got["overview"] = _last_measure(page, "overview")
            except Exception:  # noqa: S110 (no telemetry endpoint in this build: reported as n/a)
                pass
    finally:
        context.close()
    return got


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="inventory size (default 1,000,000)")
    parser.add_argument("--reps", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--chromium", default=os.environ.get("WORKPLANE_TEST_CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--no-overview", action="store_true", help="skip the overview (needs telemetry)")
    args = parser.parse_args(argv)

    target = make_target(SQLITE, size=args.size, out_dir=OUT_DIR, pg_url=DEFAULT_PG_URL, pg_database=None)
    if not (target.data_dir / "workplane.db").exists():
        print(f"no inventory at {target.data_dir}: run python -m bench load --db sqlite --size {args.size}")
        return 2
    from playwright.sync_api import sync_playwright

    rounds: list[dict[str, float]] = []
    with Server(target, workers=1, log_path=OUT_DIR / f"ui-server-{args.size}.log") as server:
        token, _how = get_token(target, server.port)
        session = {"token": token, "expiresAt": int(time.time() * 1000) + 3_000_000, "clientId": "bench"}
        base_url = f"http://127.0.0.1:{server.port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            _one_round(browser, base_url, session, overview=False)  # warm the server's caches
            for _ in range(args.reps):
                rounds.append(_one_round(browser, base_url, session, overview=not args.no_overview))
            browser.close()

    names = list(dict.fromkeys(name for r in rounds for name in r))
    summary = {
        name: {
            "median_ms": round(statistics.median(r[name] for r in rounds if name in r), 1),
            "max_ms": round(max(r[name] for r in rounds if name in r), 1),
        }
        for name in names
    }
    print(f"dashboard timings, {args.size:,} workloads (SQLite), {args.reps} rounds, headless Chromium:")
    for name, value in summary.items():
        note = ""
        if not name.startswith("  "):  # a part of the line above, not a target of its own
            target_ms = FIRST_RENDER_TARGET_MS if name.startswith("first") else SWITCH_TARGET_MS
            note = f"(target < {target_ms:.0f} ms) " + ("ok" if value["max_ms"] < target_ms else "OVER")
        median, worst = value["median_ms"], value["max_ms"]
        print(f"  {name:<42} median {median:>7.1f} ms   worst {worst:>7.1f} ms  {note}")
    if not args.no_overview and "overview" not in summary:
        print("  overview: n/a (this build serves no GET /workloads/telemetry)")
    OUT_DIR.mkdir(exist_ok=True)
    out = OUT_DIR / f"ui-{args.size}.json"
    out.write_text(json.dumps({"size": args.size, "reps": args.reps, "timings": summary}, indent=2))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
