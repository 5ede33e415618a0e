/*
 * egress.h - the host-side egress proxy for one sandbox.
 *
 * The sandbox has no route out: its network namespace holds loopback only.
 * Programs inside talk to the forwarder (sandbox/forwarder.h) on
 * 127.0.0.1:PORT, which relays every connection to this proxy's Unix socket,
 * bind-mounted into the sandbox. The proxy speaks, on the same socket:
 *   - HTTP CONNECT host:port (HTTPS_PROXY),
 *   - plain HTTP forward proxying of absolute-form requests (HTTP_PROXY):
 *     rewritten to origin-form, Host set from the URL, Proxy-* and hop-by-hop
 *     headers stripped, "Connection: close" (one request per connection),
 *   - optionally SOCKS5 CONNECT with a domain name (no auth, no IP address
 *     requests, no BIND/UDP).
 * For each request it checks the host and port against the policy
 * (sandbox/netpolicy.h), resolves the name on the host (uv_getaddrinfo: DNS
 * never happens inside), and checks EVERY resolved address. If any address
 * is forbidden the request is refused: a name that mixes public and private
 * records is a rebinding or split-horizon attempt, and picking the "good"
 * subset would hide that from the audit. It then connects to the checked
 * sockaddr itself (preferring the first IPv4 one, one attempt), never
 * re-resolving, so a DNS answer that changes between check and connect
 * cannot redirect the connection. Bytes are then spliced both ways with
 * backpressure (a side stops being read while the other side's write queue
 * is above a high-water mark), an idle timeout and byte counts.
 *
 * Refusals: HTTP 403 with a one-line reason body (400 for malformed
 * requests, 502/504 for DNS/connect failures and timeouts); SOCKS5 reply
 * 0x02 (not allowed by ruleset), 0x04/0x05 for failures, 0x07/0x08 for
 * unsupported commands/address types.
 *
 * Every decision goes through decision_cb, on the loop thread, so the
 * sandbox can audit it (see struct al_egress_decision).
 *
 * Threading: one loop; every function here must be called on the loop's
 * thread.
 */
#ifndef AL_SANDBOX_EGRESS_H
#define AL_SANDBOX_EGRESS_H

#include "sandbox/netpolicy.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

typedef struct al_egress al_egress;

enum al_egress_event {
	AL_EGRESS_DENIED,    /* refused (policy, malformed request, limit); nothing connected */
	AL_EGRESS_CONNECTED, /* allowed and connected to addr */
	AL_EGRESS_FAILED,    /* allowed by host rules, but DNS, connect or a timeout failed */
	AL_EGRESS_CLOSED,    /* a CONNECTED connection ended; byte counts are final */
};

/*
 * One decision. Every pointer is valid only during the callback (copy what
 * you keep). `id` ties a CONNECTED event to its CLOSED event.
 */
struct al_egress_decision {
	enum al_egress_event event;
	uint64_t id;
	const char *proto;   /* "connect", "http", "socks5", or "unknown" */
	const char *host;    /* normalised host as requested; "" when unparsable */
	uint16_t port;	     /* 0 when unparsable */
	const char *addr;    /* numeric address connected to or refused; NULL when none */
	int allowed;	     /* 1 for CONNECTED and CLOSED */
	const char *reason;  /* static, short, safe to log */
	uint64_t bytes_up;   /* bytes sent upstream (the rewritten head included) */
	uint64_t bytes_down; /* bytes from upstream sent to the client */
};

typedef void (*al_egress_decision_cb)(const struct al_egress_decision *d, void *data);

struct al_egress_config {
	/* Where to listen. Its directory must exist, be owned by us and not be
	 * accessible to group or others (0700): the socket is created there and
	 * chmod 0600 with no window in which anyone else can reach it. An
	 * existing socket at the path is replaced; any other file is an error. */
	const char *socket_path;
	/* Borrowed; must outlive the proxy and not change while it runs. */
	const al_netpolicy *policy;
	al_egress_decision_cb decision_cb; /* may be NULL (then nothing is reported) */
	void *cb_data;
	unsigned max_conns;	     /* concurrent client connections; 0: 64 */
	uint64_t idle_timeout_ms;    /* no byte either way for this long: closed; 0: 300 s */
	uint64_t connect_timeout_ms; /* request head + DNS + connect; 0: 15 s */
	int socks5;		     /* 1: also accept SOCKS5 on the same socket */
	/* Hand the socket to the sandbox's (mapped) host uid/gid: chown after
	 * bind when socket_uid != (uid_t)-1. */
	uid_t socket_uid;
	gid_t socket_gid;
};

/*
 * Starts listening. On success *out is the proxy (stop it with
 * al_egress_stop). 0, or a negative errno with a message in err.
 */
int al_egress_start(uv_loop_t *loop, const struct al_egress_config *cfg, al_egress **out, char *err,
		    size_t errlen);
/*
 * Stops accepting, closes every connection (CLOSED events are still
 * reported), unlinks the socket and frees the proxy once its handles have
 * closed: the loop must run on until then. e is invalid after this call.
 */
void al_egress_stop(al_egress *e);
/* Client connections currently open. */
size_t al_egress_active(const al_egress *e);
/*
 * The largest write queue (bytes not yet taken by the kernel) seen on any
 * side of any connection since start: backpressure keeps it near the
 * high-water mark (256 KiB + one 64 KiB read) however fast one side sends.
 */
size_t al_egress_peak_queued(const al_egress *e);

/*
 * Creates a fresh private directory (0700) "PARENT/airlock-egress-<our pid>-XXXXXX"
 * for the socket; the path goes to out[outlen]. 0 or a negative errno.
 */
int al_egress_private_dir(const char *parent, char *out, size_t outlen);
/*
 * Removes PARENT/airlock-egress-<pid>-* directories (and the egress.sock in
 * them) whose pid no longer exists: those of a process killed before it
 * could clean up. Returns how many were removed.
 */
int al_egress_sweep_stale(const char *parent);

#endif
