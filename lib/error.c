/* nonoproxy_strerror: one switch without default, so -Wswitch flags a missing code (L0). */
#include <nonoproxy/error.h>

const char *
nonoproxy_strerror(enum nonoproxy_err err)
{
    switch (err) {
    case NONOPROXY_OK:
        return "success";
    case NONOPROXY_ERR_INVALID_ARG:
        return "invalid argument or configuration value";
    case NONOPROXY_ERR_NOMEM:
        return "out of memory";
    case NONOPROXY_ERR_IO:
        return "I/O error";
    case NONOPROXY_ERR_TLS:
        return "TLS error";
    case NONOPROXY_ERR_RNG:
        return "random generator failed";
    case NONOPROXY_ERR_CREDENTIAL:
        return "credential unavailable";
    }
    return "unknown error";
}
