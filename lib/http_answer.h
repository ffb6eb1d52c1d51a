/* Canned HTTP responses, L1. Every error answer is a real HTTP/1.1 response with
 * Content-Length and Connection: close (SPEC §1.2). */
#ifndef NP_HTTP_ANSWER_H
#define NP_HTTP_ANSWER_H

#include <stddef.h>

/* Reason phrase for a status code ("Unknown" for others). Static text. */
const char *np_http_reason(int status);

/* A canned answer. */
struct np_answer {
    int status;                /* 100..999 */
    const char *extra_headers; /* each line ending in \r\n, may be NULL */
    const char *content_type;  /* omitted when the body is empty; a literal without CR/LF */
    const char *body;          /* may be NULL (empty); CR and LF inside are kept */
};

/* Format a complete response into buf (capacity cap):
 *   HTTP/1.1 <status> <reason>\r\n
 *   <extra_headers>
 *   Content-Type: <content_type>\r\n      (omitted when body is empty)
 *   Content-Length: <len(body)>\r\n
 *   Connection: close\r\n\r\n<body>
 * Returns the length (buf NUL-terminated), or 0 (buf "") if it does not fit with its NUL. */
size_t np_http_format_response(char *buf, size_t cap, const struct np_answer *a);

/* A plain-text error: body is the line plus "\n", content type text/plain; charset=utf-8.
 * Control characters in line are replaced by spaces. Returns the length, 0 if it does not fit. */
size_t np_http_format_text_error(char *buf, size_t cap, int status, const char *extra_headers,
                                 const char *line);

#endif /* NP_HTTP_ANSWER_H */
