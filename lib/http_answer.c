/* Canned HTTP/1.1 responses (SPEC §1.2): every answer carries Content-Length and
 * Connection: close, and is either complete in the caller's buffer or not written at all. */
#include "http_answer.h"

#include <stdbool.h>
#include <string.h>

#include "buf.h"

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

/* Write the status line and headers of a response with a body of body_len bytes. */
static void
put_head(struct np_buf *b, const struct np_answer *a, size_t body_len)
{
    np_buf_printf(b, "HTTP/1.1 %d %s\r\n", a->status, np_http_reason(a->status));
    if (a->extra_headers != NULL) {
        np_buf_puts(b, a->extra_headers);
    }
    if (body_len > 0 && a->content_type != NULL) {
        np_buf_puts(b, "Content-Type: ");
        np_buf_puts(b, a->content_type);
        np_buf_puts(b, "\r\n");
    }
    np_buf_puts(b, "Content-Length: ");
    np_buf_put_u64(b, body_len);
    np_buf_puts(b, "\r\nConnection: close\r\n\r\n");
}

/* Whether a can be written at all: a 3-digit status and well-formed extra header lines. */
static bool
answer_ok(char *buf, size_t cap, const struct np_answer *a)
{
    return buf != NULL && cap > 0 && a->status >= 100 && a->status <= 999 &&
           extra_headers_ok(a->extra_headers);
}

size_t
np_http_format_response(char *buf, size_t cap, const struct np_answer *a)
{
    struct np_buf b;

    if (!answer_ok(buf, cap, a)) {
        return 0;
    }
    np_buf_init_str(&b, buf, cap);
    put_head(&b, a, a->body != NULL ? strlen(a->body) : 0);
    if (a->body != NULL) {
        np_buf_puts(&b, a->body);
    }
    if (!np_buf_ok(&b)) {
        buf[0] = '\0';
        return 0;
    }
    return b.len;
}

size_t
np_http_format_text_error(char *buf, size_t cap, int status, const char *extra_headers,
                          const char *line)
{
    struct np_answer a = {status, extra_headers, TEXT_PLAIN, NULL};
    size_t line_len = line != NULL ? strlen(line) : 0;
    struct np_buf b;
    size_t i;

    if (!answer_ok(buf, cap, &a)) {
        return 0;
    }
    np_buf_init_str(&b, buf, cap);
    put_head(&b, &a, line_len + 1);
    for (i = 0; i < line_len; i++) {
        unsigned char ch = (unsigned char)line[i];

        np_buf_putc(&b, ch < 0x20 || ch == 0x7f ? ' ' : line[i]);
    }
    np_buf_putc(&b, '\n');
    if (!np_buf_ok(&b)) {
        buf[0] = '\0';
        return 0;
    }
    return b.len;
}
