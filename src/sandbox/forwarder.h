/*
 * forwarder.h - the in-sandbox end of the egress path.
 *
 * Runs inside the sandbox's network namespace (loopback only), in a process
 * of its own: it listens on 127.0.0.1:PORT and relays every TCP connection,
 * byte for byte, to the host proxy's Unix socket (sandbox/egress.h),
 * bind-mounted into the sandbox. Programs inside are given
 * HTTP_PROXY=HTTPS_PROXY=http://127.0.0.1:PORT. It understands no protocol,
 * resolves no name and opens no other socket: every decision is the host
 * proxy's. One poll() loop, no libuv, no threads, so it is cheap to fork
 * into the namespace and easy to confine with seccomp.
 *
 * Backpressure: each direction has one fixed buffer that is only refilled
 * once it has been written out, so a slow reader stalls its writer rather
 * than growing memory. Half-closes are passed on (shutdown(SHUT_WR)).
 *
 * Memory: one anonymous mapping made when serving starts, never malloc (the
 * forwarder runs after a raw clone of a multithreaded host; see init.h), and
 * no stdio: messages go to fd 2 with write(2).
 */
#ifndef AL_SANDBOX_FORWARDER_H
#define AL_SANDBOX_FORWARDER_H

#include <stdint.h>

struct al_forwarder_config {
	const char *proxy_path; /* the proxy's Unix socket as seen from inside */
	unsigned max_conns;	/* concurrent relayed connections; 0: 64 */
	int stop_fd;		/* -1, or an fd whose readability or hang-up stops serving */
};

/*
 * Binds and listens on 127.0.0.1:port (0: an ephemeral port). Returns the
 * listening fd (non-blocking, close-on-exec; the caller owns it) and the
 * bound port in *bound (may be NULL), or a negative errno.
 */
int al_forwarder_listen(uint16_t port, uint16_t *bound);

/*
 * Relays connections accepted on listen_fd until cfg->stop_fd fires: 0 then,
 * or a negative errno on a fatal error. Every relayed connection is closed
 * before it returns; listen_fd stays open (the caller's).
 */
int al_forwarder_serve(int listen_fd, const struct al_forwarder_config *cfg);

/*
 * The whole forwarder for a freshly forked child inside the namespace:
 * listens on 127.0.0.1:port, writes the bound port as decimal text and a
 * newline to ready_fd (then closes it; -1 to skip), and serves until
 * stop_fd fires (-1: until killed). Returns the process exit status to use
 * (0, or 1 after a message on stderr).
 */
int al_forwarder_main(uint16_t port, const char *proxy_path, int ready_fd, int stop_fd);

#endif
