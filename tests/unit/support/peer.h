/*
 * peer.h - a scripted loopback TCP peer for unit tests: an acceptor thread on
 * 127.0.0.1 (a free port) that hands each connection to `serve` on a thread
 * of its own. The scripted upstreams of the outbound client, the worker's
 * protocol client and the model provider are built on it.
 *
 * serve owns fd (close it, e.g. with al_test_close_drained) and runs until it
 * returns; al_test_peer_stop stops accepting and joins every connection
 * thread. Past AL_TEST_PEER_MAX_CONNS connections are closed at once.
 */
#ifndef AL_TESTS_PEER_H
#define AL_TESTS_PEER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#define AL_TEST_PEER_MAX_CONNS 256

typedef void (*al_test_serve_fn)(int fd, void *ud);

struct al_test_peer {
	int lfd;
	int port;
	pthread_t acceptor;
	pthread_t conns[AL_TEST_PEER_MAX_CONNS];
	atomic_int nconns;
	al_test_serve_fn serve;
	void *ud;
};

/* Listens and starts accepting; fails the test on any error. */
void al_test_peer_start(struct al_test_peer *p, al_test_serve_fn serve, void *ud);
/* Stops accepting, then waits for every connection's serve to return. */
void al_test_peer_stop(struct al_test_peer *p);

/* Writes all n bytes (or stops at the first error: the client went away). */
void al_test_send_all(int fd, const void *s, size_t n);
void al_test_send_str(int fd, const char *s);

#endif
