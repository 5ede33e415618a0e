#!/usr/bin/env python3
"""worker_stats.py - tool-call round trips from sessions' event histories
(bench/run.sh worker). Not a test.

  worker_stats.py BASE_URL KEY EXPECTED_CALLS_PER_SESSION SESSION_ID...
  worker_stats.py --wait TIMEOUT_S BASE_URL KEY SESSION_ID...
      (waits until every session's last session.status_idle says end_turn;
      exits 1 on timeout)

For every agent.tool_use the round trip is the user.tool_result's
processed_at minus the tool_use's processed_at: both are the server's clock
when it stored each event, so neither worker's nor the client's clock is in
it. The server records microseconds (an older server: milliseconds, and each
sample is then quantised to 1 ms).

The first call of each session also pays the worker's claim of the work item
and the session's set-up (our sandbox creation; the SDK's stream connection),
so it is reported apart (first_*) and left out of the percentiles.

Prints one JSON line. Exits 1 if a call is unanswered, answered twice, or its
result is not the `echo` output the scenario asked for: a benchmark of a
worker that got the work wrong would report figures for a run that did not
happen.
"""
import json
import sys
import time
import urllib.request
from datetime import datetime


def ms(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000.0


def get(base, key, path):
    req = urllib.request.Request(
        base + path, headers={"x-api-key": key, "anthropic-beta": "managed-agents-2026-04-01"}
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def wait(timeout, base, key, sids):
    end = time.monotonic() + timeout
    left = list(sids)
    while left:
        q = "/events?types[]=session.status_idle&order=desc&limit=1"
        left = [
            s
            for s in left
            if not any(
                (e.get("stop_reason") or {}).get("type") == "end_turn"
                for e in get(base, key, f"/v1/sessions/{s}{q}")["data"]
            )
        ]
        if not left:
            return 0
        if time.monotonic() > end:
            print(f"worker_stats: {len(left)} sessions not finished", file=sys.stderr)
            return 1
        time.sleep(0.5)
    return 0


def events(base, key, sid):
    out, page = [], ""
    while True:
        url = f"/v1/sessions/{sid}/events?limit=1000&order=asc"
        if page:
            url += "&page=" + page
        body = get(base, key, url)
        out += body["data"]
        page = body.get("next_page") or ""
        if not page or not body["data"]:
            return out


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    # processed_at has microseconds (the server's clock): keep them, no more.
    return round(xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))], 3)


def text_of(content):
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


def main():
    if sys.argv[1] == "--wait":
        sys.exit(wait(float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]))
    base, key, expect = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rts, firsts, errors = [], [], []
    calls = 0
    for sid in sys.argv[4:]:
        evs = events(base, key, sid)
        uses = [e for e in evs if e["type"] == "agent.tool_use"]
        results = {}
        for e in evs:
            if e["type"] == "user.tool_result":
                if e["tool_use_id"] in results:
                    errors.append(f"{sid}: {e['tool_use_id']} answered twice")
                results[e["tool_use_id"]] = e
        if len(uses) != expect:
            errors.append(f"{sid}: {len(uses)} tool calls, expected {expect}")
        for i, u in enumerate(uses):
            calls += 1
            r = results.get(u["id"])
            if r is None:
                errors.append(f"{sid}: {u['id']} unanswered")
                continue
            want = u["input"]["command"].split(" ", 1)[1]
            got = text_of(r.get("content")).strip()
            if r.get("is_error") or got != want:
                errors.append(f"{sid}: {u['id']} result {got[:80]!r}, expected {want!r}")
            d = ms(r["processed_at"]) - ms(u["processed_at"])
            (firsts if i == 0 else rts).append(d)
    out = {
        "sessions": len(sys.argv) - 4,
        "calls": calls,
        "samples": len(rts),
        "p50_ms": pct(rts, 50),
        "p90_ms": pct(rts, 90),
        "p99_ms": pct(rts, 99),
        "max_ms": round(max(rts), 3) if rts else None,
        "mean_ms": round(sum(rts) / len(rts), 2) if rts else None,
        "first_p50_ms": pct(firsts, 50),
        "first_max_ms": round(max(firsts), 3) if firsts else None,
        "errors": len(errors),
    }
    print(json.dumps(out))
    for e in errors[:10]:
        print("worker_stats: " + e, file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
