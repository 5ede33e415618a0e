/*
 * secret.h - a work item's `secret`: base64url (padding optional) of the
 * JSON {"sessions_token": "...", "api_base_url"?: "..."}. The sessions token
 * is the Bearer for every per-session call of that item.
 *
 * The decoded buffers are wiped before they are freed; nothing here logs or
 * echoes the input in an error message.
 */
#ifndef AL_WORKER_SECRET_H
#define AL_WORKER_SECRET_H

#include <stddef.h>

struct al_work_secret {
	char *sessions_token; /* owned, secret */
	char *api_base_url;   /* owned, NULL when absent */
};

/*
 * Decodes `secret` (len bytes, need not be NUL-terminated). Returns 0, or
 * -EINVAL (not base64(url), not a JSON object, sessions_token missing, empty,
 * not a string, or holding a byte not allowed in an HTTP header) with a
 * reason in err that never quotes the input, or -ENOMEM. An api_base_url
 * that is not an http(s) URL is ignored (api_base_url NULL, like the SDK,
 * which never reads it): then 0 with a note in err for the log; otherwise err
 * is empty on success. Jansson reports its own allocation
 * failures as syntax errors, so out of memory while parsing shows as -EINVAL.
 *
 * On -EINVAL the caller falls back to the environment key, as the SDK's
 * reference worker does (sessionsTokenFromSecret returns null on any
 * decoding failure). *out is zeroed on every failure.
 */
int al_work_secret_decode(const char *secret, size_t len, struct al_work_secret *out, char *err,
			  size_t errlen);
/* Wipes and frees the members; NULL-safe; leaves *s zeroed. */
void al_work_secret_clear(struct al_work_secret *s);

#endif
