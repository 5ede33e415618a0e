# Helpers for the tests that drive an MCP server built on src/mcp (sourced
# after lib.sh): requests over Streamable HTTP with curl in either era, and
# checks of the answer in python3 (which reads JSON and SSE bodies alike).
#
#   mcp_start NAME CMD...      starts CMD (which must log "listening on URL"
#                              to stderr, port 0 allowed), sets URL and PID
#   mcp_post modern METHOD PARAMS-JSON [CURL-ARGS...]
#   mcp_post legacy METHOD PARAMS-JSON [CURL-ARGS...]   (uses $SID when set)
#                              -> $T/code, $T/hdr, $T/body
#   mcp_check 'PYTHON-EXPR' 'what'  fails unless EXPR holds; in scope: code
#                              (int), hdr (dict, lower-case names), r (the
#                              JSON-RPC response, from JSON or the last SSE
#                              event), res (r["result"] or None), err
#                              (r["error"] or None), text (res's first text
#                              block or None), sc (structuredContent or None)

command -v python3 >/dev/null || { echo "python3 needed"; exit 77; }
command -v curl >/dev/null || { echo "curl needed"; exit 77; }

MCP_ID=0
SID=""

cat >"$T/mcp.py" <<'PY'
import json, sys

def build(era, method, params, rid):
    p = json.loads(params)
    if era == "modern":
        meta = p.setdefault("_meta", {})
        meta.setdefault("io.modelcontextprotocol/protocolVersion", "2026-07-28")
        meta.setdefault("io.modelcontextprotocol/clientCapabilities", {})
        meta.setdefault("io.modelcontextprotocol/clientInfo", {"name": "it", "version": "1"})
    msg = {"jsonrpc": "2.0", "method": method, "params": p}
    if rid != "none":
        msg["id"] = int(rid)
    name = p.get("name") or p.get("uri") or ""
    print(json.dumps(msg))
    print(name)

def load(code_f, hdr_f, body_f):
    hdr = {}
    for line in open(hdr_f, encoding="latin-1"):
        if ":" in line:
            k, v = line.split(":", 1)
            hdr[k.strip().lower()] = v.strip()
    raw = open(body_f, encoding="utf-8").read()
    r = None
    if hdr.get("content-type", "").startswith("text/event-stream"):
        for ev in raw.split("\n\n"):
            data = "\n".join(l[5:].lstrip(" ") for l in ev.split("\n") if l.startswith("data:"))
            if data:
                m = json.loads(data)
                if "result" in m or "error" in m:
                    r = m
    elif raw.strip():
        r = json.loads(raw)
    return int(open(code_f).read() or 0), hdr, r

if sys.argv[1] == "build":
    build(*sys.argv[2:6])
elif sys.argv[1] == "check":
    code, hdr, r = load(*sys.argv[4:7])
    res = r.get("result") if isinstance(r, dict) else None
    err = r.get("error") if isinstance(r, dict) else None
    sc = res.get("structuredContent") if isinstance(res, dict) else None
    text = None
    if isinstance(res, dict) and res.get("content"):
        text = res["content"][0].get("text")
    try:
        ok = eval(sys.argv[2])
    except Exception as e:
        ok = False
        print("check raised %r" % e, file=sys.stderr)
    if not ok:
        print("FAIL: %s\n  code %s\n  response %s" % (sys.argv[3], code, json.dumps(r)[:2000]),
              file=sys.stderr)
        sys.exit(1)
PY

# mcp_start NAME CMD...: log in $T/NAME.log; waits up to 10 s for the address.
mcp_start() {
	name=$1; shift
	"$@" 2>"$T/$name.log" &
	PID=$!
	PIDS="$PIDS $PID"
	i=0
	while :; do
		URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$T/$name.log" | head -n 1)
		[ -n "$URL" ] && break
		kill -0 "$PID" 2>/dev/null || fail "$name exited early: $(cat "$T/$name.log")"
		i=$((i + 1)); [ $i -lt 100 ] || fail "$name did not come up: $(cat "$T/$name.log")"
		sleep 0.1
	done
}

# mcp_post ERA METHOD PARAMS [CURL-ARGS...]; a method starting with
# "notifications/" is sent without an id.
mcp_post() {
	era=$1; method=$2; params=$3; shift 3
	MCP_ID=$((MCP_ID + 1))
	rid=$MCP_ID
	case $method in notifications/*) rid=none ;; esac
	python3 "$T/mcp.py" build "$era" "$method" "$params" "$rid" >"$T/req" ||
		fail "cannot build $method $params"
	body=$(sed -n 1p "$T/req")
	mname=$(sed -n 2p "$T/req")
	if [ "$era" = modern ]; then
		set -- -H "MCP-Protocol-Version: 2026-07-28" -H "Mcp-Method: $method" "$@"
		case $method in tools/call | resources/read | prompts/get)
			set -- -H "Mcp-Name: $mname" "$@" ;;
		esac
	else
		[ "$method" = initialize ] || set -- -H "MCP-Protocol-Version: 2025-11-25" "$@"
		[ -z "$SID" ] || set -- -H "Mcp-Session-Id: $SID" "$@"
	fi
	curl -sS --max-time 60 -o "$T/body" -D "$T/hdr" -w '%{http_code}' \
		-H 'Content-Type: application/json' \
		-H 'Accept: application/json, text/event-stream' \
		"$@" --data-binary "$body" "$URL" >"$T/code" || fail "curl $method failed"
}

# mcp_check EXPR WHAT
mcp_check() {
	python3 "$T/mcp.py" check "$1" "$2" "$T/code" "$T/hdr" "$T/body" || exit 1
}
