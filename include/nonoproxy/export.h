/* nonoproxy — symbol visibility. */
#ifndef NONOPROXY_EXPORT_H
#define NONOPROXY_EXPORT_H

/* The library is built with -fvisibility=hidden; only declarations marked NONOPROXY_API are
 * exported, so an embedding runtime sees nothing but the nonoproxy_ names. */
#if defined(__GNUC__) || defined(__clang__)
#define NONOPROXY_API __attribute__((visibility("default")))
#else
#define NONOPROXY_API
#endif

#endif /* NONOPROXY_EXPORT_H */
