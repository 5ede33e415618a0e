/* test_native.c - the functional cases (cases.h) against the native backend. */
#define BACKEND_OPS	    al_sandbox_native_ops
#define BACKEND_TAG	    native
#define BACKEND_ENOENT_EXIT 127
#define BACKEND_DEGRADED    0
#include "cases.h"
