/* Start-time diagnostics (L0): the one-line message of a failed public call. */
#ifndef NP_DIAG_H
#define NP_DIAG_H

#include <nonoproxy/error.h>

/* Fill diag (may be NULL) with code, errno and a formatted one-line message (truncated to
 * NONOPROXY_DIAG_LEN). Never pass a secret: the message leaves the library. */
void np_diag_set(struct nonoproxy_diag *diag, enum nonoproxy_err code, int sys_errno,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif /* NP_DIAG_H */
