/* record.c - OCSF-aligned audit record builders (see record.h). */
#include "audit/record.h"

#include "core/buf.h"

#include <string.h>

#define OCSF_VERSION "1.1.0"

/* Adds s under key unless NULL. 0 or -1. */
static int set_str(json_t *o, const char *key, const char *s)
{
	if (s == NULL)
		return 0;
	return json_object_set_new(o, key, json_string(s));
}

static int set_int(json_t *o, const char *key, json_int_t v)
{
	return json_object_set_new(o, key, json_integer(v));
}

/*
 * The members every OCSF event carries, plus the "airlock" object with the
 * correlation ids. Returns the record; *ours receives its "airlock" object.
 */
static json_t *base(const struct al_audit_ctx *ctx, int class_uid, const char *class_name,
		    int category_uid, const char *category_name, int activity_id,
		    const char *activity_name, int failed, json_t **ours)
{
	json_t *r = json_object(), *a = json_object(), *meta;
	int rc = 0;

	if (r == NULL || a == NULL)
		goto fail;
	meta = json_pack("{s:s, s:{s:s, s:s, s:s}}", "version", OCSF_VERSION, "product", "name",
			 "airlock", "vendor_name", "airlock", "version", AL_VERSION);
	rc |= json_object_set_new(r, "metadata", meta);
	rc |= set_int(r, "class_uid", class_uid);
	rc |= set_str(r, "class_name", class_name);
	rc |= set_int(r, "category_uid", category_uid);
	rc |= set_str(r, "category_name", category_name);
	rc |= set_int(r, "activity_id", activity_id);
	rc |= set_str(r, "activity_name", activity_name);
	rc |= set_int(r, "type_uid", (json_int_t)class_uid * 100 + activity_id);
	rc |= set_int(r, "severity_id", 1); /* Informational */
	rc |= set_int(r, "status_id", failed ? 2 : 1);
	rc |= set_str(r, "status", failed ? "Failure" : "Success");
	if (ctx) {
		rc |= set_str(a, "sandbox_id", ctx->sandbox_id);
		rc |= set_str(a, "session_id", ctx->session_id);
		rc |= set_str(a, "request_id", ctx->request_id);
		rc |= set_str(a, "tool_call_id", ctx->tool_call_id);
		rc |= set_str(a, "work_id", ctx->work_id);
		rc |= set_str(a, "policy_hash", ctx->policy_hash);
		rc |= set_str(a, "features", ctx->features);
	}
	if (rc != 0 || json_object_set(r, "airlock", a) < 0)
		goto fail;
	json_decref(a); /* r holds it; the borrowed pointer stays valid */
	*ours = a;
	return r;
fail:
	json_decref(r);
	json_decref(a);
	return NULL;
}

static const char *basename_of(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : p;
}

/* OCSF's "process" object: pid, name and the command line as one string. */
static json_t *process_obj(const struct al_audit_proc *p)
{
	json_t *o = json_object();
	al_buf cmd = {0};
	int rc = 0;

	if (o == NULL)
		return NULL;
	rc |= set_int(o, "pid", p->pid);
	if (p->argv && p->argv[0]) {
		rc |= set_str(o, "name", basename_of(p->argv[0]));
		for (size_t i = 0; p->argv[i]; i++)
			if (al_buf_appendf(&cmd, "%s%s", i ? " " : "", p->argv[i]) < 0)
				rc = -1;
		rc |= set_str(o, "cmd_line", cmd.data ? cmd.data : "");
	}
	al_buf_free(&cmd);
	if (rc != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *al_audit_rec_process_launch(const struct al_audit_ctx *ctx, const struct al_audit_proc *p)
{
	json_t *ours = NULL, *r, *argv = json_array(), *env = json_array(), *proc;
	int rc = 0;

	r = base(ctx, 1007, "Process Activity", 1, "System Activity", 1, "Launch", 0, &ours);
	if (r == NULL || argv == NULL || env == NULL)
		goto fail;
	for (size_t i = 0; p->argv && p->argv[i]; i++)
		rc |= json_array_append_new(argv, json_string(p->argv[i]));
	/* Names only: the value after '=' never leaves this loop. */
	for (size_t i = 0; p->env && p->env[i]; i++) {
		const char *eq = strchr(p->env[i], '=');
		size_t n = eq ? (size_t)(eq - p->env[i]) : strlen(p->env[i]);

		rc |= json_array_append_new(env, json_stringn(p->env[i], n));
	}
	proc = json_pack("{s:o, s:o}", "argv", argv, "env_names", env);
	argv = env = NULL; /* json_pack "o" took them, even on failure */
	if (proc == NULL || rc != 0 || set_str(proc, "cwd", p->cwd) < 0 ||
	    json_object_set_new(ours, "process", proc) < 0 ||
	    json_object_set_new(r, "process", process_obj(p)) < 0)
		goto fail;
	return r;
fail:
	json_decref(argv);
	json_decref(env);
	json_decref(r);
	return NULL;
}

json_t *al_audit_rec_process_exit(const struct al_audit_ctx *ctx, const struct al_audit_proc *p)
{
	json_t *ours = NULL, *r, *proc, *out, *ru;
	int failed = p->signal != 0 || p->exit_code != 0 || p->timed_out;
	int rc = 0;

	r = base(ctx, 1007, "Process Activity", 1, "System Activity", 2, "Terminate", failed,
		 &ours);
	if (r == NULL)
		return NULL;
	/* OCSF exit_code; a signal shows as the shell's 128 + N there too. */
	rc |= set_int(r, "exit_code", p->signal ? 128 + p->signal : p->exit_code);
	rc |= json_object_set_new(r, "process", process_obj(p));
	proc = json_pack("{s:i, s:i, s:b, s:I}", "exit_code", p->exit_code, "signal", p->signal,
			 "timed_out", p->timed_out, "duration_us", (json_int_t)p->duration_us);
	out = json_pack("{s:I, s:I, s:b}", "stdout_bytes", (json_int_t)p->stdout_bytes,
			"stderr_bytes", (json_int_t)p->stderr_bytes, "truncated", p->truncated);
	if (proc == NULL || out == NULL) {
		json_decref(proc);
		json_decref(out);
		goto fail;
	}
	rc |= set_str(out, "stdout_sha256", p->stdout_sha256);
	rc |= set_str(out, "stderr_sha256", p->stderr_sha256);
	rc |= json_object_set_new(proc, "output", out);
	if (p->rusage) {
		const struct al_audit_rusage *u = p->rusage;

		ru = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "utime_us",
			       (json_int_t)u->utime_us, "stime_us", (json_int_t)u->stime_us,
			       "maxrss_kb", (json_int_t)u->maxrss_kb, "minflt",
			       (json_int_t)u->minflt, "majflt", (json_int_t)u->majflt, "nvcsw",
			       (json_int_t)u->nvcsw, "nivcsw", (json_int_t)u->nivcsw);
		rc |= json_object_set_new(proc, "rusage", ru);
	}
	rc |= json_object_set_new(ours, "process", proc);
	if (rc != 0)
		goto fail;
	return r;
fail:
	json_decref(r);
	return NULL;
}

json_t *al_audit_rec_file(const struct al_audit_ctx *ctx, const struct al_audit_file *f)
{
	static const char *const names[] = {"Unknown", "Create", "Read",
					    "Update",  "Delete", "Rename"};
	json_t *ours = NULL, *r, *file;
	int op = (f->op >= 1 && f->op <= 5) ? (int)f->op : 0;
	int rc = 0;

	r = base(ctx, 1001, "File System Activity", 1, "System Activity", op, names[op], f->failed,
		 &ours);
	if (r == NULL)
		return NULL;
	file = json_pack("{s:s?, s:s?}", "path", f->path, "name", basename_of(f->path));
	if (file == NULL)
		goto fail;
	if (f->size >= 0)
		rc |= set_int(file, "size", f->size);
	if (f->sha256) {
		/* OCSF fingerprint: algorithm_id 3 is SHA-256. */
		rc |= json_object_set_new(file, "hashes",
					  json_pack("[{s:i, s:s, s:s}]", "algorithm_id", 3,
						    "algorithm", "SHA-256", "value", f->sha256));
	}
	rc |= json_object_set_new(r, "file", file);
	if (f->new_path)
		rc |= json_object_set_new(r, "file_result",
					  json_pack("{s:s, s:s?}", "path", f->new_path, "name",
						    basename_of(f->new_path)));
	rc |= set_str(ours, "reason", f->reason);
	if (rc != 0)
		goto fail;
	return r;
fail:
	json_decref(r);
	return NULL;
}

json_t *al_audit_rec_network(const struct al_audit_ctx *ctx, const struct al_audit_net *n)
{
	json_t *ours = NULL, *r, *dst, *net;
	int refused = n->activity == AL_AUDIT_NET_REFUSE;
	const char *aname = n->activity == AL_AUDIT_NET_OPEN	? "Open"
			    : n->activity == AL_AUDIT_NET_CLOSE ? "Close"
			    : refused				? "Refuse"
								: "Unknown";
	int rc = 0;

	r = base(ctx, 4001, "Network Activity", 4, "Network Activity", (int)n->activity, aname,
		 refused, &ours);
	if (r == NULL)
		return NULL;
	dst = json_pack("{s:s?, s:i, s:s?}", "hostname", n->host, "port", n->port, "ip", n->addr);
	rc |= json_object_set_new(r, "dst_endpoint", dst);
	rc |= json_object_set_new(r, "traffic",
				  json_pack("{s:I, s:I}", "bytes_in", (json_int_t)n->bytes_in,
					    "bytes_out", (json_int_t)n->bytes_out));
	/* OCSF action_id: 1 Allowed, 2 Denied. */
	rc |= set_int(r, "action_id", refused ? 2 : 1);
	rc |= set_str(r, "action", refused ? "Denied" : "Allowed");
	net = json_pack("{s:s, s:s?, s:s?}", "decision", refused ? "deny" : "allow", "reason",
			n->reason, "protocol", n->protocol);
	rc |= json_object_set_new(ours, "network", net);
	if (rc != 0)
		goto fail;
	return r;
fail:
	json_decref(r);
	return NULL;
}

json_t *al_audit_rec_event(const struct al_audit_ctx *ctx, const char *event, int failed,
			   json_t *fields)
{
	json_t *ours = NULL;
	json_t *r = NULL;

	if (event == NULL || (fields != NULL && !json_is_object(fields)))
		goto fail;
	r = base(ctx, 6003, "API Activity", 6, "Application Activity", 99, "Other", failed, &ours);
	if (r == NULL || set_str(ours, "event", event) < 0)
		goto fail;
	if (fields != NULL && json_object_update(ours, fields) < 0)
		goto fail;
	json_decref(fields);
	return r;
fail:
	json_decref(fields);
	json_decref(r);
	return NULL;
}
