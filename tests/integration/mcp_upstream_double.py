#!/usr/bin/env python3
# TEST DOUBLE - not an MCP server implementation. A scripted upstream for
# the gateway's integration tests (tests/integration/test_gateway*.sh), to
# be replaced by tickets-mcp once it exists. It answers just enough MCP over
# HTTP to exercise the gateway: tools/list (JSON, or SSE with ?sse=1),
# tools/call (JSON echo; "slow_stream" as an SSE stream whose first event is
# flushed at once and which then ticks until the client leaves; "big" with
# arguments.mb MiB of text), resources/read, a GET ?sse_tools=1 stream
# replaying a tools/list answer, tools/list ?sse_dup=1 with "tools" twice,
# and 202 for notifications. Every request is appended to --log as one JSON
# line (path, query, headers), and a stream that loses its reader appends
# {"event": "cancelled"}, so a test can see both what reached the upstream
# and that the gateway cancelled it.
#
#   mcp_upstream_double.py --port-file F --log F [--cert PEM --key PEM] [--bind ADDR]
import argparse
import json
import socket
import socketserver
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOOLS = [
    {"name": "search_tickets", "description": "search", "inputSchema": {"type": "object"}},
    {"name": "get_ticket", "description": "get", "inputSchema": {"type": "object"}},
    {"name": "delete_ticket", "description": "delete", "inputSchema": {"type": "object"}},
    {"name": "slow_stream", "description": "streams", "inputSchema": {"type": "object"}},
]

lock = threading.Lock()
args = None


def log(obj):
    with lock:
        with open(args.log, "a") as f:
            f.write(json.dumps(obj) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def send_json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def event(self, obj):
        self.wfile.write(b"event: message\ndata: " + json.dumps(obj).encode() + b"\n\n")
        self.wfile.flush()

    def do_GET(self):
        log({"method": "GET", "path": self.path, "headers": dict(self.headers.items())})
        if "sse_tools=1" in self.path:
            # A resumed stream (Last-Event-ID) replaying a tools/list answer.
            self.start_sse()
            self.event({"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS}})
            return
        self.send_json({"ok": True, "path": self.path})

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "11")
        self.end_headers()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        log({"method": "POST", "path": self.path, "headers": dict(self.headers.items()),
             "body": raw.decode("utf-8", "replace")})
        msg = json.loads(raw)
        mid = msg.get("id")
        method = msg.get("method")
        if mid is None:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        params = msg.get("params") or {}
        if method == "tools/list":
            res = {"jsonrpc": "2.0", "id": mid, "result": {"tools": TOOLS}}
            if "sse_dup=1" in self.path:
                # "tools" twice: a last-wins client parser sees the second.
                self.start_sse()
                self.wfile.write(b'data: {"jsonrpc":"2.0","id":%s,"result":{"tools":[],'
                                 b'"tools":%s}}\n\n' % (json.dumps(mid).encode(),
                                                         json.dumps(TOOLS).encode()))
                self.wfile.flush()
            elif "sse=1" in self.path:
                self.start_sse()
                self.event({"jsonrpc": "2.0", "method": "notifications/progress",
                            "params": {"progressToken": 1, "progress": 1}})
                self.event(res)
            else:
                self.send_json(res)
        elif method == "tools/call" and params.get("name") == "vanish":
            # Read and logged ("ran"), then the connection closes unanswered.
            self.close_connection = True
            return
        elif method == "tools/call" and params.get("name") == "slow_stream":
            self.start_sse()
            try:
                self.event({"jsonrpc": "2.0", "method": "notifications/progress",
                            "params": {"progressToken": 1, "progress": 0}})
                for i in range(100):  # up to 10 s unless the reader leaves
                    time.sleep(0.1)
                    self.wfile.write(b": tick\n\n")
                    self.wfile.flush()
                    if params.get("arguments", {}).get("ticks") == i:
                        self.event({"jsonrpc": "2.0", "id": mid, "result": {
                            "content": [{"type": "text", "text": "done"}]}})
                        return
                log({"event": "finished"})
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                log({"event": "cancelled"})
        elif method == "tools/call" and params.get("name") == "big":
            # A large answer, sent as fast as the socket takes it.
            mb = int(params.get("arguments", {}).get("mb", 1))
            self.send_json({"jsonrpc": "2.0", "id": mid, "result": {
                "content": [{"type": "text", "text": "x" * (mb << 20)}]}})
        elif method == "tools/call":
            self.send_json({"jsonrpc": "2.0", "id": mid, "result": {
                "content": [{"type": "text", "text": json.dumps(params.get("arguments", {}))}]}})
        elif method == "resources/read":
            self.send_json({"jsonrpc": "2.0", "id": mid, "result": {
                "contents": [{"uri": params.get("uri"), "text": "hello"}]}})
        else:
            self.send_json({"jsonrpc": "2.0", "id": mid,
                            "error": {"code": -32601, "message": "Method not found"}}, 404)


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--cert")
    p.add_argument("--key")
    args = p.parse_args()
    if ":" in args.bind:
        Server.address_family = socket.AF_INET6
    srv = Server((args.bind, 0), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
