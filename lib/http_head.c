/* The HTTP/1.x head grammar (SPEC §1.2): see http_head.h. */
#include "http_head.h"

#include <http_parser.h>
#include <stdint.h>
#include <string.h>

/* (defined() so that analysers that do not read system headers still get through) */
#if defined(HTTP_PARSER_VERSION_MAJOR) &&                                                          \
    (HTTP_PARSER_VERSION_MAJOR != 2 || HTTP_PARSER_VERSION_MINOR < 9)
#error "nonoproxy needs http-parser 2.9 or a later 2.x"
#endif

/* Empty lines (CRLF or LF) tolerated before the start line (RFC 9112 §2.2), in bytes. */
#define LEADING_EMPTY_MAX 8

/* "HTTP/1.1 200": the shortest status line (the reason phrase may be absent). */
#define STATUS_LINE_MIN 12

static const char why_header[] = "invalid header";
static const char why_cl_invalid[] = "invalid Content-Length";
static const char why_cl_conflict[] = "conflicting Content-Length";
static const char why_cl_duplicate[] = "duplicate Content-Length";
static const char why_cl_and_te[] = "both Content-Length and Transfer-Encoding";
static const char why_te_http10_req[] = "Transfer-Encoding in an HTTP/1.0 request";
static const char why_te_http10_resp[] = "Transfer-Encoding in an HTTP/1.0 response";
static const char why_status_line[] = "malformed status line";
static const char why_status[] = "invalid status code";
static const char why_version[] = "unsupported HTTP version";
static const char why_request_line[] = "malformed request line";
static const char why_malformed[] = "malformed head";
const char np_head_why_te[] = "unsupported Transfer-Encoding";
const char np_head_why_te_coding[] = "transfer codings other than chunked are not supported";

/* ---------------------------------------------------------------------------------------- */
/* Byte classes and slices                                                                  */
/* ---------------------------------------------------------------------------------------- */

bool
np_http_is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool
is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

bool
np_http_is_tchar(char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch)) {
        return true;
    }
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

bool
np_http_is_text(char ch)
{
    unsigned char c = (unsigned char)ch;

    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

void
np_http_trim_ows(const char **p, size_t *len)
{
    while (*len > 0 && np_http_is_ows((*p)[0])) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && np_http_is_ows((*p)[*len - 1])) {
        (*len)--;
    }
}

bool
np_http_ieq(const char *s, size_t len, const char *word)
{
    return np_ascii_ieq(s, len, word, strlen(word));
}

bool
np_head_next_line(const char *head, size_t head_len, size_t *pos, struct np_slice *line)
{
    const char *lf;
    size_t n;

    if (*pos >= head_len) {
        return false;
    }
    lf = memchr(head + *pos, '\n', head_len - *pos);
    if (lf == NULL) {
        return false;
    }
    n = (size_t)(lf - (head + *pos));
    line->p = head + *pos;
    line->len = (n > 0 && line->p[n - 1] == '\r') ? n - 1 : n;
    *pos += n + 1;
    return line->len > 0;
}

/* ---------------------------------------------------------------------------------------- */
/* np_head_scan                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Scan state: where the next line starts and what the bytes have shown so far. */
struct scan {
    const char *buf;
    size_t len;
    size_t pos;         /* next byte to examine */
    size_t block_start; /* offset of the first header-block byte */
    size_t n_lines;     /* header lines seen (counted at their first byte) */
};

/* Classify the line ending that starts at s->pos (a CR or LF byte): returns its length (1 or
 * 2), 0 if a CR is the last byte received so far (need more), or -1 for a bare CR. */
static int
line_end_len(const struct scan *s)
{
    if (s->buf[s->pos] == '\n') {
        return 1;
    }
    if (s->pos + 1 >= s->len) {
        return 0;
    }
    return s->buf[s->pos + 1] == '\n' ? 2 : -1;
}

/* Skip the empty lines allowed before the start line. */
static enum np_head_scan
scan_leading(struct scan *s)
{
    size_t start = s->pos;

    while (s->pos < s->len && (s->buf[s->pos] == '\r' || s->buf[s->pos] == '\n')) {
        int el;

        if (s->pos - start >= LEADING_EMPTY_MAX) {
            return NP_HEAD_MALFORMED; /* too many empty lines, or an empty start line */
        }
        el = line_end_len(s);
        if (el == 0) {
            return NP_HEAD_NEED_MORE;
        }
        if (el < 0 || s->pos - start + (size_t)el > LEADING_EMPTY_MAX) {
            return NP_HEAD_MALFORMED;
        }
        s->pos += (size_t)el;
    }
    return s->pos < s->len ? NP_HEAD_COMPLETE : NP_HEAD_NEED_MORE;
}

/* At a CR or LF: step over the line ending, which may take at most room bytes (else
 * TOO_LARGE). NEED_MORE when its end has not arrived, MALFORMED for a bare CR. */
static enum np_head_scan
take_line_end(struct scan *s, size_t room)
{
    int el = line_end_len(s);

    if (el == 0) {
        return NP_HEAD_NEED_MORE;
    }
    if (el < 0) {
        return NP_HEAD_MALFORMED;
    }
    if ((size_t)el > room) {
        return NP_HEAD_TOO_LARGE;
    }
    s->pos += (size_t)el;
    return NP_HEAD_COMPLETE;
}

/* Scan the start line up to and including its line ending; COMPLETE means "line done". Its
 * content (without the ending) may hold at most NP_MAX_REQUEST_LINE bytes. */
static enum np_head_scan
scan_start_line(struct scan *s)
{
    size_t start = s->pos;

    for (; s->pos < s->len; s->pos++) {
        char ch = s->buf[s->pos];

        if (ch == '\0') {
            return NP_HEAD_MALFORMED;
        }
        if (ch == '\r' || ch == '\n') {
            return take_line_end(s, SIZE_MAX);
        }
        if (s->pos - start >= NP_MAX_REQUEST_LINE) {
            return NP_HEAD_URI_TOO_LONG; /* this is byte NP_MAX_REQUEST_LINE + 1 */
        }
    }
    return NP_HEAD_NEED_MORE;
}

/* Scan one header line starting at s->pos (not at a CR/LF), up to and including its line
 * ending. Every byte of it, ending included, counts against NP_MAX_HEADER_BLOCK. */
static enum np_head_scan
scan_header_line(struct scan *s)
{
    char first = s->buf[s->pos];

    if (first == ' ' || first == '\t') {
        return NP_HEAD_MALFORMED; /* obsolete line folding */
    }
    s->n_lines++;
    if (s->n_lines > NP_MAX_HEADERS) {
        return NP_HEAD_TOO_LARGE;
    }
    for (; s->pos < s->len; s->pos++) {
        char ch = s->buf[s->pos];

        if (s->pos - s->block_start >= NP_MAX_HEADER_BLOCK) {
            return NP_HEAD_TOO_LARGE; /* this is byte NP_MAX_HEADER_BLOCK + 1 */
        }
        if (ch == '\0') {
            return NP_HEAD_MALFORMED;
        }
        if (ch == '\r' || ch == '\n') {
            /* The ending counts too: the LF of a CRLF may be the byte too many. */
            return take_line_end(s, NP_MAX_HEADER_BLOCK - (s->pos - s->block_start));
        }
    }
    return NP_HEAD_NEED_MORE;
}

/* Find the end of the head in buf[0..len): leading empty lines, the start line, then header
 * lines until the first empty line. Decides on the first byte that proves a verdict; never
 * reads buf[len] or beyond. One pass, O(len). */
enum np_head_scan
np_head_scan(const char *buf, size_t len, size_t *head_len)
{
    struct scan s = {buf, len, 0, 0, 0};
    enum np_head_scan rc;

    rc = scan_leading(&s);
    if (rc != NP_HEAD_COMPLETE) {
        goto out;
    }
    rc = scan_start_line(&s);
    if (rc != NP_HEAD_COMPLETE) {
        goto out;
    }
    s.block_start = s.pos;
    rc = NP_HEAD_NEED_MORE;
    while (s.pos < s.len) {
        if (s.buf[s.pos] == '\r' || s.buf[s.pos] == '\n') {
            int el = line_end_len(&s);

            if (el == 0) {
                rc = NP_HEAD_NEED_MORE;
            } else if (el < 0) {
                rc = NP_HEAD_MALFORMED;
            } else {
                *head_len = s.pos + (size_t)el;
                rc = NP_HEAD_COMPLETE;
            }
            goto out;
        }
        rc = scan_header_line(&s);
        if (rc != NP_HEAD_COMPLETE) {
            goto out;
        }
        rc = NP_HEAD_NEED_MORE;
    }
out:
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Our own reading of the start line and the framing headers                               */
/* ---------------------------------------------------------------------------------------- */

/* Parse a Content-Length value: one or more digits, no sign, no list, at most
 * 18446744073709551609: http-parser 2.9 refuses a digit once the value so far exceeds
 * (UINT64_MAX - 10) / 10, and the same limit here makes both always agree. */
static bool
parse_content_length(const char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (!is_digit(p[i]) || v > (UINT64_MAX - 10) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* Apply one Content-Length value to v. A duplicate is refused even when equal, because
 * http-parser 2.9 refuses it too (RFC 9112 §6.3 allows either). */
static const char *
check_content_length(const char *value, size_t len, struct np_head_view *v)
{
    uint64_t cl = 0;

    if (!parse_content_length(value, len, &cl)) {
        return why_cl_invalid;
    }
    if (v->has_cl) {
        return cl == v->cl ? why_cl_duplicate : why_cl_conflict;
    }
    v->has_cl = true;
    v->cl = cl;
    return NULL;
}

/* Apply one Transfer-Encoding value (a comma list of codings) to v. Elements must be
 * non-empty; nothing may follow chunked (RFC 9112 §7: chunked is applied once, last). */
static const char *
check_transfer_encoding(const char *value, size_t len, struct np_head_view *v)
{
    size_t i = 0;

    v->has_te = true;
    for (;;) {
        const char *comma = memchr(value + i, ',', len - i);
        size_t end = comma != NULL ? (size_t)(comma - value) : len;
        const char *elem = value + i;
        size_t elem_len = end - i;

        np_http_trim_ows(&elem, &elem_len);
        if (elem_len == 0 || v->chunked) {
            return np_head_why_te; /* an empty element, or a coding after chunked */
        }
        v->chunked = np_http_ieq(elem, elem_len, "chunked");
        v->te_other = v->te_other || !v->chunked;
        if (comma == NULL) {
            break;
        }
        i = end + 1;
    }
    return NULL;
}

const char *
np_head_check_field(const struct np_slice *line, struct np_head_view *v)
{
    const char *colon = memchr(line->p, ':', line->len);
    const char *value;
    size_t name_len;
    size_t value_len;
    size_t i;

    if (colon == NULL || colon == line->p) {
        return why_header;
    }
    name_len = (size_t)(colon - line->p);
    for (i = 0; i < name_len; i++) {
        if (!np_http_is_tchar(line->p[i])) {
            return why_header;
        }
    }
    value = colon + 1;
    value_len = line->len - name_len - 1;
    np_http_trim_ows(&value, &value_len);
    if (np_http_ieq(line->p, name_len, "content-length")) {
        return check_content_length(value, value_len, v);
    }
    if (np_http_ieq(line->p, name_len, "transfer-encoding")) {
        return check_transfer_encoding(value, value_len, v);
    }
    return NULL;
}

bool
np_head_status_prefix_ok(const char *p, size_t len)
{
    static const char want[] = "HTTP/1.";
    size_t n = len < sizeof(want) - 1 ? len : sizeof(want) - 1;

    if (memcmp(p, want, n) != 0) {
        return false;
    }
    if (len > 7 && !is_digit(p[7])) {
        return false;
    }
    return len <= 8 || p[8] == ' ';
}

const char *
np_head_check_status_line(const struct np_slice *line, struct np_head_view *v)
{
    const char *l = line->p;
    size_t i;

    if (line->len < STATUS_LINE_MIN || memcmp(l, "HTTP/", 5) != 0 || !is_digit(l[5]) ||
        l[6] != '.' || !is_digit(l[7]) || l[8] != ' ' || !is_digit(l[9]) || !is_digit(l[10]) ||
        !is_digit(l[11]) || (line->len > STATUS_LINE_MIN && l[STATUS_LINE_MIN] != ' ')) {
        return why_status_line;
    }
    for (i = STATUS_LINE_MIN + 1; i < line->len; i++) {
        if (!np_http_is_text(l[i])) {
            return why_status_line;
        }
    }
    v->major = (unsigned short)(l[5] - '0');
    v->minor = (unsigned short)(l[7] - '0');
    v->status =
        (unsigned)(l[9] - '0') * 100 + (unsigned)(l[10] - '0') * 10 + (unsigned)(l[11] - '0');
    if (v->major != 1 || v->minor > 1) {
        return why_version;
    }
    if (v->status < 100 || v->status > 599) {
        return why_status;
    }
    return NULL;
}

const char *
np_head_check_framing(const struct np_head_view *v, bool request, bool *unsupported)
{
    *unsupported = false;
    if (v->has_cl && v->has_te) {
        return why_cl_and_te;
    }
    if (v->has_te && !v->chunked) {
        return np_head_why_te; /* RFC 9112 §6.1: the final coding must be chunked */
    }
    if (v->has_te && v->minor == 0) {
        return request ? why_te_http10_req : why_te_http10_resp; /* RFC 9112 §6.1 */
    }
    if (v->te_other) {
        *unsupported = true;
        return np_head_why_te_coding;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* http-parser                                                                              */
/* ---------------------------------------------------------------------------------------- */

static int
sink_field(struct np_header_sink *s, const char *at, size_t len)
{
    struct np_header *h;

    if (s->last == 1) {
        h = &s->headers[*s->n - 1];
        if (at != h->name + h->name_len) {
            s->bad = true;
            return 1;
        }
        h->name_len += len;
        return 0;
    }
    if (*s->n >= NP_MAX_HEADERS) {
        s->bad = true;
        return 1;
    }
    h = &s->headers[(*s->n)++];
    h->name = at;
    h->name_len = len;
    h->value = at + len; /* empty until a value arrives; stays inside the head */
    h->value_len = 0;
    s->last = 1;
    return 0;
}

static int
sink_value(struct np_header_sink *s, const char *at, size_t len)
{
    struct np_header *h;

    if (s->last == 0) {
        s->bad = true;
        return 1;
    }
    h = &s->headers[*s->n - 1];
    if (s->last == 2) {
        if (at != h->value + h->value_len) {
            s->bad = true;
            return 1;
        }
        h->value_len += len;
        return 0;
    }
    h->value = at;
    h->value_len = len;
    s->last = 2;
    return 0;
}

/* Record the request-target; extend it if http-parser delivers it in several slices. */
static int
on_url(http_parser *hp, const char *at, size_t len)
{
    struct np_head_parsed *p = hp->data;

    if (p->target.p == NULL) {
        p->target.p = at;
        p->target.len = len;
    } else if (at == p->target.p + p->target.len) {
        p->target.len += len;
    } else {
        p->hs.bad = true;
        return 1;
    }
    return 0;
}

static int
on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct np_head_parsed *p = hp->data;

    return sink_field(&p->hs, at, len);
}

static int
on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct np_head_parsed *p = hp->data;

    return sink_value(&p->hs, at, len);
}

/* Capture what http-parser decided about the head, then pause: no body is parsed here. */
static int
on_headers_complete(http_parser *hp)
{
    struct np_head_parsed *p = hp->data;

    p->done = true;
    p->chunked = (hp->flags & F_CHUNKED) != 0;
    p->has_cl = (hp->flags & F_CONTENTLENGTH) != 0;
    p->cl = hp->content_length;
    p->status = hp->status_code;
    p->method = hp->method;
    p->major = hp->http_major;
    p->minor = hp->http_minor;
    p->keep_alive = http_should_keep_alive(hp) != 0;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings head_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

/* Name the reason for an http-parser error. */
static const char *
parser_why(enum http_errno err)
{
    switch (err) {
    case HPE_INVALID_METHOD:
        return "invalid method";
    case HPE_INVALID_URL:
    case HPE_INVALID_HOST:
    case HPE_INVALID_PORT:
    case HPE_INVALID_PATH:
    case HPE_INVALID_QUERY_STRING:
    case HPE_INVALID_FRAGMENT:
        return "invalid request target";
    case HPE_INVALID_VERSION:
        return why_version;
    case HPE_INVALID_STATUS:
        return why_status_line;
    case HPE_INVALID_HEADER_TOKEN:
    case HPE_CB_header_field:
    case HPE_CB_header_value:
        return why_header;
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        return why_cl_invalid;
    case HPE_INVALID_TRANSFER_ENCODING:
        return np_head_why_te;
    default:
        return why_malformed;
    }
}

/* Run http-parser over the whole head into *out, pausing at its end; trim the values. */
static const char *
run_parser(bool request, const char *head, size_t head_len, struct np_head_parsed *out)
{
    http_parser parser;
    size_t parsed;
    enum http_errno err;
    size_t i;

    http_parser_init(&parser, request ? HTTP_REQUEST : HTTP_RESPONSE);
    parser.data = out;
    parsed = http_parser_execute(&parser, &head_settings, head, head_len);
    err = HTTP_PARSER_ERRNO(&parser);
    if (out->hs.bad) {
        return why_header;
    }
    if (err != HPE_PAUSED) {
        return parser_why(err);
    }
    /* Paused in on_headers_complete, at the final LF: the head must end exactly there. */
    if (!out->done || parsed + 1 != head_len) {
        return why_malformed;
    }
    for (i = 0; i < *out->hs.n; i++) {
        np_http_trim_ows(&out->hs.headers[i].value, &out->hs.headers[i].value_len);
    }
    return NULL;
}

/* Whether http-parser's reading p agrees with ours, v. */
static const char *
check_agreement(const struct np_head_parsed *p, const struct np_head_view *v)
{
    if (v->method.p != NULL) {
        const char *name = np_http_method_name(p->method);

        if (strlen(name) != v->method.len || memcmp(name, v->method.p, v->method.len) != 0 ||
            p->target.p != v->target.p || p->target.len != v->target.len) {
            return why_request_line;
        }
    } else if (p->status != v->status) {
        return why_status_line;
    }
    if (p->major != v->major || p->minor != v->minor) {
        return v->method.p != NULL ? why_request_line : why_status_line;
    }
    if (p->chunked != v->chunked) {
        return np_head_why_te;
    }
    if (p->has_cl != v->has_cl || (v->has_cl && p->cl != v->cl)) {
        return why_cl_invalid;
    }
    return NULL;
}

bool
np_head_whole(const char *head, size_t head_len)
{
    size_t scanned = 0;

    return np_head_scan(head, head_len, &scanned) == NP_HEAD_COMPLETE && scanned == head_len;
}

const char *
np_head_parse_agreed(bool request, const char *head, size_t head_len,
                     const struct np_head_view *own, struct np_head_parsed *out)
{
    const char *why = run_parser(request, head, head_len, out);

    return why != NULL ? why : check_agreement(out, own);
}

const char *
np_http_method_name(unsigned method)
{
    return http_method_str((enum http_method)method);
}

bool
np_http_method_known(const char *m, size_t len)
{
    static const char *const names[] = {
#define NP_METHOD_NAME(num, name, string) #string,
        HTTP_METHOD_MAP(NP_METHOD_NAME)
#undef NP_METHOD_NAME
    };
    size_t i;

    for (i = 0; i < NP_ARRAY_LEN(names); i++) {
        if (strlen(names[i]) == len && memcmp(names[i], m, len) == 0) {
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Header lookups and the hop-by-hop rule                                                   */
/* ---------------------------------------------------------------------------------------- */

const struct np_header *
np_header_find(const struct np_header *headers, size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n && i < NP_MAX_HEADERS; i++) {
        if (np_http_ieq(headers[i].name, headers[i].name_len, name)) {
            return &headers[i];
        }
    }
    return NULL;
}

bool
np_http_list_has(const char *value, size_t len, const char *name, size_t name_len)
{
    size_t i = 0;

    while (i <= len) {
        const char *comma = memchr(value + i, ',', len - i);
        size_t end = comma != NULL ? (size_t)(comma - value) : len;
        const char *elem = value + i;
        size_t elem_len = end - i;

        np_http_trim_ows(&elem, &elem_len);
        if (elem_len > 0 && np_ascii_ieq(elem, elem_len, name, name_len)) {
            return true;
        }
        i = end + 1;
    }
    return false;
}

/* The hop-by-hop fields of RFC 9110 §7.6.1 plus Proxy-Connection. */
static const char *const hop_by_hop_names[] = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
};

/* Content-Length never is hop-by-hop: "Connection: Content-Length" would otherwise strip a
 * message's framing (Transfer-Encoding is in the fixed list because the proxy re-frames every
 * body itself). */
bool
np_http_hop_by_hop(const char *name, size_t name_len, const struct np_header *headers,
                   size_t n_headers)
{
    size_t i;

    if (name == NULL || name_len == 0 || np_http_ieq(name, name_len, "content-length")) {
        return false;
    }
    for (i = 0; i < NP_ARRAY_LEN(hop_by_hop_names); i++) {
        if (np_http_ieq(name, name_len, hop_by_hop_names[i])) {
            return true;
        }
    }
    for (i = 0; i < n_headers && i < NP_MAX_HEADERS; i++) {
        const struct np_header *h = &headers[i];

        if (np_http_ieq(h->name, h->name_len, "connection") &&
            np_http_list_has(h->value, h->value_len, name, name_len)) {
            return true;
        }
    }
    return false;
}
