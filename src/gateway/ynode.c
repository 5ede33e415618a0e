/*
 * ynode.c - YAML events into a tree with line numbers.
 */
#include "gateway/ynode.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

struct yp {
	yaml_parser_t parser;
	yaml_event_t ev;
	int have_ev;
	const char *name;
	char *err;
	size_t errlen;
};

static int yfail(struct yp *y, unsigned line, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int yfail(struct yp *y, unsigned line, int rc, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (y->err && y->errlen)
		snprintf(y->err, y->errlen, "%s:%u: %s", y->name, line, msg);
	return rc;
}

static unsigned ev_line(const struct yp *y)
{
	return (unsigned)y->ev.start_mark.line + 1;
}

static int next(struct yp *y)
{
	if (y->have_ev)
		yaml_event_delete(&y->ev);
	y->have_ev = 0;
	if (!yaml_parser_parse(&y->parser, &y->ev)) {
		if (y->parser.error == YAML_MEMORY_ERROR) {
			if (y->err && y->errlen)
				snprintf(y->err, y->errlen, "out of memory");
			return -ENOMEM;
		}
		return yfail(y, (unsigned)y->parser.problem_mark.line + 1, -EINVAL,
			     "YAML error: %s", y->parser.problem ? y->parser.problem : "malformed");
	}
	y->have_ev = 1;
	return 0;
}

void al_ynode_free(struct al_ynode *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->n; i++) {
		if (n->keys)
			al_free(n->keys[i]);
		al_ynode_free(n->v[i]);
	}
	al_free(n->keys);
	al_free(n->key_lines);
	al_free(n->v);
	al_free(n->str);
	al_free(n);
}

static int push(struct al_ynode *n, char *key, unsigned key_line, struct al_ynode *v)
{
	size_t cap = n->n + 1;
	struct al_ynode **nv = al_realloc(n->v, cap * sizeof(*nv));

	if (nv == NULL)
		return -ENOMEM;
	n->v = nv;
	if (n->kind == AL_Y_MAP) {
		char **nk = al_realloc(n->keys, cap * sizeof(*nk));
		if (nk == NULL)
			return -ENOMEM;
		n->keys = nk;
		unsigned *nl = al_realloc(n->key_lines, cap * sizeof(*nl));
		if (nl == NULL)
			return -ENOMEM;
		n->key_lines = nl;
		n->keys[n->n] = key;
		n->key_lines[n->n] = key_line;
	}
	n->v[n->n++] = v;
	return 0;
}

/* Builds the node whose first event is the current one. */
static int build(struct yp *y, int depth, struct al_ynode **out)
{
	struct al_ynode *n = NULL;
	char *key = NULL;
	int rc = -ENOMEM;

	*out = NULL;
	if (depth > AL_YNODE_MAX_DEPTH)
		return yfail(y, ev_line(y), -EINVAL, "nested deeper than %d levels",
			     AL_YNODE_MAX_DEPTH);
	if (y->ev.type == YAML_ALIAS_EVENT)
		return yfail(y, ev_line(y), -EINVAL, "aliases are not allowed");
	if ((y->ev.type == YAML_SCALAR_EVENT && y->ev.data.scalar.anchor) ||
	    (y->ev.type == YAML_MAPPING_START_EVENT && y->ev.data.mapping_start.anchor) ||
	    (y->ev.type == YAML_SEQUENCE_START_EVENT && y->ev.data.sequence_start.anchor))
		return yfail(y, ev_line(y), -EINVAL, "anchors are not allowed");
	n = al_calloc(1, sizeof(*n));
	if (n == NULL)
		goto fail;
	n->line = ev_line(y);
	switch (y->ev.type) {
	case YAML_SCALAR_EVENT: {
		const char *v = (const char *)y->ev.data.scalar.value;
		if (strlen(v) != y->ev.data.scalar.length) {
			rc = yfail(y, n->line, -EINVAL, "a value contains a NUL byte");
			goto fail;
		}
		if (y->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		    (v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0)) {
			n->kind = AL_Y_NULL;
			break;
		}
		n->kind = AL_Y_SCALAR;
		if ((n->str = al_strdup(v)) == NULL)
			goto fail;
		break;
	}
	case YAML_SEQUENCE_START_EVENT:
		n->kind = AL_Y_SEQ;
		for (;;) {
			struct al_ynode *item;
			if ((rc = next(y)) < 0)
				goto fail;
			if (y->ev.type == YAML_SEQUENCE_END_EVENT)
				break;
			if ((rc = build(y, depth + 1, &item)) < 0)
				goto fail;
			if ((rc = push(n, NULL, 0, item)) < 0) {
				al_ynode_free(item);
				goto fail;
			}
		}
		break;
	case YAML_MAPPING_START_EVENT:
		n->kind = AL_Y_MAP;
		for (;;) {
			struct al_ynode *val;
			unsigned kl;
			if ((rc = next(y)) < 0)
				goto fail;
			if (y->ev.type == YAML_MAPPING_END_EVENT)
				break;
			kl = ev_line(y);
			if (y->ev.type != YAML_SCALAR_EVENT ||
			    y->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
			    y->ev.data.scalar.anchor ||
			    strlen((const char *)y->ev.data.scalar.value) !=
				y->ev.data.scalar.length) {
				rc = yfail(y, kl, -EINVAL, "keys must be plain scalars");
				goto fail;
			}
			for (size_t i = 0; i < n->n; i++)
				if (strcmp(n->keys[i], (const char *)y->ev.data.scalar.value) ==
				    0) {
					rc = yfail(y, kl, -EINVAL,
						   "duplicate key '%s' (first on line %u)",
						   n->keys[i], n->key_lines[i]);
					goto fail;
				}
			rc = -ENOMEM;
			if ((key = al_strdup((const char *)y->ev.data.scalar.value)) == NULL)
				goto fail;
			if ((rc = next(y)) < 0)
				goto fail;
			if ((rc = build(y, depth + 1, &val)) < 0)
				goto fail;
			if ((rc = push(n, key, kl, val)) < 0) {
				al_ynode_free(val);
				goto fail;
			}
			key = NULL;
		}
		break;
	default:
		rc = yfail(y, n->line, -EINVAL, "unexpected YAML event");
		goto fail;
	}
	*out = n;
	return 0;
fail:
	if (rc == -ENOMEM && y->err && y->errlen)
		snprintf(y->err, y->errlen, "out of memory");
	al_free(key);
	al_ynode_free(n);
	return rc;
}

int al_ynode_parse(const char *data, size_t len, const char *name, struct al_ynode **out, char *err,
		   size_t errlen)
{
	struct yp y;
	struct al_ynode *root = NULL;
	int rc;

	memset(&y, 0, sizeof(y));
	*out = NULL;
	y.name = name ? name : "config";
	y.err = err;
	y.errlen = errlen;
	if (!yaml_parser_initialize(&y.parser)) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)data, len);
	if ((rc = next(&y)) < 0) /* STREAM_START */
		goto done;
	if ((rc = next(&y)) < 0)
		goto done;
	if (y.ev.type == YAML_STREAM_END_EVENT)
		goto done;	 /* empty */
	if ((rc = next(&y)) < 0) /* the root's first event */
		goto done;
	if ((rc = build(&y, 0, &root)) < 0)
		goto done;
	if ((rc = next(&y)) < 0) /* DOCUMENT_END */
		goto done;
	if ((rc = next(&y)) < 0)
		goto done;
	if (y.ev.type != YAML_STREAM_END_EVENT) {
		rc = yfail(&y, ev_line(&y), -EINVAL, "only one YAML document is allowed");
		goto done;
	}
	if (root && root->kind == AL_Y_NULL) {
		al_ynode_free(root);
		root = NULL;
	}
	*out = root;
	root = NULL;
	rc = 0;
done:
	al_ynode_free(root);
	if (y.have_ev)
		yaml_event_delete(&y.ev);
	yaml_parser_delete(&y.parser);
	return rc;
}

const struct al_ynode *al_ynode_get(const struct al_ynode *n, const char *key)
{
	if (n == NULL || n->kind != AL_Y_MAP)
		return NULL;
	for (size_t i = 0; i < n->n; i++)
		if (strcmp(n->keys[i], key) == 0)
			return n->v[i];
	return NULL;
}

const char *al_ynode_kind_name(const struct al_ynode *n)
{
	if (n == NULL)
		return "nothing";
	switch (n->kind) {
	case AL_Y_MAP:
		return "a mapping";
	case AL_Y_SEQ:
		return "a list";
	case AL_Y_SCALAR:
		return "a scalar";
	default:
		return "null";
	}
}
