/*
 * journal.h - the worker's exactly-once journal of tool calls (SQLite).
 *
 * The rule (docs/WORKER.md, "Exactly once"):
 *   begin     before a call runs, durably (fsync'd): state STARTED. This is
 *             the one sync the rule needs: without it a power cut could
 *             forget that the call ran and let it run again;
 *   finish    after it ran, with the result event to send: DONE. Committed
 *             without the fsync: it survives a crash of the process (the
 *             WAL is in the page cache), and if a power cut loses it the
 *             call is back at STARTED, so it is answered with the restarted
 *             error below, or, if its result was posted before the cut, the
 *             session's history shows the answer and it is marked ANSWERED.
 *             Either way it never runs twice and is answered at most once;
 *             what a power cut costs is a real result replaced by the error;
 *   answered  once the control plane acknowledged the result (2xx), or the
 *             session's history already holds an answer: ANSWERED (need not
 *             be synced: if it is lost, the history shows the answer).
 * SQLite's WAL frames are checksummed in order, so a power cut drops a
 * suffix of the unsynced commits, never a synced begin; the next begin's
 * fsync makes every earlier finish and answered durable too.
 * After a crash, a call found STARTED is never run again: it is answered with
 * an error result saying the worker restarted during execution; a call found
 * DONE has its stored result sent (it ran once and is answered once); a call
 * found ANSWERED is left alone.
 *
 * Keyed by (session_id, tool_use_id), so it holds across work items of the
 * same session and across restarts of the worker on the same state dir.
 *
 * Thread-safe (SQLite serialized mode plus one mutex): tool threads call
 * begin/finish (and, from a pool job, answered), the loop thread get.
 * begin is group-committed: begins from several threads that arrive while
 * another commit is in progress are committed together in one transaction,
 * one fsync; if that transaction fails, every begin in it fails (none of
 * their calls may run) with the same error.
 */
#ifndef AL_WORKER_JOURNAL_H
#define AL_WORKER_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

enum al_journal_state {
	AL_JOURNAL_NONE = 0,	 /* never seen */
	AL_JOURNAL_STARTED = 1,	 /* began, no result recorded */
	AL_JOURNAL_DONE = 2,	 /* result recorded, not yet acknowledged */
	AL_JOURNAL_ANSWERED = 3, /* answer acknowledged (or seen in history) */
};

struct al_journal;

/*
 * Opens (creating, mode 0600) the journal at path: WAL, synchronous=FULL,
 * schema versioned (a newer schema is refused with -EPROTO, as is an SQLite
 * file that is not a journal). A corrupt or non-SQLite file is -EBADMSG
 * (open runs PRAGMA quick_check: a damaged b-tree could hide a STARTED row
 * and let a call run twice).
 * Returns 0 or a negative errno with a message in err.
 *
 * Every function below returns a negative errno on failure: -EINVAL for a
 * NULL or empty id, -ENOMEM, -EBUSY (another process held the lock past the
 * busy timeout), -ENOSPC, -EBADMSG (corruption found: a stored result
 * whose SHA-256 no longer matches, a state out of range), -EIO. SQLite's
 * message (never a bound value) is logged under "journal".
 */
int al_journal_open(const char *path, struct al_journal **out, char *err, size_t errlen);
void al_journal_close(struct al_journal *j); /* NULL ok */

/*
 * Records that the call is about to run. 0 when newly STARTED; -EEXIST when
 * the call is already known (then *prev holds its state and nothing changed:
 * do not run it). work_id, name and input_sha256 are kept for the operator.
 */
int al_journal_begin(struct al_journal *j, const char *session_id, const char *tool_use_id,
		     const char *work_id, const char *name, const char *input_sha256,
		     enum al_journal_state *prev);
/*
 * STARTED -> DONE with the result event to send (`result_json`, the whole
 * user.tool_result event as compact JSON). -ENOENT if unknown, -EALREADY if
 * already DONE or ANSWERED (unchanged). Committed without the WAL fsync
 * (see the rule above), about 0.05 ms instead of 0.3-0.5.
 */
int al_journal_finish(struct al_journal *j, const char *session_id, const char *tool_use_id,
		      const char *result_json);
/*
 * Any state -> ANSWERED (an unknown call is inserted as ANSWERED: an answer
 * seen in history for a call we never ran). Idempotent. Committed without
 * the WAL fsync (it survives a crash of the process, not always a power
 * loss; the next begin/finish makes it durable), so the loop thread does
 * not wait for the disk.
 */
int al_journal_answered(struct al_journal *j, const char *session_id, const char *tool_use_id);
/*
 * The state of a call; with result_json non-NULL and state DONE or ANSWERED,
 * *result_json receives the stored result (owned: al_free), else NULL.
 */
int al_journal_get(struct al_journal *j, const char *session_id, const char *tool_use_id,
		   enum al_journal_state *state, char **result_json);
/*
 * The connection's PRAGMA synchronous level (2 = FULL, what begin runs
 * under and what the connection is left at between calls), or a negative errno. For tests and diagnostics.
 */
int al_journal_synchronous(struct al_journal *j);
/* Deletes ANSWERED entries last changed more than max_age_ms ago. Returns the count. */
int al_journal_prune(struct al_journal *j, int64_t max_age_ms);

#endif
