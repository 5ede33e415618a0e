#include "core/log.h"

#include "core/buf.h"
#include "core/clock.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum al_log_level min_level = AL_LOG_INFO;
static enum al_log_format format = AL_LOG_TEXT;
static int out_fd = 2;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void al_log_set_level(enum al_log_level lvl)
{
	min_level = lvl;
}

void al_log_set_format(enum al_log_format fmt)
{
	format = fmt;
}

void al_log_set_fd(int fd)
{
	out_fd = fd < 0 ? 2 : fd;
}

int al_log_parse_format(const char *s, enum al_log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = AL_LOG_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = AL_LOG_JSON;
	else
		return -EINVAL;
	return 0;
}

int al_log_parse_level(const char *s, enum al_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum al_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int is_token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/*
 * Scrubs one credential family. `prefix` is matched literally; for "alk_" a
 * lower-case kind and a second underscore must follow before the token.
 */
static int scrub_prefix(char *s, const char *prefix, int want_kind)
{
	static const char red[] = "[REDACTED]";
	size_t plen = strlen(prefix);
	int n = 0;
	char *p = s;

	while ((p = strstr(p, prefix)) != NULL) {
		char *tok = p + plen, *end;

		if (p > s && is_token_char(p[-1])) {
			p = tok;
			continue;
		}
		if (want_kind) {
			while (*tok >= 'a' && *tok <= 'z')
				tok++;
			if (tok == p + plen || *tok != '_') {
				p = tok;
				continue;
			}
			tok++;
		}
		end = tok;
		while (is_token_char(*end))
			end++;
		if (end - tok < 8) { /* too short to be a credential */
			p = end;
			continue;
		}
		/* Replacement is never longer than what it replaces (>= 8 + ...). */
		if ((size_t)(end - tok) >= sizeof(red) - 1) {
			memcpy(tok, red, sizeof(red) - 1);
			memmove(tok + sizeof(red) - 1, end, strlen(end) + 1);
		} else {
			memset(tok, '*', (size_t)(end - tok));
		}
		n++;
		p = tok;
	}
	return n;
}

int al_secret_scrub(char *s)
{
	return scrub_prefix(s, "alk_", 1) + scrub_prefix(s, "sk-ant-", 0);
}

/*
 * Appends s with control bytes escaped (\n, \r, \xNN). A text log line is
 * one event: a CR or LF inside logged data (a request path, a peer's
 * string) would otherwise let that data forge or split log lines.
 */
static int append_escaped(al_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	int rc = 0;

	while (*s && rc == 0) {
		size_t n = 0;
		while (s[n] && ((unsigned char)s[n] >= 0x20 || s[n] == '\t') && s[n] != 0x7f)
			n++;
		if (n > 0) {
			rc = al_buf_append(b, s, n);
			s += n;
			continue;
		}
		unsigned char c = (unsigned char)*s++;
		char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
		if (c == '\n' || c == '\r') {
			e[1] = c == '\n' ? 'n' : 'r';
			rc = al_buf_append(b, e, 2);
		} else {
			rc = al_buf_append(b, e, 4);
		}
	}
	return rc;
}

void al_log(enum al_log_level lvl, const char *component, const char *fmt, ...)
{
	al_buf msg = {0}, line = {0};
	char ts[40];
	va_list ap;

	if (lvl < min_level)
		return;
	va_start(ap, fmt);
	if (al_buf_vappendf(&msg, fmt, ap) < 0) {
		va_end(ap);
		goto done;
	}
	va_end(ap);
	if (msg.data == NULL)
		goto done;
	al_secret_scrub(msg.data);
	msg.len = strlen(msg.data);
	al_time_format(al_now_ms(), ts, sizeof(ts));

	if (format == AL_LOG_JSON) {
		json_t *o =
		    json_pack("{s:s, s:s, s:s, s:s%}", "ts", ts, "level", level_names[lvl],
			      "component", component ? component : "-", "msg", msg.data, msg.len);
		char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

		json_decref(o);
		if (s == NULL)
			goto done;
		al_buf_appendf(&line, "%s\n", s);
		free(s);
	} else if (al_buf_appendf(&line, "%s %-5s %s: ", ts, level_names[lvl],
				  component ? component : "-") < 0 ||
		   append_escaped(&line, msg.data) < 0 || al_buf_append_str(&line, "\n") < 0) {
		goto done;
	}
	if (line.data) {
		pthread_mutex_lock(&log_lock);
		for (size_t off = 0; off < line.len;) {
			ssize_t w = write(out_fd, line.data + off, line.len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		pthread_mutex_unlock(&log_lock);
	}
done:
	/*
	 * Scrubbing shortens the text in place: the bytes past the new end can
	 * still hold the tail of a credential. Wipe both buffers.
	 */
	al_buf_wipe(&msg);
	al_buf_free(&msg);
	al_buf_wipe(&line);
	al_buf_free(&line);
}
