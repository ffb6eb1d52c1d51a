/* nonoproxy — error codes and diagnostics. */
#ifndef NONOPROXY_ERROR_H
#define NONOPROXY_ERROR_H

#include "export.h"

/** Result of every fallible call. Append only: values are never renumbered or removed. */
enum nonoproxy_err {
    NONOPROXY_OK = 0,
    NONOPROXY_ERR_INVALID_ARG = 1, /**< bad parameter or config value */
    NONOPROXY_ERR_NOMEM = 2,       /**< an allocation failed */
    NONOPROXY_ERR_LIMIT = 3,       /**< a configured bound was exceeded */
    NONOPROXY_ERR_IO = 4,          /**< socket or file error; errno in the diag */
    NONOPROXY_ERR_DENIED = 5,      /**< host filter or token rejected */
    NONOPROXY_ERR_PARSE = 6,       /**< malformed input */
    NONOPROXY_ERR_TLS = 7,         /**< TLS handshake or verification failed */
    NONOPROXY_ERR_UPSTREAM = 8,    /**< upstream or external proxy failed */
    NONOPROXY_ERR_STATE = 9,       /**< call not valid in the current state */
    NONOPROXY_ERR_TIMEOUT = 10,    /**< a deadline passed */
    NONOPROXY_ERR_RNG = 11,        /**< the OS random generator failed */
    NONOPROXY_ERR_CREDENTIAL = 12, /**< a credential reference could not be used */
};

/** Size of nonoproxy_diag.message, including the terminating NUL. */
#define NONOPROXY_DIAG_LEN 256

/** Details of a failure: filled by calls that take one, on failure only. Caller-owned. */
struct nonoproxy_diag {
    enum nonoproxy_err code;             /**< same value the call returned */
    int sys_errno;                       /**< errno at the failure, 0 if none */
    char message[NONOPROXY_DIAG_LEN];    /**< one line naming the field and value; never a secret */
};

/** Short static description of err; never NULL, also for unknown values. [any thread] */
NONOPROXY_API const char *nonoproxy_strerror(enum nonoproxy_err err);

#endif /* NONOPROXY_ERROR_H */
