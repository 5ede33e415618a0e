/*
 * Unit tests for src/audit record builders and syslog export: OCSF fields,
 * environment values never recorded, RFC 5424 messages received and parsed
 * by real UDP and TCP sockets on loopback, export failures not blocking.
 */
#include "audit/log.h"
#include "audit/record.h"
#include "audit/syslog.h"
#include "audit/verify.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "unit/unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const struct al_audit_ctx ctx = {
    .sandbox_id = "sbx_1", .tool_call_id = "toolu_9", .policy_hash = "abc"};

static json_t *path_get(json_t *o, const char *a, const char *b)
{
	json_t *x = json_object_get(o, a);

	return b ? json_object_get(x, b) : x;
}

AL_TEST(audit_record_process_env_names_only)
{
	const char *argv[] = {"/bin/sh", "-c", "echo hi", NULL};
	const char *env[] = {"API_KEY=sk-ant-very-secret-value", "PATH=/usr/bin", "EMPTY=", "BARE",
			     NULL};
	struct al_audit_proc p = {.pid = 42, .argv = argv, .cwd = "/work", .env = env};
	const char *path;
	al_audit_log *log = NULL;
	char err[256], *s, buf[65536];
	json_t *r, *names;
	ssize_t n;
	int fd;

	r = al_audit_rec_process_launch(&ctx, &p);
	AL_ASSERT_NOT_NULL(r);
	s = json_dumps(r, 0);
	AL_ASSERT_NULL(strstr(s, "very-secret"));
	AL_ASSERT_NULL(strstr(s, "/usr/bin"));
	al_free(s);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "class_uid")), 1007);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "category_uid")), 1);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "activity_id")), 1);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "type_uid")), 100701);
	AL_ASSERT_STR_EQ(json_string_value(path_get(r, "process", "cmd_line")),
			 "/bin/sh -c echo hi");
	AL_ASSERT_STR_EQ(json_string_value(path_get(r, "process", "name")), "sh");
	AL_ASSERT_INT_EQ(json_integer_value(path_get(r, "process", "pid")), 42);
	AL_ASSERT_STR_EQ(json_string_value(path_get(r, "airlock", "sandbox_id")), "sbx_1");
	names = json_object_get(path_get(r, "airlock", "process"), "env_names");
	AL_ASSERT_INT_EQ(json_array_size(names), 4);
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(names, 0)), "API_KEY");
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(names, 3)), "BARE");
	AL_ASSERT_INT_EQ(
	    json_array_size(json_object_get(path_get(r, "airlock", "process"), "argv")), 3);
	/* And through the log onto disk: the value is nowhere in the file. */
	path = al_test_tmpdir();
	snprintf(buf, sizeof(buf), "%s/a.log", path);
	AL_ASSERT_INT_EQ(al_audit_open(buf, NULL, &log, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_write(log, r), 0);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	json_decref(r);
	fd = open(buf, O_RDONLY);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	AL_ASSERT(n > 0);
	buf[n] = '\0';
	AL_ASSERT_NOT_NULL(strstr(buf, "API_KEY"));
	AL_ASSERT_NULL(strstr(buf, "very-secret"));
}

AL_TEST(audit_record_process_exit)
{
	const char *argv[] = {"sleep", "10", NULL};
	struct al_audit_rusage ru = {.utime_us = 1500, .maxrss_kb = 2048};
	struct al_audit_proc p = {.pid = 7,
				  .argv = argv,
				  .signal = 9,
				  .timed_out = 1,
				  .rusage = &ru,
				  .stdout_bytes = 1 << 20,
				  .truncated = 1,
				  .stdout_sha256 = "aa"};
	json_t *r = al_audit_rec_process_exit(&ctx, &p), *ours;

	AL_ASSERT_NOT_NULL(r);
	ours = path_get(r, "airlock", "process");
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "activity_id")), 2);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "exit_code")), 137);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "status_id")), 2);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(ours, "signal")), 9);
	AL_ASSERT(json_is_true(json_object_get(ours, "timed_out")));
	AL_ASSERT_INT_EQ(
	    json_integer_value(path_get(json_object_get(ours, "rusage"), "utime_us", NULL)), 1500);
	AL_ASSERT_INT_EQ(
	    json_integer_value(json_object_get(json_object_get(ours, "output"), "stdout_bytes")),
	    1 << 20);
	AL_ASSERT(json_is_true(json_object_get(json_object_get(ours, "output"), "truncated")));
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(ours, "output"), "stdout_sha256")),
	    "aa");
	json_decref(r);
}

AL_TEST(audit_record_file_and_network)
{
	struct al_audit_file f = {
	    .op = AL_AUDIT_FILE_UPDATE, .path = "/work/src/a.c", .size = 12, .sha256 = "0123"};
	struct al_audit_net n = {.activity = AL_AUDIT_NET_REFUSE,
				 .host = "metadata.internal",
				 .port = 80,
				 .addr = "169.254.169.254",
				 .reason = "link-local address"};
	json_t *r = al_audit_rec_file(&ctx, &f), *h;

	AL_ASSERT_NOT_NULL(r);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "class_uid")), 1001);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "type_uid")), 100103);
	AL_ASSERT_STR_EQ(json_string_value(path_get(r, "file", "name")), "a.c");
	AL_ASSERT_INT_EQ(json_integer_value(path_get(r, "file", "size")), 12);
	h = json_array_get(path_get(r, "file", "hashes"), 0);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(h, "algorithm_id")), 3);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(h, "value")), "0123");
	json_decref(r);

	r = al_audit_rec_network(&ctx, &n);
	AL_ASSERT_NOT_NULL(r);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "class_uid")), 4001);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "category_uid")), 4);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "activity_id")), 5);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "action_id")), 2);
	AL_ASSERT_STR_EQ(json_string_value(path_get(r, "dst_endpoint", "ip")), "169.254.169.254");
	AL_ASSERT_INT_EQ(json_integer_value(path_get(r, "dst_endpoint", "port")), 80);
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(path_get(r, "airlock", "network"), "decision")),
	    "deny");
	json_decref(r);
}

/* Splits an RFC 5424 message; checks the header and returns the parsed MSG. */
static json_t *parse_5424(const char *m, size_t len, long want_seq)
{
	char hdr[8], ts[64], host[256], app[64], procid[32], msgid[64], sd[512];
	const char *sd_start, *sd_end;
	char want[64];
	json_t *rec;
	int used = 0;

	AL_ASSERT(sscanf(m, "%7s %63s %255s %63s %31s %63s %n", hdr, ts, host, app, procid, msgid,
			 &used) == 6);
	AL_ASSERT_STR_EQ(hdr, "<110>1");
	AL_ASSERT_STR_EQ(app, "airlock");
	AL_ASSERT_INT_EQ(strtol(procid, NULL, 10), getpid());
	AL_ASSERT(strchr(ts, 'T') && ts[strlen(ts) - 1] == 'Z');
	sd_start = m + used;
	AL_ASSERT(*sd_start == '[');
	sd_end = strstr(sd_start, "] {");
	AL_ASSERT_NOT_NULL(sd_end);
	AL_ASSERT((size_t)(sd_end - sd_start) < sizeof(sd));
	memcpy(sd, sd_start, (size_t)(sd_end - sd_start));
	sd[sd_end - sd_start] = '\0';
	AL_ASSERT_INT_EQ(strncmp(sd, "[airlock@32473 seq=\"", 20), 0);
	snprintf(want, sizeof(want), "seq=\"%ld\"", want_seq);
	AL_ASSERT_NOT_NULL(strstr(sd, want));
	rec = json_loadb(sd_end + 2, len - (size_t)(sd_end + 2 - m), 0, NULL);
	AL_ASSERT_NOT_NULL(rec);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(rec, "seq")), want_seq);
	/* The SD hash is the record's hash; MSGID its class or type. */
	snprintf(want, sizeof(want), "hash=\"%s\"",
		 json_string_value(json_object_get(rec, "hash")));
	AL_ASSERT_NOT_NULL(strstr(sd, want));
	if (json_object_get(rec, "class_uid"))
		AL_ASSERT_INT_EQ(strtol(msgid, NULL, 10),
				 json_integer_value(json_object_get(rec, "class_uid")));
	else
		AL_ASSERT_STR_EQ(msgid, json_string_value(json_object_get(rec, "type")));
	return rec;
}

static int listen_loopback(int type, int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, type, 0);

	AL_ASSERT(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	AL_ASSERT_INT_EQ(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	if (type == SOCK_STREAM)
		AL_ASSERT_INT_EQ(listen(fd, 4), 0);
	AL_ASSERT_INT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void write_net_record(al_audit_log *log)
{
	struct al_audit_net n = {.activity = AL_AUDIT_NET_OPEN, .host = "pypi.org", .port = 443};
	json_t *r = al_audit_rec_network(&ctx, &n);

	AL_ASSERT_INT_EQ(al_audit_write(log, r), 0);
	json_decref(r);
}

AL_TEST(audit_syslog_udp)
{
	char target[64], err[256], path[512], buf[65536];
	struct al_audit_opts o = {.syslog_target = target, .component = "gateway"};
	struct al_audit_stats st;
	al_audit_log *log = NULL;
	int port, fd = listen_loopback(SOCK_DGRAM, &port);
	json_t *rec;
	ssize_t n;

	snprintf(target, sizeof(target), "udp://127.0.0.1:%d", port);
	snprintf(path, sizeof(path), "%s/a.log", al_test_tmpdir());
	AL_ASSERT_INT_EQ(al_audit_open(path, &o, &log, err, sizeof(err)), 0);
	write_net_record(log);
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(st.syslog_sent, 2);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	for (long seq = 1; seq <= 2; seq++) {
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		AL_ASSERT(n > 0);
		buf[n] = '\0';
		rec = parse_5424(buf, (size_t)n, seq);
		AL_ASSERT_STR_EQ(json_string_value(json_object_get(rec, "component")), "gateway");
		json_decref(rec);
	}
	close(fd);
}

AL_TEST(audit_syslog_tcp_octet_counting)
{
	char target[64], err[256], path[512], buf[65536];
	struct al_audit_opts o = {.syslog_target = target};
	al_audit_log *log = NULL;
	int port, lfd = listen_loopback(SOCK_STREAM, &port), cfd;
	size_t have = 0, off = 0;
	long seq = 1;
	ssize_t n;

	snprintf(target, sizeof(target), "tcp://127.0.0.1:%d", port);
	snprintf(path, sizeof(path), "%s/a.log", al_test_tmpdir());
	AL_ASSERT_INT_EQ(al_audit_open(path, &o, &log, err, sizeof(err)), 0);
	write_net_record(log);
	write_net_record(log);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0); /* closes the connection: EOF ends the read */
	cfd = accept(lfd, NULL, NULL);
	AL_ASSERT(cfd >= 0);
	while ((n = read(cfd, buf + have, sizeof(buf) - 1 - have)) > 0)
		have += (size_t)n;
	AL_ASSERT(have > 0);
	/* RFC 6587 octet counting: MSG-LEN SP SYSLOG-MSG, back to back. */
	while (off < have) {
		char *end;
		long len = strtol(buf + off, &end, 10);
		json_t *rec;

		AL_ASSERT(*end == ' ' && len > 0);
		AL_ASSERT((size_t)(end + 1 - buf) + (size_t)len <= have);
		rec = parse_5424(end + 1, (size_t)len, seq++);
		json_decref(rec);
		off = (size_t)(end + 1 - buf) + (size_t)len;
	}
	AL_ASSERT_INT_EQ(seq, 4);
	close(cfd);
	close(lfd);
}

AL_TEST(audit_syslog_down_does_not_block_local_log)
{
	char target[64], err[256], path[512];
	struct al_audit_opts o = {.syslog_target = target};
	struct al_audit_verify_result res;
	struct al_audit_stats st;
	al_audit_log *log = NULL;
	int port, lfd = listen_loopback(SOCK_STREAM, &port);

	close(lfd); /* nothing listens there now */
	snprintf(target, sizeof(target), "tcp://127.0.0.1:%d", port);
	snprintf(path, sizeof(path), "%s/a.log", al_test_tmpdir());
	AL_ASSERT_INT_EQ(al_audit_open(path, &o, &log, err, sizeof(err)), 0);
	write_net_record(log);
	write_net_record(log);
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(st.syslog_sent, 0);
	AL_ASSERT_INT_EQ(st.syslog_failed, 3);
	AL_ASSERT_INT_EQ(st.seq, 3);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	AL_ASSERT_INT_EQ(al_audit_verify_file(path, NULL, NULL, &res, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(res.records, 3);
}

AL_TEST(audit_syslog_bad_target_and_sd_escaping)
{
	al_audit_syslog *s = NULL;
	char err[256];
	al_buf b = {0};
	json_t *r = json_pack("{s:I, s:s, s:s, s:s, s:s}", "seq", (json_int_t)5, "time",
			      "2026-11-27T00:00:00.000Z", "hash", "h", "component", "a\"b]c\\",
			      "type", "audit_open");

	AL_ASSERT_INT_EQ(al_audit_syslog_open("http://x:1", &s, err, sizeof(err)), -EINVAL);
	AL_ASSERT_INT_EQ(al_audit_syslog_open("udp://127.0.0.1", &s, err, sizeof(err)), -EINVAL);
	AL_ASSERT_INT_EQ(al_audit_syslog_open("udp://127.0.0.1:x", &s, err, sizeof(err)), -EINVAL);
	AL_ASSERT_NULL(s);
	AL_ASSERT_INT_EQ(al_audit_syslog_format(r, "{}", "my host", 12, &b), 0);
	AL_ASSERT_STR_EQ(b.data,
			 "<110>1 2026-11-27T00:00:00.000Z myhost airlock 12 audit_open "
			 "[airlock@32473 seq=\"5\" hash=\"h\" component=\"a\\\"b\\]c\\\\\"] "
			 "{}");
	al_buf_free(&b);
	json_decref(r);
}

AL_TEST(audit_rec_event_merges_fields)
{
	struct al_audit_ctx wctx = {.session_id = "sesn_1", .work_id = "work_1"};
	json_t *r = al_audit_rec_event(&wctx, "work.claimed", 0, json_pack("{s:i}", "attempt", 2));

	AL_ASSERT_NOT_NULL(r);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "class_uid")), 6003);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "type_uid")), 600399);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "status_id")), 1);
	AL_ASSERT_STR_EQ(json_string_value(path_get(r, "airlock", "event")), "work.claimed");
	AL_ASSERT_STR_EQ(json_string_value(path_get(r, "airlock", "work_id")), "work_1");
	AL_ASSERT_INT_EQ(json_integer_value(path_get(r, "airlock", "attempt")), 2);
	json_decref(r);
	/* a non-object is refused (and freed) */
	AL_ASSERT_NULL(al_audit_rec_event(&wctx, "x", 1, json_string("no")));
}
