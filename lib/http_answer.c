/* Canned HTTP/1.1 responses (SPEC §1.2): every answer carries Content-Length and
 * Connection: close, and is either complete in the caller's buffer or not written at all. */
#include "http_answer.h"

#include <stdio.h>
#include <string.h>

#define TEXT_PLAIN "text/plain; charset=utf-8"

/* Reason phrase of the status codes the proxy sends (RFC 9110 §15). */
const char *
np_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 402:
        return "Payment Required";
    case 406:
        return "Not Acceptable";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 412:
        return "Precondition Failed";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 422:
        return "Unprocessable Content";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 451:
        return "Unavailable For Legal Reasons";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* Check that extra header text is a sequence of non-empty lines each ending in CRLF, with no
 * bare CR or LF and no line starting with whitespace, so it cannot end the head early or
 * smuggle a line. NULL and "" are fine. */
static int
extra_headers_ok(const char *extra)
{
    size_t i;
    size_t line_start = 0;

    if (extra == NULL) {
        return 1;
    }
    for (i = 0; extra[i] != '\0'; i++) {
        char ch = extra[i];

        if (i == line_start && (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')) {
            return 0;
        }
        if (ch == '\n') {
            return 0; /* every LF is consumed below, right after its CR */
        }
        if (ch == '\r') {
            if (extra[i + 1] != '\n') {
                return 0;
            }
            i++;
            line_start = i + 1;
        }
    }
    return i == line_start;
}

/* What goes into the head of a response. */
struct head_args {
    int status;
    const char *extra_headers; /* may be NULL */
    const char *content_type;  /* may be NULL; omitted when body_len is 0 */
    size_t body_len;
};

/* Write the status line and headers described by a into buf. Returns the head length (buf
 * NUL-terminated), or 0 if it does not fit or the arguments are unusable. */
static size_t
format_head(char *buf, size_t cap, const struct head_args *a)
{
    int n;
    int status = a->status;
    const char *extra_headers = a->extra_headers;
    const char *content_type = a->content_type;
    size_t body_len = a->body_len;
    int with_type = body_len > 0 && content_type != NULL;

    if (buf == NULL || cap == 0 || status < 100 || status > 999 ||
        !extra_headers_ok(extra_headers)) {
        return 0;
    }
    n = snprintf(buf, cap,
                 "HTTP/1.1 %d %s\r\n"
                 "%s"
                 "%s%s%s"
                 "Content-Length: %zu\r\n"
                 "Connection: close\r\n"
                 "\r\n",
                 status, np_http_reason(status), extra_headers != NULL ? extra_headers : "",
                 with_type ? "Content-Type: " : "", with_type ? content_type : "",
                 with_type ? "\r\n" : "", body_len);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

/* Format a complete response with body (NULL = empty). Returns its length, or 0 (buf then
 * holds "") when it does not fit with its terminating NUL. The six parameters are the
 * interface of http_resp.h. */
size_t
np_http_format_response(char *buf, size_t cap, int status, // NOLINT(readability-function-size)
                        const char *extra_headers, const char *content_type, const char *body)
{
    size_t body_len = body != NULL ? strlen(body) : 0;
    struct head_args a = {status, extra_headers, content_type, body_len};
    size_t head_len = format_head(buf, cap, &a);

    if (head_len == 0) {
        return 0;
    }
    if (body_len >= cap - head_len) {
        buf[0] = '\0';
        return 0;
    }
    if (body_len > 0) {
        memcpy(buf + head_len, body, body_len);
    }
    buf[head_len + body_len] = '\0';
    return head_len + body_len;
}

/* Format a text/plain error whose body is line (NULL = empty) plus "\n", every control
 * character of line (bytes below 0x20 and DEL) replaced by a space. Returns the length, or 0
 * when it does not fit. */
size_t
np_http_format_text_error(char *buf, size_t cap, int status, const char *extra_headers,
                          const char *line)
{
    size_t line_len = line != NULL ? strlen(line) : 0;
    size_t body_len = line_len + 1;
    struct head_args a = {status, extra_headers, TEXT_PLAIN, body_len};
    size_t head_len = format_head(buf, cap, &a);
    size_t i;

    if (head_len == 0) {
        return 0;
    }
    if (body_len >= cap - head_len) {
        buf[0] = '\0';
        return 0;
    }
    for (i = 0; i < line_len; i++) {
        unsigned char ch = (unsigned char)line[i];
        char out = line[i];

        if (ch < 0x20 || ch == 0x7f) {
            out = ' ';
        }
        buf[head_len + i] = out;
    }
    buf[head_len + line_len] = '\n';
    buf[head_len + body_len] = '\0';
    return head_len + body_len;
}
