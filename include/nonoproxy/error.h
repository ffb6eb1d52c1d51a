/* nonoproxy — error codes and diagnostics. */
#ifndef NONOPROXY_ERROR_H
#define NONOPROXY_ERROR_H

#include "export.h"

/**
 * Result of every fallible call. Every value is returned by some call. Numbers are never
 * reused: 3, 5, 6, 8, 9 and 10 were codes no call returned, removed in 0.2.0 (CHANGELOG.md).
 */
enum nonoproxy_err {
    NONOPROXY_OK = 0,
    NONOPROXY_ERR_INVALID_ARG = 1, /**< a NULL or bad argument, or a bad config value */
    NONOPROXY_ERR_NOMEM = 2,       /**< an allocation failed */
    NONOPROXY_ERR_IO = 4,          /**< socket or file error (binding the listener, starting
                                        threads); errno in the diag */
    NONOPROXY_ERR_TLS = 7,         /**< a trust file could not be loaded */
    NONOPROXY_ERR_RNG = 11,        /**< the OS random generator failed */
    NONOPROXY_ERR_CREDENTIAL = 12, /**< a credential reference is malformed or unsupported */
};

/** Size of nonoproxy_diag.message, including the terminating NUL. */
#define NONOPROXY_DIAG_LEN 256

/** Details of a failure: filled by calls that take one, on failure only. Caller-owned. */
struct nonoproxy_diag {
    enum nonoproxy_err code;          /**< same value the call returned */
    int sys_errno;                    /**< errno at the failure, 0 if none */
    char message[NONOPROXY_DIAG_LEN]; /**< one line naming the field and value; never a secret */
};

/** Short static description of err; never NULL, also for unknown values. [any thread] */
NONOPROXY_API const char *nonoproxy_strerror(enum nonoproxy_err err);

#endif /* NONOPROXY_ERROR_H */
