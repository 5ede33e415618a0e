/* clock.h - wall and monotonic time, RFC 3339 timestamps. */
#ifndef AL_CORE_CLOCK_H
#define AL_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (wall clock). */
int64_t al_now_ms(void);
/* Microseconds since the Unix epoch (wall clock). */
int64_t al_now_us(void);
/* Milliseconds from an arbitrary origin; never goes backwards. */
uint64_t al_mono_ms(void);
/* Formats ms since the epoch as "2026-11-27T21:49:55.123Z" (UTC). len >= 25. */
int al_time_format(int64_t ms, char *out, size_t len);
/* The same with microseconds: "2026-11-27T21:49:55.123456Z". len >= 28. */
int al_time_format_us(int64_t us, char *out, size_t len);
/* Parses an RFC 3339 timestamp (Z or +hh:mm offset, optional fraction). */
int al_time_parse(const char *s, int64_t *ms_out);

#endif
