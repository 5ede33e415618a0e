/*
 * fuzz_audit_verify.c - libFuzzer target for the audit log verifier's line
 * parser (src/audit/verify.c).
 *
 * The input is split at '\n' and fed line by line, as `airlock audit verify`
 * does. The first byte picks whether a public key is in play (so checkpoint
 * signature checking runs on hostile input) and whether the first line is
 * offered as a shipped checkpoint. Invariants: once a record is bad the
 * verifier stays bad and names a line within the input; a good result
 * accounts for every line.
 */
#include "audit/key.h"
#include "audit/verify.h"
#include "core/alloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static al_audit_key *pub;

/* One key for the whole run: generated once, into a private temporary directory. */
static void init_key(void)
{
	char dir[] = "/tmp/fuzz-audit-XXXXXX", path[64], err[256];

	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/k.pem", dir);
	if (al_audit_key_generate(path, NULL, NULL, err, sizeof(err)) < 0 ||
	    al_audit_key_load_public(path, &pub, err, sizeof(err)) < 0)
		abort();
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct al_audit_verify_result *r;
	al_audit_verifier *v;
	const char *p, *end, *nl;
	char err[256];
	long lines = 0;
	uint8_t mode;
	int rc = 0;

	if (pub == NULL) {
		al_alloc_init();
		init_key();
	}
	if (size < 1)
		return 0;
	mode = data[0];
	p = (const char *)data + 1;
	end = (const char *)data + size;
	v = al_audit_verifier_new((mode & 1) ? pub : NULL);
	if (v == NULL)
		abort();
	if ((mode & 2) && (mode & 1)) {
		nl = memchr(p, '\n', (size_t)(end - p));
		(void)al_audit_verifier_add_shipped(v, p, nl ? (size_t)(nl - p) : (size_t)(end - p),
						    err, sizeof(err));
	}
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int lrc = al_audit_verifier_line(v, p, n);

		lines++;
		if (lrc != 0 && lrc != -EBADMSG)
			abort();
		if (rc == -EBADMSG && lrc != -EBADMSG) /* bad stays bad */
			abort();
		rc = lrc;
		if (nl == NULL) {
			rc = al_audit_verifier_finish(v, 1);
			break;
		}
		p = nl + 1;
	}
	if (p >= end)
		rc = al_audit_verifier_finish(v, 0);
	r = al_audit_verifier_result(v);
	if (rc == 0 && (!r->ok || r->records != lines))
		abort();
	if (rc != 0 &&
	    (r->ok || r->bad_line < 1 || r->bad_line > lines + 1 || strlen(r->reason) == 0))
		abort();
	al_audit_verifier_free(v);
	return 0;
}
