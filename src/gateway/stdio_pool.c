/*
 * stdio_pool.c - PLACEHOLDER so the gateway links before the real pool
 * (another branch) is merged: every call fails with -ENOSYS, so a config
 * with a stdio route is refused at start-up with that reason. To be
 * replaced by the implementation of gateway/stdio_pool.h at merge.
 */
#include "gateway/stdio_pool.h"

#include <errno.h>
#include <stdio.h>

int al_gw_stdio_pool_new(uv_loop_t *loop, const struct al_gw_stdio_opts *opts,
			 al_gw_stdio_pool **out, char *err, size_t errlen)
{
	(void)loop;
	(void)opts;
	*out = NULL;
	if (err && errlen)
		snprintf(err, errlen, "stdio upstreams are not built into this binary yet");
	return -ENOSYS;
}

void al_gw_stdio_pool_free(al_gw_stdio_pool *p)
{
	(void)p;
}

size_t al_gw_stdio_pool_ready(const al_gw_stdio_pool *p)
{
	(void)p;
	return 0;
}

int al_gw_stdio_pool_send(al_gw_stdio_pool *p, const json_t *msg, al_gw_stdio_cb cb, void *ud,
			  al_gw_stdio_req **out)
{
	(void)p;
	(void)msg;
	(void)cb;
	(void)ud;
	if (out)
		*out = NULL;
	return -ENOSYS;
}

void al_gw_stdio_req_cancel(al_gw_stdio_req *r)
{
	(void)r;
}
