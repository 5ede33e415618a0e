/*
 * syslog.h - export of audit records as RFC 5424 syslog messages over UDP
 * or TCP (RFC 6587 octet-counting framing).
 *
 * Export is best effort by design: the local log file is the source of
 * truth. A failed send is counted and reported (al_warn, once per outage)
 * but never fails al_audit_write, so a collector outage cannot stop the
 * sandbox while the local chain keeps everything. TLS transport (RFC 5425)
 * is not implemented yet; use a local relay (rsyslog/syslog-ng omfwd with TLS)
 * when the collector is off-host.
 *
 * Message layout (one record per message):
 *   <110>1 TIMESTAMP HOSTNAME airlock PROCID MSGID [airlock@32473 seq="N"
 *   hash="HEX" component="NAME"] JSON
 * PRI 110 = facility 13 (log audit) * 8 + severity 6 (informational).
 * MSGID is the record's OCSF class_uid ("1007"), else its "type"
 * ("checkpoint", "audit_open"), else "-". 32473 is the enterprise number
 * RFC 5612 reserves for documentation: a placeholder until airlock has one.
 */
#ifndef AL_AUDIT_SYSLOG_H
#define AL_AUDIT_SYSLOG_H

#include "core/buf.h"

#include <jansson.h>

typedef struct al_audit_syslog al_audit_syslog;

/*
 * target: "udp://HOST:PORT" or "tcp://HOST:PORT" (HOST may be [v6]). The
 * address is resolved now; a TCP connection is attempted now and again
 * after failures with a growing back-off (1 s to 60 s), so an unreachable
 * collector costs at most one short connect attempt per back-off period.
 * Returns 0, -EINVAL (bad target, words in err) or -ENOMEM.
 */
int al_audit_syslog_open(const char *target, al_audit_syslog **out, char *err, size_t errlen);
void al_audit_syslog_close(al_audit_syslog *s);

/*
 * Formats one record (`rec`, already carrying seq/time/hash; `json` its
 * serialized line without '\n') as an RFC 5424 message, appended to out
 * without any transport framing.
 */
int al_audit_syslog_format(const json_t *rec, const char *json, const char *hostname, long pid,
			   al_buf *out);

/* Sends one record. 0 or a negative errno; the caller only counts failures. */
int al_audit_syslog_send(al_audit_syslog *s, const json_t *rec, const char *json);

#endif
