/*
 * log.h - text or JSON-lines logging to stderr.
 *
 * Secrets must never be passed to the logger. As a second line of defence
 * every line is scrubbed before it is written: anything shaped like an
 * airlock credential (al_secret_scrub) or an Anthropic API key is replaced by
 * its prefix and "[REDACTED]".
 */
#ifndef AL_CORE_LOG_H
#define AL_CORE_LOG_H

#include <stddef.h>

enum al_log_level { AL_LOG_DEBUG, AL_LOG_INFO, AL_LOG_WARN, AL_LOG_ERROR };
enum al_log_format { AL_LOG_TEXT, AL_LOG_JSON };

void al_log_set_level(enum al_log_level lvl);
void al_log_set_format(enum al_log_format fmt);
/* Parses "text"/"json"; returns 0 or -EINVAL. */
int al_log_parse_format(const char *s, enum al_log_format *out);
int al_log_parse_level(const char *s, enum al_log_level *out);

/*
 * Logs one line. `component` is a short tag ("http", "api", "agent").
 * Extra structured fields may follow the message as "key=value" pairs in
 * the format string; in JSON mode the whole formatted message is one field.
 */
void al_log(enum al_log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define al_debug(c, ...) al_log(AL_LOG_DEBUG, c, __VA_ARGS__)
#define al_info(c, ...)	 al_log(AL_LOG_INFO, c, __VA_ARGS__)
#define al_warn(c, ...)	 al_log(AL_LOG_WARN, c, __VA_ARGS__)
#define al_error(c, ...) al_log(AL_LOG_ERROR, c, __VA_ARGS__)

/*
 * Replaces credential-shaped substrings of s in place (same or shorter
 * length): "alk_<kind>_<token>" and "sk-ant-<token>" keep their prefix and
 * get "[REDACTED]". Returns the number of replacements.
 */
int al_secret_scrub(char *s);

/* Test hook: send log output to fd instead of stderr (-1 restores). */
void al_log_set_fd(int fd);

#endif
