/*
 * test_config.c - the gateway's YAML config: the reference's fields,
 * airlock's additions, defaults, and the refusals that name a line.
 */
#include "core/alloc.h"
#include "gateway/config.h"
#include "unit/unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

static int load(struct al_gw_config *c, const char *y, char *err, size_t errlen)
{
	err[0] = '\0';
	return al_gw_config_load_yaml(c, y, strlen(y), "gw.yaml", err, errlen);
}

/* A file with only the reference gateway's fields loads as it is. */
AL_TEST(gateway_config_reference_file)
{
	static const char y[] = "listen_addr: 0.0.0.0:8443\n"
				"log_level: info\n"
				"shutdown_timeout: 45s\n"
				"tunnel_domain: mcp.example.com\n"
				"tls:\n"
				"  cert_file: /etc/gw/tls.crt\n"
				"  key_file: /etc/gw/tls.key\n"
				"routes:\n"
				"  tickets: http://10.0.0.5:8080\n"
				"  kb.internal.example.com: https://kb.internal:443\n"
				"upstream:\n"
				"  allowed_ips:\n"
				"    - 10.0.0.0/8\n"
				"    - 192.168.1.0/24\n"
				"  tls:\n"
				"    ca_file: /etc/gw/ca.pem\n"
				"    include_system_cas: true\n";
	struct al_gw_config c;
	char err[512];

	AL_ASSERT_INT_EQ(load(&c, y, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(c.listen_host, "0.0.0.0");
	AL_ASSERT_INT_EQ(c.listen_port, 8443);
	AL_ASSERT_INT_EQ(c.shutdown_timeout_ms, 45000);
	AL_ASSERT_STR_EQ(c.tunnel_domain, "mcp.example.com");
	AL_ASSERT_STR_EQ(c.tls_cert_file, "/etc/gw/tls.crt");
	AL_ASSERT_INT_EQ(c.nroutes, 2);
	AL_ASSERT_STR_EQ(c.routes[0].host, "tickets");
	AL_ASSERT_INT_EQ(c.routes[0].kind, AL_GW_UP_HTTP);
	AL_ASSERT_STR_EQ(c.routes[0].uhost, "10.0.0.5");
	AL_ASSERT_INT_EQ(c.routes[0].uport, 8080);
	AL_ASSERT_INT_EQ(c.routes[0].https, 0);
	AL_ASSERT_INT_EQ(c.routes[1].https, 1);
	AL_ASSERT_INT_EQ(c.nallowed_ips, 2);
	AL_ASSERT_INT_EQ(c.include_system_cas, 1);
	AL_ASSERT_STR_EQ(c.upstream_ca_file, "/etc/gw/ca.pem");
	/* defaults of our additions */
	AL_ASSERT_STR_EQ(c.admin_host, "127.0.0.1");
	AL_ASSERT_INT_EQ(c.admin_port, 9090);
	AL_ASSERT_NULL(c.audit_path);
	AL_ASSERT_INT_EQ(c.routes[0].timeout_ms, AL_GW_DEFAULT_UPSTREAM_TIMEOUT);
	al_gw_config_clear(&c);
}

AL_TEST(gateway_config_defaults)
{
	struct al_gw_config c;
	char err[512];
	struct in_addr a;

	AL_ASSERT_INT_EQ(load(&c, "routes:\n  a: http://10.1.2.3:80\n", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(c.shutdown_timeout_ms, 30000);
	AL_ASSERT_INT_EQ(c.listen_port, 8443);
	AL_ASSERT_INT_EQ(c.log_level, AL_LOG_INFO);
	AL_ASSERT_INT_EQ(c.nallowed_ips, 3); /* RFC 1918 */
	inet_pton(AF_INET, "172.20.1.1", &a);
	AL_ASSERT_INT_EQ(al_gw_cidr_match(c.allowed_ips, c.nallowed_ips, a.s_addr), 1);
	inet_pton(AF_INET, "127.0.0.1", &a);
	AL_ASSERT_INT_EQ(al_gw_cidr_match(c.allowed_ips, c.nallowed_ips, a.s_addr), 0);
	inet_pton(AF_INET, "172.32.0.1", &a);
	AL_ASSERT_INT_EQ(al_gw_cidr_match(c.allowed_ips, c.nallowed_ips, a.s_addr), 0);
	al_gw_config_clear(&c);
}

AL_TEST(gateway_config_airlock_block)
{
	static const char y[] = "routes:\n"
				"  files:\n"
				"    command: /usr/bin/files-mcp\n"
				"    args: [--root, /srv]\n"
				"    env: {LANG: C, EMPTY: }\n"
				"    pool_size: 4\n"
				"    tools:\n"
				"      allow: [\"read_*\"]\n"
				"  wiki:\n"
				"    upstream: http://10.0.0.7:3000\n"
				"    timeout: 1m30s\n"
				"    tools: {deny: [\"*_delete\", drop]}\n"
				"airlock:\n"
				"  admin_addr: off\n"
				"  audit: /var/lib/airlock/gw.audit\n"
				"  allowed_origins: [https://claude.ai]\n"
				"  max_body: 65536\n"
				"  upstream_timeout: 2m\n";
	struct al_gw_config c;
	char err[512];

	AL_ASSERT_INT_EQ(load(&c, y, err, sizeof(err)), 0);
	AL_ASSERT_NULL(c.admin_host);
	AL_ASSERT_STR_EQ(c.audit_path, "/var/lib/airlock/gw.audit");
	AL_ASSERT_STR_EQ(c.allowed_origins[0], "https://claude.ai");
	AL_ASSERT_INT_EQ(c.max_body_bytes, 65536);
	AL_ASSERT_INT_EQ(c.routes[0].kind, AL_GW_UP_STDIO);
	AL_ASSERT_STR_EQ(c.routes[0].argv[0], "/usr/bin/files-mcp");
	AL_ASSERT_STR_EQ(c.routes[0].argv[2], "/srv");
	AL_ASSERT_NULL(c.routes[0].argv[3]);
	AL_ASSERT_STR_EQ(c.routes[0].env[0], "LANG=C");
	AL_ASSERT_STR_EQ(c.routes[0].env[1], "EMPTY=");
	AL_ASSERT_INT_EQ(c.routes[0].pool_size, 4);
	AL_ASSERT_INT_EQ(c.routes[0].timeout_ms, 120000);
	AL_ASSERT_STR_EQ(c.routes[0].allow_tools[0], "read_*");
	AL_ASSERT_INT_EQ(c.routes[1].timeout_ms, 90000);
	AL_ASSERT_STR_EQ(c.routes[1].deny_tools[1], "drop");
	al_gw_config_clear(&c);
}

/* Each refusal names the file and the line of the offending key or value. */
AL_TEST(gateway_config_errors_name_the_line)
{
	static const struct {
		const char *yaml;
		const char *want;
	} cases[] = {
	    {"routes:\n  a: http://10.0.0.1:80\nlisten_adr: x\n",
	     "gw.yaml:3: unknown key 'listen_adr'"},
	    {"routes:\n  a: http://10.0.0.1:80\n  a: http://10.0.0.2:80\n",
	     "gw.yaml:3: duplicate key 'a'"},
	    {"routes:\n  a: http://10.0.0.1:80/mcp\n", "gw.yaml:2:"},
	    {"routes:\n  a: ftp://10.0.0.1:80\n", "scheme must be http or https"},
	    {"routes:\n  a: http://10.0.0.1\n", "exactly scheme://host:port"},
	    {"routes:\n  a: https://10.0.0.1:443\n", "needs upstream.tls.ca_file"},
	    {"routes:\n  a: http://10.0.0.1:80\nupstream:\n  disable_ip_validation: true\n  "
	     "allowed_ips: [10.0.0.0/8]\n",
	     "gw.yaml:5: upstream.allowed_ips and upstream.disable_ip_validation"},
	    {"routes:\n  a: http://10.0.0.1:80\nupstream:\n  allowed_ips: [10.0.0.0/33]\n",
	     "gw.yaml:4: upstream.allowed_ips: '10.0.0.0/33'"},
	    {"routes:\n  a: http://10.0.0.1:80\nshutdown_timeout: 30\n",
	     "gw.yaml:3: shutdown_timeout"},
	    {"routes:\n  a: http://10.0.0.1:80\ntls:\n  cert_file: x\n", "go together"},
	    {"routes:\n  a:\n    upstream: http://10.0.0.1:80\n    command: x\n", "exactly one of"},
	    {"routes:\n  a:\n    upstream: http://10.0.0.1:80\n    pool_size: 2\n",
	     "gw.yaml:4: routes.a: 'pool_size' needs a stdio route"},
	    {"routes:\n  a:\n    command: x\n    tools: {alow: [x]}\n",
	     "gw.yaml:4: unknown key 'alow'"},
	    {"routes:\n  A: http://10.0.0.1:80\n  a: http://10.0.0.1:81\n",
	     "repeats another route"},
	    {"log_level: loud\nroutes:\n  a: http://10.0.0.1:80\n", "gw.yaml:1: log_level"},
	    {"x: &a 1\n", "anchors are not allowed"},
	    {"listen_addr: 1.2.3.4\nroutes:\n  a: http://10.0.0.1:80\n", "gw.yaml:1: listen_addr"},
	    {"tunnel_domain: mcp.example.com\n", "routes: required"},
	    {"", "routes are required"},
	    {"routes: {}\n", "at least one route"},
	    {"routes:\n  a: http://10.0.0.1:80\nairlock:\n  audit_key: k\n", "needs airlock.audit"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct al_gw_config c;
		char err[512];
		int rc = load(&c, cases[i].yaml, err, sizeof(err));
		if (rc != -EINVAL || strstr(err, cases[i].want) == NULL)
			al_test_fail(__FILE__, __LINE__, "case %zu: rc %d, err '%s', want '%s'", i,
				     rc, err, cases[i].want);
		AL_ASSERT_INT_EQ(c.nroutes, 0); /* cleared on failure */
	}
}

AL_TEST(gateway_config_durations)
{
	uint64_t ms = 1;

	AL_ASSERT_INT_EQ(al_gw_parse_duration("0", &ms), 0);
	AL_ASSERT_INT_EQ(ms, 0);
	AL_ASSERT_INT_EQ(al_gw_parse_duration("30s", &ms), 0);
	AL_ASSERT_INT_EQ(ms, 30000);
	AL_ASSERT_INT_EQ(al_gw_parse_duration("1h2m3s4ms", &ms), 0);
	AL_ASSERT_INT_EQ(ms, 3723004);
	AL_ASSERT_INT_EQ(al_gw_parse_duration("250ms", &ms), 0);
	AL_ASSERT_INT_EQ(ms, 250);
	AL_ASSERT_INT_EQ(al_gw_parse_duration("30", &ms), -EINVAL);
	AL_ASSERT_INT_EQ(al_gw_parse_duration("s", &ms), -EINVAL);
	AL_ASSERT_INT_EQ(al_gw_parse_duration("-1s", &ms), -EINVAL);
	AL_ASSERT_INT_EQ(al_gw_parse_duration("1.5s", &ms), -EINVAL);
	AL_ASSERT_INT_EQ(al_gw_parse_duration("99999999999999999999h", &ms), -EINVAL);
}

AL_TEST(gateway_config_hostport_and_cidr)
{
	char *h = NULL;
	int port = 0;
	struct al_gw_cidr c;

	AL_ASSERT_INT_EQ(al_gw_parse_hostport(":8443", &h, &port), 0);
	AL_ASSERT_STR_EQ(h, "0.0.0.0");
	AL_ASSERT_INT_EQ(port, 8443);
	al_free(h);
	AL_ASSERT_INT_EQ(al_gw_parse_hostport("[::1]:9090", &h, &port), 0);
	AL_ASSERT_STR_EQ(h, "::1");
	al_free(h);
	AL_ASSERT_INT_EQ(al_gw_parse_hostport("::1:9090", &h, &port), -EINVAL);
	AL_ASSERT_INT_EQ(al_gw_parse_hostport("a:65536", &h, &port), -EINVAL);
	AL_ASSERT_INT_EQ(al_gw_parse_cidr("10.1.2.3", &c), 0);
	AL_ASSERT_INT_EQ(c.mask, 0xffffffffu);
	AL_ASSERT_INT_EQ(al_gw_parse_cidr("0.0.0.0/0", &c), 0);
	AL_ASSERT_INT_EQ(c.mask, 0);
	AL_ASSERT_INT_EQ(al_gw_parse_cidr("10.0.0.0/", &c), -EINVAL);
	AL_ASSERT_INT_EQ(al_gw_parse_cidr("::1/128", &c), -EINVAL);
	AL_ASSERT_INT_EQ(al_gw_parse_cidr("10.0.0.0/8x", &c), -EINVAL);
}
