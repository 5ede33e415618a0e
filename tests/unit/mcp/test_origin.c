/*
 * Unit tests for src/mcp/origin.c: the Host and Origin checks that keep a
 * DNS-rebinding page away from a local server.
 */
#include "mcp/origin.h"
#include "unit/unit.h"

#include <errno.h>

static const char *const *lh = al_mcp_localhost_names;

AL_TEST(mcp_origin_host)
{
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("localhost", lh), 1);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("LOCALHOST:8080", lh), 1);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("127.0.0.1:1", lh), 1);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("127.0.0.1:65535", lh), 1);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("[::1]", lh), 1);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("[::1]:3000", lh), 1);

	AL_ASSERT_INT_EQ(al_mcp_host_allowed("evil.example.com", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("localhost.evil.example", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("127.0.0.1.nip.io", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("localhos", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("::1", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("[::1", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("[::1]x", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("localhost:", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("localhost:0", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("localhost:080", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("localhost:65536", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("localhost:80:80", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("localhost:+80", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed(":80", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed(NULL, lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_host_allowed("localhost", NULL), 0);
}

AL_TEST(mcp_origin_origin)
{
	static const char *const custom[] = {"mcp.corp.example", NULL};

	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("http://localhost:5173", lh), 1);
	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("HTTPS://127.0.0.1", lh), 1);
	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("http://[::1]:8080", lh), 1);
	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("https://mcp.corp.example", custom), 1);

	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("http://evil.example.com", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("null", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("file://localhost", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("http://localhost/path", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("http://user@localhost", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("http://localhost@evil.example", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("http://", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_origin_allowed("localhost", lh), 0);
	AL_ASSERT_INT_EQ(al_mcp_origin_allowed(NULL, lh), 0);
}

AL_TEST(mcp_origin_check)
{
	/* The conformance suite's two probes. */
	AL_ASSERT_INT_EQ(al_mcp_origin_check("evil.example.com", "http://evil.example.com", lh),
			 -EPERM);
	AL_ASSERT_INT_EQ(al_mcp_origin_check("localhost:3000", "http://localhost:3000", lh), 0);
	/* Non-browser clients send no Origin. */
	AL_ASSERT_INT_EQ(al_mcp_origin_check("127.0.0.1:3000", NULL, lh), 0);
	/* Either header alone is enough to refuse. */
	AL_ASSERT_INT_EQ(al_mcp_origin_check("localhost", "http://evil.example", lh), -EPERM);
	AL_ASSERT_INT_EQ(al_mcp_origin_check("evil.example", NULL, lh), -EPERM);
	AL_ASSERT_INT_EQ(al_mcp_origin_check(NULL, NULL, lh), -EPERM);
}
