/* nonoproxy — version. */
#ifndef NONOPROXY_VERSION_H
#define NONOPROXY_VERSION_H

#include "export.h"

#define NONOPROXY_VERSION_MAJOR  0
#define NONOPROXY_VERSION_MINOR  2
#define NONOPROXY_VERSION_PATCH  0
#define NONOPROXY_VERSION_STRING "0.2.0"
/** MAJOR << 16 | MINOR << 8 | PATCH, for compile-time comparisons. */
#define NONOPROXY_VERSION_NUM                                                                      \
    ((NONOPROXY_VERSION_MAJOR << 16) | (NONOPROXY_VERSION_MINOR << 8) | NONOPROXY_VERSION_PATCH)

/** The version of the linked library as "MAJOR.MINOR.PATCH". Static text. [any thread] */
NONOPROXY_API const char *nonoproxy_version(void);

#endif /* NONOPROXY_VERSION_H */
