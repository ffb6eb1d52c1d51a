/* Canned HTTP/1.1 responses (SPEC §1.2): every answer carries Content-Length and
 * Connection: close, and is either complete in the caller's buffer or not written at all. */
#include "http_answer.h"

#include <stdbool.h>
#include <string.h>

#include "buf.h"
#include "common.h"

#define TEXT_PLAIN "text/plain; charset=utf-8"

/* Reason phrases of RFC 9110 §15 (and 429, 431 of RFC 6585), by status. */
static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

/* Reason phrase of the status codes the proxy sends (RFC 9110 §15). */
const char *
np_http_reason(int status)
{
    size_t i;

    for (i = 0; i < NP_ARRAY_LEN(reasons); i++) {
        if (reasons[i].status == status) {
            return reasons[i].reason;
        }
    }
    return "Unknown";
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

        np_buf_putc(&b, (char)(ch < 0x20 || ch == 0x7f ? ' ' : ch));
    }
    np_buf_putc(&b, '\n');
    if (!np_buf_ok(&b)) {
        buf[0] = '\0';
        return 0;
    }
    return b.len;
}
