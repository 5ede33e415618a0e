/*
 * test_netpolicy.c - the allowlist grammar, host normalisation, the
 * numeric-host traps and every address class, table-driven.
 */
#include "unit/unit.h"

#include "core/alloc.h"
#include "sandbox/netpolicy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static enum al_addr_class classify_str(const char *s)
{
	struct sockaddr_storage ss = {0};

	if (strchr(s, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, s, &s6->sin6_addr) != 1)
			al_test_fail(__FILE__, __LINE__, "bad v6 fixture %s", s);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, s, &s4->sin_addr) != 1)
			al_test_fail(__FILE__, __LINE__, "bad v4 fixture %s", s);
	}
	return al_netaddr_classify((struct sockaddr *)&ss);
}

AL_TEST(netpolicy_classify_table)
{
	static const struct {
		const char *addr;
		enum al_addr_class c;
	} cases[] = {
	    {"8.8.8.8", AL_ADDR_PUBLIC},
	    {"1.1.1.1", AL_ADDR_PUBLIC},
	    {"127.0.0.1", AL_ADDR_LOOPBACK},
	    {"127.255.255.254", AL_ADDR_LOOPBACK},
	    {"10.0.0.1", AL_ADDR_PRIVATE},
	    {"172.16.0.1", AL_ADDR_PRIVATE},
	    {"172.31.255.255", AL_ADDR_PRIVATE},
	    {"172.32.0.1", AL_ADDR_PUBLIC},
	    {"172.15.255.255", AL_ADDR_PUBLIC},
	    {"192.168.1.1", AL_ADDR_PRIVATE},
	    {"100.64.0.1", AL_ADDR_CGNAT},
	    {"100.127.255.255", AL_ADDR_CGNAT},
	    {"100.128.0.1", AL_ADDR_PUBLIC},
	    {"169.254.1.1", AL_ADDR_LINK_LOCAL},
	    {"169.254.169.254", AL_ADDR_METADATA},
	    {"224.0.0.1", AL_ADDR_MULTICAST},
	    {"239.255.255.250", AL_ADDR_MULTICAST},
	    {"0.0.0.0", AL_ADDR_UNSPECIFIED},
	    {"0.1.2.3", AL_ADDR_UNSPECIFIED},
	    {"255.255.255.255", AL_ADDR_BROADCAST},
	    {"240.0.0.1", AL_ADDR_RESERVED},
	    {"192.0.2.1", AL_ADDR_RESERVED},
	    {"198.18.0.1", AL_ADDR_RESERVED},
	    {"::1", AL_ADDR_LOOPBACK},
	    {"::", AL_ADDR_UNSPECIFIED},
	    {"fe80::1", AL_ADDR_LINK_LOCAL},
	    {"febf::1", AL_ADDR_LINK_LOCAL},
	    {"fd00:ec2::254", AL_ADDR_METADATA},
	    {"fd00::1", AL_ADDR_UNIQUE_LOCAL},
	    {"fc00::1", AL_ADDR_UNIQUE_LOCAL},
	    {"fec0::1", AL_ADDR_UNIQUE_LOCAL},
	    {"ff02::1", AL_ADDR_MULTICAST},
	    {"::ffff:127.0.0.1", AL_ADDR_V4_EMBEDDED},
	    {"::ffff:8.8.8.8", AL_ADDR_V4_EMBEDDED},
	    {"::127.0.0.1", AL_ADDR_V4_EMBEDDED},
	    {"64:ff9b::a9fe:a9fe", AL_ADDR_V4_EMBEDDED},
	    {"2002:7f00:1::", AL_ADDR_V4_EMBEDDED},
	    {"2001:db8::1", AL_ADDR_RESERVED},
	    {"2606:4700::1111", AL_ADDR_PUBLIC},
	    {"4000::1", AL_ADDR_RESERVED},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum al_addr_class got = classify_str(cases[i].addr);
		if (got != cases[i].c)
			al_test_fail(__FILE__, __LINE__, "%s: got %s, want %s", cases[i].addr,
				     al_addr_class_name(got), al_addr_class_name(cases[i].c));
	}
	struct sockaddr sa = {.sa_family = AF_UNIX};
	AL_ASSERT_INT_EQ(al_netaddr_classify(&sa), AL_ADDR_INVALID);
	AL_ASSERT_INT_EQ(al_netaddr_classify(NULL), AL_ADDR_INVALID);
	AL_ASSERT_STR_EQ(al_addr_class_name(AL_ADDR_METADATA), "metadata");
}

static int check(const al_netpolicy *p, const char *host, uint16_t port, const char **why,
		 struct al_netpolicy_target *t)
{
	return al_netpolicy_check_host(p, host, strlen(host), port, t, why);
}

AL_TEST(netpolicy_host_rules)
{
	al_netpolicy *p = al_netpolicy_new();
	struct al_netpolicy_target t;
	const char *why;
	char err[128];

	AL_ASSERT_NOT_NULL(p);
	AL_ASSERT_INT_EQ(al_netpolicy_allow_host(p, "Example.COM.", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_netpolicy_allow_host(p, "*.pkg.dev:8443", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_netpolicy_allow_host(p, "any.test:*", err, sizeof(err)), 0);

	AL_ASSERT_INT_EQ(check(p, "example.com", 443, &why, &t), 1);
	AL_ASSERT_STR_EQ(t.host, "example.com");
	AL_ASSERT_INT_EQ(t.is_literal, 0);
	AL_ASSERT_INT_EQ(check(p, "EXAMPLE.com.", 80, &why, &t), 1);
	AL_ASSERT_STR_EQ(t.host, "example.com");
	AL_ASSERT_INT_EQ(check(p, "example.com", 8080, &why, &t), 0);
	AL_ASSERT_STR_EQ(why, "port not allowed for this host");
	AL_ASSERT_STR_EQ(t.host, "example.com");
	AL_ASSERT_INT_EQ(check(p, "www.example.com", 443, &why, &t), 0);
	AL_ASSERT_STR_EQ(why, "host not in allowlist");
	AL_ASSERT_INT_EQ(check(p, "example.com.evil", 443, &why, &t), 0);
	AL_ASSERT_INT_EQ(check(p, "notexample.com", 443, &why, &t), 0);

	/* The wildcard covers subdomains only, on its own port only. */
	AL_ASSERT_INT_EQ(check(p, "a.pkg.dev", 8443, &why, &t), 1);
	AL_ASSERT_INT_EQ(check(p, "a.b.PKG.dev", 8443, &why, &t), 1);
	AL_ASSERT_INT_EQ(check(p, "pkg.dev", 8443, &why, &t), 0);
	AL_ASSERT_INT_EQ(check(p, "xpkg.dev", 8443, &why, &t), 0);
	AL_ASSERT_INT_EQ(check(p, ".pkg.dev", 8443, &why, &t), 0);
	AL_ASSERT_INT_EQ(check(p, "a.pkg.dev", 443, &why, &t), 0);
	AL_ASSERT_STR_EQ(why, "port not allowed for this host");

	AL_ASSERT_INT_EQ(check(p, "any.test", 1, &why, &t), 1);
	AL_ASSERT_INT_EQ(check(p, "any.test", 65535, &why, &t), 1);
	AL_ASSERT_INT_EQ(check(p, "any.test", 0, &why, &t), 0);

	/* Non-ASCII, bad syntax. */
	AL_ASSERT_INT_EQ(check(p, "ex\xc3\xa4mple.com", 443, &why, &t), 0);
	AL_ASSERT_STR_EQ(why, "non-ASCII host name (IDNA not supported)");
	AL_ASSERT_INT_EQ(check(p, "exa mple.com", 443, &why, &t), 0);
	AL_ASSERT_INT_EQ(check(p, "example.com..", 443, &why, &t), 0);
	AL_ASSERT_INT_EQ(check(p, "-example.com", 443, &why, &t), 0);
	AL_ASSERT_INT_EQ(check(p, "", 443, &why, &t), 0);
	AL_ASSERT_INT_EQ(al_netpolicy_check_host(p, "example.com\0x", 13, 443, &t, &why), 0);
	al_netpolicy_free(p);
}

AL_TEST(netpolicy_rule_syntax_errors)
{
	al_netpolicy *p = al_netpolicy_new();
	char err[128];
	static const char *bad[] = {
	    "",
	    "*",
	    "*.",
	    "example.com:0",
	    "example.com:65536",
	    "a.com:x",
	    "a.com:",
	    "*.1.2.3.4",
	    "2130706433",
	    "0177.0.0.1",
	    "127.1",
	    "0x7f.0.0.1",
	    "caf\xc3\xa9.fr",
	    "a..b",
	    "[::1",
	    "foo.123",
	    "a b",
	    "*.[::1]",
	    "::1:80:x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (al_netpolicy_allow_host(p, bad[i], err, sizeof(err)) != -EINVAL)
			al_test_fail(__FILE__, __LINE__, "rule \"%s\" was accepted", bad[i]);
		AL_ASSERT(err[0] != '\0');
	}
	static const char *badcidr[] = {"127.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8",
					"10.0.0.0/08",	"x/8",	  "",	       "::1/1x"};
	for (size_t i = 0; i < sizeof(badcidr) / sizeof(badcidr[0]); i++)
		if (al_netpolicy_allow_cidr(p, badcidr[i], err, sizeof(err)) != -EINVAL)
			al_test_fail(__FILE__, __LINE__, "cidr \"%s\" was accepted", badcidr[i]);
	AL_ASSERT_INT_EQ(al_netpolicy_allow_host(NULL, "a.com", err, sizeof(err)), -EINVAL);
	al_netpolicy_free(p);
}

AL_TEST(netpolicy_ip_literals_refused_by_default)
{
	al_netpolicy *p = al_netpolicy_new();
	struct al_netpolicy_target t;
	const char *why;
	char err[128];
	static const char *lits[] = {
	    "127.0.0.1",	  "169.254.169.254", "[::1]",	       "::1",
	    "[::ffff:127.0.0.1]", "8.8.8.8",	     "[fd00:ec2::254]"};
	static const char *tricky[] = {"2130706433",   "0177.0.0.1",	  "0x7f000001",
				       "0x7f.1",       "127.1",		  "127.0.1",
				       "017700000001", "127.000.000.001", "1.2.3.4.5",
				       "foo.0x10",     "169.254.43518",	  "0x7F.0.0.1"};

	AL_ASSERT_INT_EQ(al_netpolicy_allow_host(p, "*.example.com:*", err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
		if (check(p, lits[i], 80, &why, &t) != 0)
			al_test_fail(__FILE__, __LINE__, "literal %s allowed", lits[i]);
		AL_ASSERT_STR_EQ(why, "IP literal not allowed");
	}
	for (size_t i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++) {
		if (check(p, tricky[i], 80, &why, &t) != 0)
			al_test_fail(__FILE__, __LINE__, "tricky %s allowed", tricky[i]);
		if (strcmp(why, "IP literal not allowed") != 0 &&
		    strncmp(why, "numeric host form", 17) != 0 && strcmp(why, "invalid host") != 0)
			al_test_fail(__FILE__, __LINE__, "tricky %s: reason %s", tricky[i], why);
	}
	/* Zone ids never parse. */
	AL_ASSERT_INT_EQ(check(p, "[fe80::1%eth0]", 80, &why, &t), 0);
	al_netpolicy_free(p);
}

AL_TEST(netpolicy_literal_rules_and_cidr)
{
	al_netpolicy *p = al_netpolicy_new();
	struct al_netpolicy_target t;
	const char *why;
	char err[128];

	AL_ASSERT_INT_EQ(al_netpolicy_allow_host(p, "127.0.0.1:8080", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_netpolicy_allow_host(p, "[::1]:9090", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_netpolicy_allow_host(p, "2606:4700::1111", err, sizeof(err)), 0);

	AL_ASSERT_INT_EQ(check(p, "127.0.0.1", 8080, &why, &t), 1);
	AL_ASSERT_INT_EQ(t.is_literal, 1);
	AL_ASSERT_INT_EQ(t.addr.ss_family, AF_INET);
	AL_ASSERT_INT_EQ(ntohs(((struct sockaddr_in *)&t.addr)->sin_port), 8080);
	AL_ASSERT_INT_EQ(check(p, "127.0.0.1", 8081, &why, &t), 0);
	AL_ASSERT_INT_EQ(check(p, "[::1]", 9090, &why, &t), 1);
	AL_ASSERT_INT_EQ(t.addr.ss_family, AF_INET6);
	AL_ASSERT_STR_EQ(t.host, "::1");
	AL_ASSERT_INT_EQ(check(p, "0:0:0:0:0:0:0:1", 9090, &why, &t), 1);
	AL_ASSERT_INT_EQ(check(p, "[2606:4700:0::1111]", 443, &why, &t), 1);
	/* The mapped form is a different address. */
	AL_ASSERT_INT_EQ(check(p, "[::ffff:127.0.0.1]", 8080, &why, &t), 0);
	/* A literal rule is not a name rule, nor the reverse. */
	AL_ASSERT_INT_EQ(check(p, "localhost", 8080, &why, &t), 0);

	/* Address checks: loopback refused until a CIDR allows it. */
	struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	struct sockaddr_in md = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0xa9fea9fe)};
	struct sockaddr_in pub = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x08080808)};
	struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr);

	AL_ASSERT_INT_EQ(al_netpolicy_check_addr(p, (struct sockaddr *)&lo, &why), 0);
	AL_ASSERT_STR_EQ(why, "address is loopback");
	AL_ASSERT_INT_EQ(al_netpolicy_check_addr(p, (struct sockaddr *)&md, &why), 0);
	AL_ASSERT_STR_EQ(why, "address is a cloud metadata endpoint");
	AL_ASSERT_INT_EQ(al_netpolicy_check_addr(p, (struct sockaddr *)&pub, &why), 1);
	AL_ASSERT_INT_EQ(al_netpolicy_allow_cidr(p, "127.0.0.0/8", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_netpolicy_check_addr(p, (struct sockaddr *)&lo, &why), 1);
	AL_ASSERT_INT_EQ(al_netpolicy_check_addr(p, (struct sockaddr *)&md, &why), 0);
	AL_ASSERT_INT_EQ(al_netpolicy_check_addr(p, (struct sockaddr *)&lo6, &why), 0);
	AL_ASSERT_INT_EQ(al_netpolicy_check_addr(p, (struct sockaddr *)&mapped, &why), 0);
	AL_ASSERT_STR_EQ(why, "address is an IPv4-embedded IPv6 form");
	AL_ASSERT_INT_EQ(al_netpolicy_allow_cidr(p, "::1", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_netpolicy_check_addr(p, (struct sockaddr *)&lo6, &why), 1);
	AL_ASSERT_INT_EQ(al_netpolicy_allow_cidr(p, "::ffff:0:0/96", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_netpolicy_check_addr(p, (struct sockaddr *)&mapped, &why), 1);
	/* /0 covers everything of its family. */
	AL_ASSERT_INT_EQ(al_netpolicy_allow_cidr(p, "0.0.0.0/0", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_netpolicy_check_addr(p, (struct sockaddr *)&md, &why), 1);
	al_netpolicy_free(p);
}

AL_TEST(netpolicy_split_authority)
{
	char h[AL_NETPOLICY_HOST_MAX];
	uint16_t port;

#define SPLIT(s, dp) al_netpolicy_split_authority(s, strlen(s), dp, h, sizeof(h), &port)
	AL_ASSERT_INT_EQ(SPLIT("example.com:443", 0), 0);
	AL_ASSERT_STR_EQ(h, "example.com");
	AL_ASSERT_INT_EQ(port, 443);
	AL_ASSERT_INT_EQ(SPLIT("example.com", 80), 0);
	AL_ASSERT_INT_EQ(port, 80);
	AL_ASSERT_INT_EQ(SPLIT("example.com", 0), -EINVAL);
	AL_ASSERT_INT_EQ(SPLIT("[::1]:8080", 0), 0);
	AL_ASSERT_STR_EQ(h, "::1");
	AL_ASSERT_INT_EQ(port, 8080);
	AL_ASSERT_INT_EQ(SPLIT("[::1]", 80), 0);
	AL_ASSERT_INT_EQ(SPLIT("::1:80", 0), -EINVAL);
	AL_ASSERT_INT_EQ(SPLIT("[::1]x80", 0), -EINVAL);
	AL_ASSERT_INT_EQ(SPLIT("a.com:0", 0), -EINVAL);
	AL_ASSERT_INT_EQ(SPLIT("a.com:65536", 0), -EINVAL);
	AL_ASSERT_INT_EQ(SPLIT("a.com:+80", 0), -EINVAL);
	AL_ASSERT_INT_EQ(SPLIT("a.com:080", 0), 0); /* leading zero is still port 80 */
	AL_ASSERT_INT_EQ(port, 80);
	AL_ASSERT_INT_EQ(SPLIT("user@a.com:80", 0), -EINVAL);
	AL_ASSERT_INT_EQ(SPLIT(":80", 0), -EINVAL);
	AL_ASSERT_INT_EQ(SPLIT("a.com:", 0), -EINVAL);
	AL_ASSERT_INT_EQ(SPLIT("a com:80", 0), -EINVAL);
#undef SPLIT
}

AL_TEST(netpolicy_parse_http_url)
{
	char h[AL_NETPOLICY_HOST_MAX];
	uint16_t port;
	size_t off;

#define URL(s) al_netpolicy_parse_http_url(s, strlen(s), h, sizeof(h), &port, &off)
	AL_ASSERT_INT_EQ(URL("http://example.com/a/b?c=d"), 0);
	AL_ASSERT_STR_EQ(h, "example.com");
	AL_ASSERT_INT_EQ(port, 80);
	AL_ASSERT_INT_EQ(off, 18);
	AL_ASSERT_INT_EQ(URL("HTTP://example.com:8080"), 0);
	AL_ASSERT_INT_EQ(port, 8080);
	AL_ASSERT_INT_EQ(off, strlen("HTTP://example.com:8080"));
	AL_ASSERT_INT_EQ(URL("http://[::1]:81?q"), 0);
	AL_ASSERT_STR_EQ(h, "::1");
	AL_ASSERT_INT_EQ(off, 15);
	AL_ASSERT_INT_EQ(URL("https://example.com/"), -EINVAL);
	AL_ASSERT_INT_EQ(URL("http://user:pw@example.com/"), -EINVAL);
	AL_ASSERT_INT_EQ(URL("http://example.com#frag"), -EINVAL);
	AL_ASSERT_INT_EQ(URL("http://example.com/a#frag"), -EINVAL);
	AL_ASSERT_INT_EQ(URL("http:///path"), -EINVAL);
	AL_ASSERT_INT_EQ(URL("/origin/form"), -EINVAL);
	AL_ASSERT_INT_EQ(URL("http://a.com/a b"), -EINVAL);
#undef URL
}

AL_TEST(netpolicy_alloc_failure_unwinds)
{
	char err[128];

	for (long n = 0; n < 8; n++) {
		al_netpolicy *p;

		al_alloc_fail_after(n);
		p = al_netpolicy_new();
		if (p != NULL) {
			int rc = al_netpolicy_allow_host(p, "a.example.com", err, sizeof(err));
			AL_ASSERT(rc == 0 || rc == -ENOMEM);
			rc = al_netpolicy_allow_cidr(p, "10.0.0.0/8", err, sizeof(err));
			AL_ASSERT(rc == 0 || rc == -ENOMEM);
		}
		al_alloc_fail_after(-1);
		al_netpolicy_free(p);
	}
}
