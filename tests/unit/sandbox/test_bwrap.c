/* test_bwrap.c - the functional cases (cases.h) against the bwrap backend. */
#define BACKEND_OPS	    al_sandbox_bwrap_ops
#define BACKEND_TAG	    bwrap
#define BACKEND_ENOENT_EXIT 1 /* bwrap: "execvp: No such file or directory", exit 1 */
#define BACKEND_DEGRADED    1 /* no Landlock in bwrap */
#include "cases.h"
