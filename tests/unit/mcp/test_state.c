/*
 * Unit tests for src/mcp/state.c: sealed MRTR requestState. Round trips,
 * and every way a token must fail: another principal, request, key or
 * time, any altered character, truncation, foreign encodings.
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "mcp/state.h"
#include "unit/unit.h"

#include <errno.h>
#include <string.h>

static const unsigned char key[32] = "0123456789abcdef0123456789abcde";
static const unsigned char key2[32] = "0123456789abcdef0123456789abcdX";

static void bind_of(const char *args, unsigned char out[32])
{
	json_t *a = args ? json_loads(args, 0, NULL) : NULL;
	AL_ASSERT_INT_EQ(al_mcp_state_bind("tools/call", "t", a, out), 0);
	json_decref(a);
}

static char *seal(const char *principal, const unsigned char *bind, int64_t now, int64_t ttl,
		  const char *payload)
{
	al_buf b = {0};
	AL_ASSERT_INT_EQ(
	    al_mcp_state_seal(key, principal, bind, now, ttl, payload, strlen(payload), &b), 0);
	return al_buf_steal(&b, NULL);
}

static int open_tok(const unsigned char *k, const char *principal, const unsigned char *bind,
		    int64_t now, const char *tok, al_buf *out)
{
	al_buf_reset(out);
	return al_mcp_state_open(k, principal, bind, now, tok, strlen(tok), out);
}

AL_TEST(mcp_state_round_trip)
{
	unsigned char b[32];
	al_buf out = {0};
	char *tok, *tok2;

	bind_of("{\"x\":1}", b);
	tok = seal("alice", b, 1000, 60000, "{\"step\":2}");
	AL_ASSERT(strncmp(tok, "v1.", 3) == 0);
	AL_ASSERT(strstr(tok, "step") == NULL); /* the payload is not readable */
	AL_ASSERT_INT_EQ(open_tok(key, "alice", b, 1000, tok, &out), 0);
	AL_ASSERT_STR_EQ(out.data, "{\"step\":2}");
	AL_ASSERT_INT_EQ(open_tok(key, "alice", b, 60999, tok, &out), 0);
	/* Two seals of the same state differ (fresh nonce). */
	tok2 = seal("alice", b, 1000, 60000, "{\"step\":2}");
	AL_ASSERT(strcmp(tok, tok2) != 0);
	al_free(tok);
	al_free(tok2);

	/* Empty payload, no principal. */
	tok = seal(NULL, b, 0, 1, "");
	AL_ASSERT_INT_EQ(open_tok(key, NULL, b, 0, tok, &out), 0);
	AL_ASSERT_INT_EQ(out.len, 0);
	AL_ASSERT_INT_EQ(open_tok(key, "", b, 0, tok, &out), 0); /* NULL and "" are one principal */
	al_free(tok);
	al_buf_free(&out);
}

AL_TEST(mcp_state_refusals)
{
	unsigned char b[32], other[32];
	al_buf out = {0};
	char *tok;

	bind_of("{\"x\":1}", b);
	bind_of("{\"x\":2}", other);
	tok = seal("alice", b, 1000, 60000, "payload");
	AL_ASSERT_INT_EQ(open_tok(key, "mallory", b, 1000, tok, &out), -EINVAL);
	AL_ASSERT_INT_EQ(open_tok(key, NULL, b, 1000, tok, &out), -EINVAL);
	AL_ASSERT_INT_EQ(open_tok(key, "alice", other, 1000, tok, &out), -EINVAL);
	AL_ASSERT_INT_EQ(open_tok(key2, "alice", b, 1000, tok, &out), -EINVAL);
	AL_ASSERT_INT_EQ(open_tok(key, "alice", b, 61000, tok, &out), -ESTALE);
	AL_ASSERT_INT_EQ(out.len, 0);

	/* Every altered character fails, including changes confined to the
	 * unused low bits of the last one (A..P differ only there). */
	for (size_t i = 0; tok[i]; i++) {
		static const char subst[] = "ABPQgw-_";
		char save = tok[i];
		for (const char *c = subst; *c; c++) {
			if (*c == save)
				continue;
			tok[i] = *c;
			AL_ASSERT_INT_NE(open_tok(key, "alice", b, 1000, tok, &out), 0);
		}
		tok[i] = save;
	}
	/* Truncations fail. */
	for (size_t n = 0; n < strlen(tok); n++) {
		al_buf_reset(&out);
		AL_ASSERT_INT_EQ(al_mcp_state_open(key, "alice", b, 1000, tok, n, &out), -EINVAL);
	}
	AL_ASSERT_INT_EQ(open_tok(key, "alice", b, 1000, tok, &out), 0);

	/* Foreign spellings of the same bytes are not ours. */
	char *alt = al_strdup(tok);
	for (size_t i = 3; alt[i]; i++)
		if (alt[i] == '-' || alt[i] == '_')
			alt[i] = alt[i] == '-' ? '+' : '/';
	if (strcmp(alt, tok) != 0)
		AL_ASSERT_INT_EQ(open_tok(key, "alice", b, 1000, alt, &out), -EINVAL);
	al_free(alt);
	AL_ASSERT_INT_EQ(open_tok(key, "alice", b, 1000, "v1.", &out), -EINVAL);
	AL_ASSERT_INT_EQ(open_tok(key, "alice", b, 1000, "v2.AAAA", &out), -EINVAL);
	AL_ASSERT_INT_EQ(open_tok(key, "alice", b, 1000, "", &out), -EINVAL);
	AL_ASSERT_INT_EQ(
	    open_tok(key, "alice", b, 1000, "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &out),
	    -EINVAL);
	al_free(tok);
	al_buf_free(&out);
}

AL_TEST(mcp_state_limits)
{
	unsigned char b[32];
	al_buf out = {0};
	size_t n = AL_MCP_STATE_MAX_PAYLOAD;
	char *big = al_malloc(n + 1);

	bind_of(NULL, b);
	memset(big, 'x', n);
	AL_ASSERT_INT_EQ(al_mcp_state_seal(key, "p", b, 0, 10, big, n, &out), 0);
	{
		al_buf pl = {0};
		AL_ASSERT_INT_EQ(al_mcp_state_open(key, "p", b, 0, out.data, out.len, &pl), 0);
		AL_ASSERT_INT_EQ(pl.len, n);
		al_buf_free(&pl);
	}
	al_buf_reset(&out);
	AL_ASSERT_INT_EQ(al_mcp_state_seal(key, "p", b, 0, 10, big, n + 1, &out), -EINVAL);
	AL_ASSERT_INT_EQ(al_mcp_state_seal(key, "p", b, 0, 0, "x", 1, &out), -EINVAL);
	AL_ASSERT_INT_EQ(al_mcp_state_seal(key, "p", b, INT64_MAX - 5, 10, "x", 1, &out), -EINVAL);
	al_free(big);
	al_buf_free(&out);
}

AL_TEST(mcp_state_binding)
{
	unsigned char a[32], a2[32], c[32], d[32], e[32];
	json_t *args1 = json_loads("{\"a\":1,\"b\":[1,2]}", 0, NULL);
	json_t *args2 = json_loads("{\"b\":[1,2],\"a\":1}", 0, NULL);

	/* Key order does not matter; method, name and values do. */
	AL_ASSERT_INT_EQ(al_mcp_state_bind("tools/call", "t", args1, a), 0);
	AL_ASSERT_INT_EQ(al_mcp_state_bind("tools/call", "t", args2, a2), 0);
	AL_ASSERT_MEM_EQ(a, a2, 32);
	AL_ASSERT_INT_EQ(al_mcp_state_bind("prompts/get", "t", args1, c), 0);
	AL_ASSERT_INT_EQ(al_mcp_state_bind("tools/call", "u", args1, d), 0);
	AL_ASSERT_INT_EQ(al_mcp_state_bind("tools/call", NULL, args1, e), 0);
	AL_ASSERT(memcmp(a, c, 32) != 0 && memcmp(a, d, 32) != 0 && memcmp(a, e, 32) != 0);
	AL_ASSERT_INT_EQ(al_mcp_state_bind(NULL, "t", args1, e), -EINVAL);
	json_decref(args1);
	json_decref(args2);
}
