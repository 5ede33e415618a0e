/*
 * ynode.h - a YAML document read into a small tree (libyaml events), with
 * the line of every node, for configuration files with nested mappings.
 *
 * Refused while reading, each with "NAME:LINE: reason": anchors and aliases
 * (a config file needs neither, and aliases allow exponential blow-up),
 * keys that are not plain scalars, duplicate keys in one mapping, NUL bytes
 * in scalars, nesting deeper than AL_YNODE_MAX_DEPTH, more than one
 * document. An empty document is a NULL root.
 */
#ifndef AL_GATEWAY_YNODE_H
#define AL_GATEWAY_YNODE_H

#include <stddef.h>

#define AL_YNODE_MAX_DEPTH 16

enum al_ynode_kind {
	AL_Y_NULL = 0, /* `~`, `null`, or an empty plain value */
	AL_Y_SCALAR,
	AL_Y_MAP,
	AL_Y_SEQ,
};

struct al_ynode {
	enum al_ynode_kind kind;
	unsigned line; /* 1-based line where the node starts */
	char *str;     /* scalar text, NUL-terminated (owned) */
	char **keys;   /* mapping: n keys (owned), in file order */
	unsigned *key_lines;
	struct al_ynode **v; /* mapping values / sequence items (owned) */
	size_t n;
};

/*
 * Parses len bytes. 0 with *out set (NULL for an empty document; free with
 * al_ynode_free); -EINVAL with "NAME:LINE: reason" in err; -ENOMEM.
 */
int al_ynode_parse(const char *data, size_t len, const char *name, struct al_ynode **out, char *err,
		   size_t errlen);
void al_ynode_free(struct al_ynode *n);
/* The value of key in a mapping, or NULL (absent, or n is not a mapping). */
const struct al_ynode *al_ynode_get(const struct al_ynode *n, const char *key);
/* A name for error messages: "a mapping", "a list", "a scalar", "null". */
const char *al_ynode_kind_name(const struct al_ynode *n);

#endif
