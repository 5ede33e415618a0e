#!/usr/bin/env python3
# TEST DOUBLE: a small scripted MCP server on stdio (2025-11-25 initialize,
# newline-delimited JSON-RPC) for tests/unit/gateway/test_stdio_pool.c. It is
# the peer the stdio pool is tested against, not an MCP implementation.
#
#   stdio_mcp_double.py [--mode MODE] [--n N] [--ignore-term] [--tag TEXT]
#
# Modes:
#   normal       tools: echo (a progress notification first when the request
#                has a progressToken), slow (waits `ms` or until cancelled),
#                env (its exec-time environment), stats (what it has seen),
#                ask (sends a server->client request and reports the reply),
#                big (a response line over 8 MiB), log (a log notification),
#                crash (exits, status 3, without answering); tools/list
#                names them all
#   crash-after  exits (status 3) on the N-th tools/call, without answering
#   garbage      writes a line that is not JSON on the first tools/call
#   never        answers initialize, then never answers anything
#   mute         never answers anything, not even initialize
#   modern       refuses initialize (-32601) and answers server/discover
# --ignore-term: SIGTERM and EOF on stdin are ignored (the pool must escalate
# to SIGKILL).
import json
import os
import signal
import sys
import threading
import time

mode = "normal"
stubborn = False
n_crash = 1
args = sys.argv[1:]
i = 0
while i < len(args):
    if args[i] == "--mode":
        mode = args[i + 1]
        i += 2
    elif args[i] == "--n":
        n_crash = int(args[i + 1])
        i += 2
    elif args[i] == "--tag":
        i += 2  # only there to find the process in /proc
    elif args[i] == "--ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stubborn = True
        i += 1
    else:
        sys.exit("unknown argument " + args[i])

out_lock = threading.Lock()
state_lock = threading.Lock()
stats = {"initialize": 0, "initialized": False, "cancelled": [], "slow_ids": [],
         "notifications": []}
slow_events = {}
pending_replies = {}
calls = 0


def send(msg):
    line = json.dumps(msg, separators=(",", ":")) + "\n"
    with out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def result(rid, structured, text="ok"):
    send({"jsonrpc": "2.0", "id": rid,
          "result": {"content": [{"type": "text", "text": text}],
                     "structuredContent": structured}})


def read_environ():
    with open("/proc/self/environ", "rb") as f:
        raw = f.read().split(b"\0")
    env = {}
    for kv in raw:
        if kv:
            k, _, v = kv.decode().partition("=")
            env[k] = v
    return env


def tool(rid, params):
    name = params.get("name")
    a = params.get("arguments") or {}
    meta = params.get("_meta") or {}
    if name == "echo":
        if "progressToken" in meta:
            send({"jsonrpc": "2.0", "method": "notifications/progress",
                  "params": {"progressToken": meta["progressToken"], "progress": 1,
                             "total": 2, "message": a.get("text", "")}})
        result(rid, {"text": a.get("text", ""), "pid": os.getpid()}, a.get("text", ""))
    elif name == "slow":
        with state_lock:
            ev = slow_events[json.dumps(rid)]
        if not ev.wait(a.get("ms", 1000) / 1000.0):
            result(rid, {"pid": os.getpid()})
        # cancelled: the spec says no further message for it
    elif name == "env":
        result(rid, {"env": read_environ(), "pid": os.getpid()})
    elif name == "stats":
        with state_lock:
            s = dict(stats)
            s["cancelled_known"] = all(c in stats["slow_ids"] for c in stats["cancelled"])
        s["pid"] = os.getpid()
        result(rid, s)
    elif name == "ask":
        ev = threading.Event()
        box = {}
        with state_lock:
            pending_replies["srv-1"] = (ev, box)
        send({"jsonrpc": "2.0", "id": "srv-1",
              "method": a.get("method", "sampling/createMessage"),
              "params": {"messages": [], "maxTokens": 1}})
        ev.wait(5)
        result(rid, {"reply": box.get("msg")})
    elif name == "big":
        result(rid, {"pid": os.getpid()}, "x" * (9 << 20))
    elif name == "log":
        send({"jsonrpc": "2.0", "method": "notifications/message",
              "params": {"level": "info", "data": "hello from the double"}})
        result(rid, {"pid": os.getpid()})
    else:
        send({"jsonrpc": "2.0", "id": rid,
              "error": {"code": -32602, "message": "unknown tool " + str(name)}})


def handle(msg):
    global calls
    method = msg.get("method")
    rid = msg.get("id")
    if method is None:
        # a response to our server->client request
        with state_lock:
            pr = pending_replies.pop(rid, None)
        if pr:
            pr[1]["msg"] = msg
            pr[0].set()
        return
    if mode == "mute":
        return
    if method == "initialize":
        stats["initialize"] += 1
        if mode == "modern":
            send({"jsonrpc": "2.0", "id": rid,
                  "error": {"code": -32601, "message": "initialize is not supported"}})
            return
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "stdio-mcp-double", "version": "1.0"},
            "instructions": "a test double"}})
        return
    if method == "server/discover":
        if mode != "modern":
            send({"jsonrpc": "2.0", "id": rid,
                  "error": {"code": -32601, "message": "method not found"}})
            return
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "resultType": "complete", "supportedVersions": ["2026-07-28"],
            "capabilities": {"tools": {}},
            "_meta": {"io.modelcontextprotocol/serverInfo":
                      {"name": "stdio-mcp-double-modern", "version": "2.0"}}}})
        return
    if method == "notifications/initialized":
        stats["initialized"] = True
        return
    if method == "notifications/cancelled":
        p = msg.get("params") or {}
        with state_lock:
            stats["cancelled"].append(p.get("requestId"))
            ev = slow_events.pop(json.dumps(p.get("requestId")), None)
        if ev:
            ev.set()
        return
    if rid is None:
        with state_lock:
            stats["notifications"].append(method)
        return
    if mode == "never":
        return
    if method == "tools/call":
        calls += 1
        if mode == "crash-after" and calls >= n_crash:
            sys.stderr.write("double: crashing on call %d\n" % calls)
            sys.stderr.flush()
            os._exit(3)
        if mode == "garbage":
            with out_lock:
                sys.stdout.write("this is not json\n")
                sys.stdout.flush()
            return
        p = msg.get("params") or {}
        if p.get("name") == "crash":
            sys.stderr.write("double: crash tool called\n")
            sys.stderr.flush()
            os._exit(3)
        if p.get("name") == "slow":
            # registered before a notifications/cancelled can be read
            with state_lock:
                stats["slow_ids"].append(rid)
                slow_events[json.dumps(rid)] = threading.Event()
        threading.Thread(target=tool, args=(rid, msg.get("params") or {}), daemon=True).start()
        return
    if method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [
            {"name": n, "inputSchema": {"type": "object"}}
            for n in ("echo", "slow", "env", "stats", "ask", "big", "log", "crash")]}})
        return
    if rid is not None:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no " + method}})


sys.stderr.write("double: started mode=%s\n" % mode)
sys.stderr.flush()
for line in sys.stdin:
    line = line.strip()
    if line:
        handle(json.loads(line))

while stubborn:
    time.sleep(3600)
