/* Start-time diagnostics (L0): see diag.h. */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>

void
np_diag_set(struct nonoproxy_diag *diag, enum nonoproxy_err code, int sys_errno, const char *fmt,
            ...)
{
    va_list ap;

    if (diag == NULL) {
        return;
    }
    diag->code = code;
    diag->sys_errno = sys_errno;
    va_start(ap, fmt);
    (void)vsnprintf(diag->message, sizeof(diag->message), fmt, ap);
    va_end(ap);
}
