/*
 * secret.c - decoding a work item's `secret` (see secret.h).
 *
 * Our control plane (src/api/work.c) sends unpadded base64url of
 * {"sessions_token":"..."}; the hosted API documents BetaWorkSecret with an
 * optional api_base_url as well. The SDK's reference worker
 * (sessionsTokenFromSecret) maps '-' and '_' to '+' and '/', pads, decodes,
 * and on any failure falls back to the environment key. We accept the same
 * inputs (both alphabets, padding optional, surrounding whitespace) and leave
 * the fallback to the caller: -EINVAL here means "no usable token".
 *
 * We are stricter than the SDK in one place on purpose: the token goes into
 * an Authorization header, so a token with a space, a control character or a
 * non-ASCII byte (header injection, a mangled secret) is refused.
 */
#include "worker/secret.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/b64.h"
#include "core/hash.h"

/* A secret is a few hundred bytes; anything near this is not one. */
#define SECRET_MAX_LEN	   (64 * 1024)
#define SECRET_MAX_TOKEN   4096
#define SECRET_MAX_URL_LEN 2048

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Printable ASCII without space: safe to put after "Bearer ". */
static int token_ok(const char *s, size_t n)
{
	if (n == 0 || n > SECRET_MAX_TOKEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* An absolute http(s) URL with a host and no whitespace or control bytes. */
static int url_ok(const char *s, size_t n)
{
	size_t skip;

	if (n == 0 || n > SECRET_MAX_URL_LEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	if (n > 8 && strncasecmp(s, "https://", 8) == 0)
		skip = 8;
	else if (n > 7 && strncasecmp(s, "http://", 7) == 0)
		skip = 7;
	else
		return 0;
	/* A host must follow the scheme: "https:///x" or "https://?" has none. */
	return s[skip] != '/' && s[skip] != '?' && s[skip] != '#';
}

/*
 * Jansson keeps the decoded strings in its own heap blocks; wipe them in
 * place before json_decref frees them. (Jansson's lexer also had the text in
 * a scratch buffer it frees unwiped; that buffer is short-lived and never
 * leaves the process, but it is a limit of what we can promise.)
 */
static void wipe_json_strings(json_t *obj)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		if (json_is_string(v))
			al_wipe((char *)json_string_value(v), json_string_length(v));
	}
}

int al_work_secret_decode(const char *secret, size_t len, struct al_work_secret *out, char *err,
			  size_t errlen)
{
	struct al_work_secret s = {0};
	json_t *root = NULL, *tok, *url;
	json_error_t jerr;
	uint8_t *raw = NULL;
	size_t rawcap = 0, rawn = 0;
	int rc;

	if (errlen)
		err[0] = '\0';
	memset(out, 0, sizeof(*out));
	if (secret == NULL) {
		snprintf(err, errlen, "work secret is missing");
		return -EINVAL;
	}
	while (len > 0 && is_space(secret[0])) {
		secret++;
		len--;
	}
	while (len > 0 && is_space(secret[len - 1]))
		len--;
	if (len == 0) {
		snprintf(err, errlen, "work secret is empty");
		return -EINVAL;
	}
	if (len > SECRET_MAX_LEN) {
		snprintf(err, errlen, "work secret is too long (%zu bytes)", len);
		return -EINVAL;
	}
	rawcap = len / 4 * 3 + 3;
	if ((raw = al_malloc(rawcap)) == NULL) {
		rc = -ENOMEM;
		goto nomem;
	}
	/* The decoder takes either alphabet and strips trailing '=' itself. */
	if (al_b64url_decode(secret, len, raw, rawcap, &rawn) < 0) {
		snprintf(err, errlen, "work secret is not base64url");
		rc = -EINVAL;
		goto done;
	}
	/* JSON_DISABLE_EOF_CHECK off: trailing bytes after the object are refused. */
	root = json_loadb((const char *)raw, rawn, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		/* Never jerr.text: it may quote the token ("near '...'"). */
		if (json_error_code(&jerr) == json_error_out_of_memory) {
			rc = -ENOMEM;
			goto nomem;
		}
		snprintf(err, errlen, "work secret is not JSON (at byte %d)", jerr.position);
		rc = -EINVAL;
		goto done;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "work secret is not a JSON object");
		rc = -EINVAL;
		goto done;
	}
	tok = json_object_get(root, "sessions_token");
	if (!json_is_string(tok) || json_string_length(tok) == 0) {
		snprintf(err, errlen, "work secret has no sessions_token string");
		rc = -EINVAL;
		goto done;
	}
	if (!token_ok(json_string_value(tok), json_string_length(tok))) {
		snprintf(err, errlen,
			 "work secret's sessions_token has characters not allowed in a header");
		rc = -EINVAL;
		goto done;
	}
	/*
	 * The SDK's worker never reads api_base_url, so a secret it accepts
	 * with a broken one still works there: ignore it (with a note in err)
	 * rather than lose the token. A URL we would not send a token to is
	 * never used.
	 */
	url = json_object_get(root, "api_base_url");
	if (url != NULL && !json_is_null(url) &&
	    (!json_is_string(url) || !url_ok(json_string_value(url), json_string_length(url)))) {
		snprintf(err, errlen, "work secret's api_base_url is not an http(s) URL; ignored");
	} else if (url != NULL && !json_is_null(url)) {
		if ((s.api_base_url =
			 al_strndup(json_string_value(url), json_string_length(url))) == NULL) {
			rc = -ENOMEM;
			goto nomem;
		}
	}
	if ((s.sessions_token = al_strndup(json_string_value(tok), json_string_length(tok))) ==
	    NULL) {
		rc = -ENOMEM;
		goto nomem;
	}
	*out = s;
	memset(&s, 0, sizeof(s));
	rc = 0;
	goto done;
nomem:
	snprintf(err, errlen, "out of memory decoding the work secret");
done:
	if (root != NULL) {
		wipe_json_strings(root);
		json_decref(root);
	}
	if (raw != NULL)
		al_free_secret(raw, rawcap);
	al_work_secret_clear(&s);
	return rc;
}

void al_work_secret_clear(struct al_work_secret *s)
{
	if (s == NULL)
		return;
	al_free_secret_str(s->sessions_token);
	al_free_secret_str(s->api_base_url);
	memset(s, 0, sizeof(*s));
}
