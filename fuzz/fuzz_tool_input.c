/*
 * fuzz_tool_input.c - libFuzzer target for the file tools' handling of tool
 * input that arrives from the network (an agent.tool_use event's `input`).
 *
 * The first byte picks the tool (read, write, edit, glob, grep, or a name
 * the worker does not own; never bash, which would start a sandbox per
 * run); the rest is parsed as JSON and handed to al_tool_session_run as the
 * input, whatever its type. The tools work in one scratch workspace, so a
 * write of one run is there for the read of the next. Invariants
 * (tools.h): the call never fails for the input's sake (only -ENOMEM), the
 * result is exactly one text block of valid UTF-8 with its hashes set, and
 * glob lists nothing outside the workspace.
 */
#include "core/alloc.h"
#include "worker/tools.h"
#include "worker/worker.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct al_worker_config cfg;
static struct al_tool_session *ts;

static int is_hex64(const char *s)
{
	for (size_t i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[64] == '\0';
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(path); /* best effort */
	return 0;
}

/* The scratch workspace goes when libFuzzer exits (-max_total_time, -runs). */
static void cleanup(void)
{
	al_tool_session_close(ts);
	ts = NULL;
	nftw(cfg.workdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void)
{
	static char dir[] = "/tmp/airlock-fuzz-tool-XXXXXX";
	char err[256];

	al_alloc_init();
	if (mkdtemp(dir) == NULL)
		return -1;
	al_worker_config_init(&cfg);
	cfg.workdir = dir; /* static: never cleared */
	if (al_tool_session_open(&cfg, "sesn_fuzz", NULL, &ts, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_tool_input: %s\n", err);
		return -1;
	}
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const tools[] = {"read", "write", "edit", "glob", "grep", "web_fetch"};
	static int ready;
	struct al_tool_result r;
	json_t *in, *blk, *chk;
	const char *name, *text;
	int rc;

	if (!ready) {
		if (setup() < 0)
			abort();
		ready = 1;
	}
	if (size < 1)
		return 0;
	name = tools[data[0] % (sizeof(tools) / sizeof(tools[0]))];
	in = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
	rc = al_tool_session_run(ts, "work_fuzz", "toolu_fuzz", name, in, &r);
	if (rc == -ENOMEM)
		goto done;
	if (rc != 0 || !is_hex64(r.input_sha256) || !is_hex64(r.result_sha256) ||
	    !json_is_array(r.content) || json_array_size(r.content) != 1)
		abort();
	blk = json_array_get(r.content, 0);
	text = json_string_value(json_object_get(blk, "text"));
	if (text == NULL || strcmp(json_string_value(json_object_get(blk, "type")), "text") != 0)
		abort();
	/* json_string refuses invalid UTF-8: the text must survive a round trip. */
	if ((chk = json_string(text)) == NULL)
		abort();
	json_decref(chk);
	/*
	 * glob lists absolute paths under the workspace, one a line (only the
	 * first line is surely a path's start: a file name may hold a newline).
	 */
	if (!r.is_error && strcmp(name, "glob") == 0 && strcmp(text, "no matches") != 0 &&
	    strncmp(text, cfg.workdir, strlen(cfg.workdir)) != 0) {
		fprintf(stderr, "glob listed a path outside the workspace: %s\n", text);
		abort();
	}
done:
	al_tool_result_clear(&r);
	json_decref(in);
	return 0;
}
