/* Audit ring (SPEC §9), L1: a fixed ring of events guarded by a mutex; when full the oldest
 * event is overwritten and a dropped counter grows. */
#ifndef NP_AUDIT_H
#define NP_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <nonoproxy/audit.h>

struct np_audit_ring;

/* capacity 0 gives a ring that records nothing (drain returns 0, dropped stays 0).
 * Returns 0 or -1 on allocation failure. */
int np_audit_ring_new(size_t capacity, struct np_audit_ring **out);
void np_audit_ring_free(struct np_audit_ring *r); /* NULL-safe */

/* Copy ev into the ring. [any thread] */
void np_audit_ring_push(struct np_audit_ring *r, const struct nonoproxy_audit_event *ev);

/* Move up to max events, oldest first, into out; *dropped (may be NULL) receives the number
 * overwritten since the last drain, which is then reset. [any thread] */
size_t np_audit_ring_drain(struct np_audit_ring *r, struct nonoproxy_audit_event *out, size_t max,
                           uint64_t *dropped);

/* Zero ev and set timestamp, kind DECISION, mode and decision. */
void np_audit_event_init(struct nonoproxy_audit_event *ev, enum nonoproxy_audit_mode mode,
                         enum nonoproxy_audit_decision decision);

/* Set a string field from src[0..len): truncated with "...", control characters replaced. */
void np_audit_set(char *field, size_t cap, const char *src, size_t len);

/* Write src[0..len) to out (capacity cap) with every occurrence of secret (literal or
 * percent-encoded, either case; none when secret is NULL or empty) replaced by "[REDACTED]",
 * each matched against the whole rest of the input; stops when out is full. Never longer than
 * the input (the secret is longer than the marker). Returns the bytes written; no NUL. */
size_t np_audit_redact(char *out, size_t cap, const char *src, size_t len, const char *secret);

/* Set a string field (capacity cap) from src[0..len), replacing every occurrence of secret
 * (when non-NULL and non-empty; literal or percent-encoded, either case) by "[REDACTED]"
 * across the whole input before truncation, so that no part of it survives (SPEC §9). Every
 * field a client can put bytes into (target, path) is set through this. */
void np_audit_set_redacted(char *field, size_t cap, const char *src, size_t len,
                           const char *secret);

/* np_audit_set_redacted into ev->path. */
void np_audit_set_path(struct nonoproxy_audit_event *ev, const char *path, size_t len,
                       const char *secret);

#endif /* NP_AUDIT_H */
