/* peer.c - the scripted loopback peer of unit tests (see peer.h). */
#include "unit/support/peer.h"

#include "unit/unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn_arg {
	struct al_test_peer *p;
	int fd;
};

static void *conn_main(void *arg)
{
	struct conn_arg *a = arg;
	struct al_test_peer *p = a->p;
	int fd = a->fd;

	free(a);
	p->serve(fd, p->ud);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct al_test_peer *p = arg;

	for (;;) {
		int fd = accept(p->lfd, NULL, NULL), i;
		struct conn_arg *a;

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			break; /* shut down by al_test_peer_stop */
		}
		i = atomic_fetch_add(&p->nconns, 1);
		if (i >= AL_TEST_PEER_MAX_CONNS || (a = malloc(sizeof(*a))) == NULL) {
			close(fd);
			continue;
		}
		a->p = p;
		a->fd = fd;
		if (pthread_create(&p->conns[i], NULL, conn_main, a) != 0) {
			/* Never joined: mark the slot unused. */
			free(a);
			close(fd);
			p->conns[i] = 0;
		}
	}
	return NULL;
}

void al_test_peer_start(struct al_test_peer *p, al_test_serve_fn serve, void *ud)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int one = 1;

	memset(p, 0, sizeof(*p));
	p->serve = serve;
	p->ud = ud;
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	AL_ASSERT(p->lfd >= 0);
	setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	AL_ASSERT_INT_EQ(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	AL_ASSERT_INT_EQ(listen(p->lfd, 512), 0);
	AL_ASSERT_INT_EQ(getsockname(p->lfd, (struct sockaddr *)&sa, &sl), 0);
	p->port = ntohs(sa.sin_port);
	AL_ASSERT_INT_EQ(pthread_create(&p->acceptor, NULL, accept_main, p), 0);
}

void al_test_peer_stop(struct al_test_peer *p)
{
	int n;

	shutdown(p->lfd, SHUT_RDWR); /* wakes accept() */
	pthread_join(p->acceptor, NULL);
	close(p->lfd);
	n = atomic_load(&p->nconns);
	for (int i = 0; i < n && i < AL_TEST_PEER_MAX_CONNS; i++)
		if (p->conns[i])
			pthread_join(p->conns[i], NULL);
}

void al_test_send_all(int fd, const void *s, size_t n)
{
	const char *c = s;

	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		c += w;
		n -= (size_t)w;
	}
}

void al_test_send_str(int fd, const char *s)
{
	al_test_send_all(fd, s, strlen(s));
}
