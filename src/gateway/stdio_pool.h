/*
 * stdio_pool.h - stdio MCP servers behind the gateway: a pool of child
 * processes (`command:` and args of a route) that serve HTTP callers.
 *
 * Each child speaks MCP over stdio (newline-delimited JSON-RPC). The pool
 * starts `size` children, initializes each once (2025-11-25 initialize +
 * notifications/initialized, which every stdio server of today speaks; a
 * child that answers server/discover instead is used in the modern era),
 * and then spreads requests over them, least busy first. Request ids are
 * rewritten per child (callers' ids collide) and restored on the way back,
 * so many callers share one child. Messages a child sends for a request
 * before its response (progress, log messages) are passed on with the
 * caller's id restored; server-to-client requests from a child are
 * answered with an error (a gateway in front of a stateless endpoint has
 * nowhere to send them) unless the caller's era is legacy.
 *
 * A child that exits, writes a line that is not JSON, or stops answering
 * within request_timeout_ms is killed and replaced (backing off 100 ms
 * doubling to 10 s when it keeps dying); its requests in flight are
 * answered -32603 "upstream server exited". A crashed child never takes
 * the gateway down. Children get a clean environment (only `env` plus
 * PATH), their stderr goes to the gateway log, line by line, marked with
 * the route; they are killed (SIGTERM, then SIGKILL after 2 s) on free.
 *
 * Runs on the loop thread.
 */
#ifndef AL_GATEWAY_STDIO_POOL_H
#define AL_GATEWAY_STDIO_POOL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct al_gw_stdio_pool al_gw_stdio_pool;
typedef struct al_gw_stdio_req al_gw_stdio_req;

struct al_gw_stdio_opts {
	const char *route;	     /* for log lines */
	const char *const *argv;     /* argv[0] is the command (absolute or on PATH) */
	const char *const *env;	     /* "K=V", NULL-terminated; may be NULL */
	const char *cwd;	     /* may be NULL */
	size_t size;		     /* children; 0: 2 */
	uint64_t request_timeout_ms; /* 0: 60 s */
};

/* 0, or -errno with a message in err (the command cannot be found, ...). */
int al_gw_stdio_pool_new(uv_loop_t *loop, const struct al_gw_stdio_opts *opts,
			 al_gw_stdio_pool **out, char *err, size_t errlen);
/* Kills the children and frees; requests in flight get no more callbacks. */
void al_gw_stdio_pool_free(al_gw_stdio_pool *p);
/* Children currently up and initialized (for /readyz and /metrics). */
size_t al_gw_stdio_pool_ready(const al_gw_stdio_pool *p);

/*
 * A message for the caller: `msg` is borrowed for the call. final == 0: a
 * notification belonging to the request (progress...); final == 1: the
 * response (result or error), after which req is gone.
 */
typedef void (*al_gw_stdio_cb)(void *ud, const json_t *msg, int final);

/*
 * Sends one JSON-RPC message (`msg` borrowed) to a child. A request gets
 * its messages through cb; a notification gets cb(ud, NULL, 1) at once
 * when written. The pool answers "initialize" itself from the child's
 * handshake (so each caller's initialize costs no child round trip) and
 * "server/discover" likewise. 0, -EAGAIN (no child ready: 503 upstream),
 * -ENOMEM. *out (may be NULL) is the handle for cancel.
 */
int al_gw_stdio_pool_send(al_gw_stdio_pool *p, const json_t *msg, al_gw_stdio_cb cb, void *ud,
			  al_gw_stdio_req **out);
/* The caller went away: notifications/cancelled goes to the child, no more callbacks. */
void al_gw_stdio_req_cancel(al_gw_stdio_req *r);

#endif
