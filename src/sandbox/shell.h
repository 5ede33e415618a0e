/*
 * shell.h - the persistent shell of a sandbox session.
 *
 * One `/bin/bash --noprofile --norc` per sandbox, started on first use, fed
 * one command line per call on its stdin. Each command runs as
 *   eval $'<command, every byte escaped>' </dev/null 2>&1
 * followed by a sentinel `\n__AL_<token>_<status>\0<cwd>\0` on the same merged
 * output pipe, so cd/export persist between calls, a command cannot read the
 * shell's own input, and the output of each call is delimited without
 * waiting for EOF. The token is 128 random bits per shell, so a command cannot
 * forge the end of its own output without reading the shell's stdin.
 *
 * A timeout kills the shell's whole process tree (that is the only way to be
 * sure setsid'd grandchildren die); the next call starts a new shell in the
 * last known cwd and says so (result.shell_restarted). Exported variables are
 * lost on a restart. `exit` in a command ends the shell the same way.
 */
#ifndef AL_SANDBOX_SHELL_H
#define AL_SANDBOX_SHELL_H

#include "sandbox/sandbox.h"

struct al_shell;

/* Kills the shell (if running) and frees. NULL is fine. */
void al_shell_free(struct al_shell *sh);

#endif
