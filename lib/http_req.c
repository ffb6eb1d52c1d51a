/* HTTP/1.x request heads (SPEC §1.2): cap scanner, strict framing checks and http-parser.
 *
 * A head goes through three independent gates, each of which can only reject:
 *   1. np_head_scan: line structure and caps on the raw bytes (no parser involved);
 *   2. our own explicit rules: request line shape, HTTP version, Content-Length and
 *      Transfer-Encoding framing (the request-smuggling rules, kept visible here);
 *   3. http-parser 2.9.4: full grammar; its view of method, target, version and framing must
 *      agree with ours, otherwise the head is rejected.
 * http_parser_set_max_header_size() is never called: it writes a process-global. */
#include "http_req.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <string.h>
#include <sys/socket.h>

/* (defined() so that analysers that do not read system headers still get through) */
#if defined(HTTP_PARSER_VERSION_MAJOR) &&                                                          \
    (HTTP_PARSER_VERSION_MAJOR != 2 || HTTP_PARSER_VERSION_MINOR < 9)
#error "nonoproxy needs http-parser 2.9 or a later 2.x"
#endif

/* Empty lines (CRLF or LF) tolerated before the request line (RFC 9112 §2.2), in bytes. */
#define LEADING_EMPTY_MAX 8

/* Longest "HTTP/x.y" we accept, and the longest IPv6 literal we copy for inet_pton. */
#define VERSION_LEN 8
#define V6_BUF      64

static const char *const why_request_line = "malformed request line";
static const char *const why_version = "unsupported HTTP version";
static const char *const why_header = "invalid header";
static const char *const why_cl_invalid = "invalid Content-Length";
static const char *const why_cl_conflict = "conflicting Content-Length";
static const char *const why_cl_duplicate = "duplicate Content-Length";
static const char *const why_cl_and_te = "both Content-Length and Transfer-Encoding";
static const char *const why_te = "unsupported Transfer-Encoding";
static const char *const why_te_http10 = "Transfer-Encoding in an HTTP/1.0 request";
static const char *const why_target = "invalid character in the request target";
static const char *const why_trace = "TRACE and TRACK are not allowed";
static const char *const why_te_coding = "transfer codings other than chunked are not supported";

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

/* Skip the empty lines allowed before the request line. */
static enum np_head_scan
scan_leading(struct scan *s)
{
    size_t start = s->pos;

    while (s->pos < s->len && (s->buf[s->pos] == '\r' || s->buf[s->pos] == '\n')) {
        int el;

        if (s->pos - start >= LEADING_EMPTY_MAX) {
            return NP_HEAD_MALFORMED; /* too many empty lines, or an empty request line */
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

/* Scan the request line up to and including its line ending; COMPLETE means "line done".
 * Its content (without the ending) may hold at most NP_MAX_REQUEST_LINE bytes. */
static enum np_head_scan
scan_request_line(struct scan *s)
{
    size_t start = s->pos;

    for (; s->pos < s->len; s->pos++) {
        char ch = s->buf[s->pos];

        if (ch == '\0') {
            return NP_HEAD_MALFORMED;
        }
        if (ch == '\r' || ch == '\n') {
            int el = line_end_len(s);

            if (el == 0) {
                return NP_HEAD_NEED_MORE;
            }
            if (el < 0) {
                return NP_HEAD_MALFORMED;
            }
            s->pos += (size_t)el;
            return NP_HEAD_COMPLETE;
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
            int el = line_end_len(s);

            if (el == 0) {
                return NP_HEAD_NEED_MORE;
            }
            if (el < 0) {
                return NP_HEAD_MALFORMED;
            }
            if (el == 2 && s->pos + 1 - s->block_start >= NP_MAX_HEADER_BLOCK) {
                return NP_HEAD_TOO_LARGE; /* the LF of this CRLF is one byte too many */
            }
            s->pos += (size_t)el;
            return NP_HEAD_COMPLETE;
        }
    }
    return NP_HEAD_NEED_MORE;
}

/* Find the end of the head in buf[0..len): leading empty lines, the request line, then header
 * lines until the first empty line. Decides on the first byte that proves a verdict, so the
 * answer for a prefix is either NEED_MORE or the answer for every longer input; never reads
 * buf[len] or beyond. One pass, O(len). */
enum np_head_scan
np_head_scan(const char *buf, size_t len, size_t *head_len)
{
    struct scan s = {buf, len, 0, 0, 0};
    enum np_head_scan rc;

    rc = scan_leading(&s);
    if (rc != NP_HEAD_COMPLETE) {
        goto out;
    }
    rc = scan_request_line(&s);
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
/* Our explicit rules over the raw lines of a head that np_head_scan accepted               */
/* ---------------------------------------------------------------------------------------- */

/* A run of bytes [start, start + len): a line of the head (line ending excluded), or a host. */
struct slice {
    const char *start;
    size_t len;
};

/* Take the line at *pos (which ends in LF within head_len, as np_head_scan guarantees) and
 * advance *pos past its ending. Returns false at the final empty line or the end. */
static bool
next_line(const char *head, size_t head_len, size_t *pos, struct slice *out)
{
    const char *lf;
    size_t len;

    if (*pos >= head_len) {
        return false;
    }
    lf = memchr(head + *pos, '\n', head_len - *pos);
    if (lf == NULL) {
        return false;
    }
    len = (size_t)(lf - (head + *pos));
    out->start = head + *pos;
    out->len = (len > 0 && out->start[len - 1] == '\r') ? len - 1 : len;
    *pos += len + 1;
    return out->len > 0;
}

static bool
is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Remove leading and trailing SP/HTAB from the slice *p, *len. */
static void
trim_ows(const char **p, size_t *len)
{
    while (*len > 0 && is_ows((*p)[0])) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && is_ows((*p)[*len - 1])) {
        (*len)--;
    }
}

/* Compare the slice s[0..len) with the NUL-terminated lower-case word, ignoring ASCII case. */
static bool
slice_ieq(const char *s, size_t len, const char *word)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (word[i] == '\0' || np_ascii_lower(s[i]) != (unsigned char)word[i]) {
            return false;
        }
    }
    return word[len] == '\0';
}

/* What our own reading of the request line and framing headers found. */
struct own_view {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    unsigned short major;
    unsigned short minor;
    bool has_cl;
    uint64_t cl;
    bool has_te;
    bool chunked;
    bool te_other; /* a coding other than chunked was named */
};

/* Whether ch may stand in a request-target as sent (SPEC §1.2, RFC 9112 §3.2): no control
 * byte, SP, HTAB, '#' (a fragment is never sent), '\' (some servers take it for '/') or byte
 * >= 0x80 (real clients percent-encode all of these). "<>^`{|} pass unchanged. */
static bool
is_target_byte(char ch)
{
    unsigned char c = (unsigned char)ch;

    return c > 0x20 && c < 0x7f && c != '#' && c != '\\';
}

/* Check the request line "method SP target SP HTTP/d.d": exactly two single spaces, non-empty
 * parts, and version 1.0 or 1.1. http-parser is more lenient (several spaces, HTTP/0.9). */
static const char *
check_request_line(const struct slice *l, struct own_view *v)
{
    const char *sp1 = memchr(l->start, ' ', l->len);
    const char *end = l->start + l->len;
    const char *sp2;
    const char *ver;

    if (sp1 == NULL || sp1 == l->start) {
        return why_request_line;
    }
    sp2 = memchr(sp1 + 1, ' ', (size_t)(end - (sp1 + 1)));
    if (sp2 == NULL || sp2 == sp1 + 1) {
        return why_request_line;
    }
    ver = sp2 + 1;
    if (end - ver != VERSION_LEN || memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' ||
        ver[6] != '.' || ver[7] < '0' || ver[7] > '9') {
        return why_request_line;
    }
    v->method = l->start;
    v->method_len = (size_t)(sp1 - l->start);
    v->target = sp1 + 1;
    v->target_len = (size_t)(sp2 - (sp1 + 1));
    v->major = (unsigned short)(ver[5] - '0');
    v->minor = (unsigned short)(ver[7] - '0');
    if (v->major != 1 || (v->minor != 0 && v->minor != 1)) {
        return why_version;
    }
    for (size_t i = 0; i < v->target_len; i++) {
        if (!is_target_byte(v->target[i])) {
            return why_target;
        }
    }
    return NULL;
}

/* Parse a Content-Length value: one or more digits, no sign, no list, at most
 * 18446744073709551609: http-parser 2.9 refuses a digit once the value so far exceeds
 * (UINT64_MAX - 10) / 10, and we use the same limit so that both always agree.
 * Returns false if invalid or too large. */
static bool
parse_content_length(const char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0) {
        return false;
    }
    for (i = 0; i < len; i++) {
        unsigned d;

        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - 10) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Apply one Content-Length field value to v: it must be valid, and equal to none before
 * (duplicates are refused even when equal, as http-parser 2.9 does). */
static const char *
check_content_length(const char *value, size_t len, struct own_view *v)
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

/* Apply one Transfer-Encoding field value (a comma list of codings) to v. Every element must
 * be a non-empty token; "chunked" may only be the last coding of the last field. On return
 * v->chunked tells whether the final coding seen so far is chunked. */
static const char *
check_transfer_encoding(const char *value, size_t len, struct own_view *v)
{
    size_t i = 0;

    v->has_te = true;
    for (;;) {
        const char *comma = memchr(value + i, ',', len - i);
        size_t end = comma != NULL ? (size_t)(comma - value) : len;
        const char *elem = value + i;
        size_t elem_len = end - i;

        trim_ows(&elem, &elem_len);
        if (elem_len == 0 || v->chunked) {
            return why_te; /* empty element, or a coding after chunked */
        }
        v->chunked = slice_ieq(elem, elem_len, "chunked");
        v->te_other = v->te_other || !v->chunked;
        if (comma == NULL) {
            break;
        }
        i = end + 1;
    }
    return NULL;
}

/* A tchar of RFC 9110 §5.6.2 (field names are tokens). */
static bool
is_tchar(char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
        return true;
    }
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Check one header line: its name must be a token directly followed by ':' (RFC 9112 §5.1:
 * http-parser 2.9 accepts "Transfer-Encoding : chunked" and treats it as Transfer-Encoding),
 * and the framing headers must follow our rules. Other values are left to http-parser. */
static const char *
check_header_line(const struct slice *l, struct own_view *v)
{
    const char *colon = memchr(l->start, ':', l->len);
    const char *value;
    size_t name_len;
    size_t value_len;
    size_t i;

    if (colon == NULL || colon == l->start) {
        return why_header;
    }
    name_len = (size_t)(colon - l->start);
    for (i = 0; i < name_len; i++) {
        if (!is_tchar(l->start[i])) {
            return why_header;
        }
    }
    value = colon + 1;
    value_len = l->len - name_len - 1;
    trim_ows(&value, &value_len);
    if (slice_ieq(l->start, name_len, "content-length")) {
        return check_content_length(value, value_len, v);
    }
    if (slice_ieq(l->start, name_len, "transfer-encoding")) {
        return check_transfer_encoding(value, value_len, v);
    }
    return NULL;
}

/* Whether the method of v is TRACE or TRACK (methods are case-sensitive): a proxy that
 * injects credentials must never let an upstream echo a request back (SPEC §1.2). */
static bool
is_trace(const struct own_view *v)
{
    return v->method_len == 5 &&
           (memcmp(v->method, "TRACE", 5) == 0 || memcmp(v->method, "TRACK", 5) == 0);
}

/* Read the request line and the framing headers of head ourselves (the visible smuggling
 * rules of SPEC §1.2). Returns NULL if acceptable, else the reason; *status is the answer
 * for it: 405 for TRACE/TRACK, 501 for a transfer coding other than chunked, else 400. */
static const char *
check_own_rules(const char *head, size_t head_len, struct own_view *v, int *status)
{
    size_t pos = 0;
    struct slice l;
    const char *why = NULL;

    *status = 400;
    while (pos < head_len && (head[pos] == '\r' || head[pos] == '\n')) {
        pos++; /* leading empty lines, already capped by np_head_scan */
    }
    if (!next_line(head, head_len, &pos, &l)) {
        why = why_request_line;
        goto out;
    }
    why = check_request_line(&l, v);
    if (why == NULL && is_trace(v)) {
        *status = 405; /* whatever its headers: nothing of it goes anywhere */
        why = why_trace;
        goto out;
    }
    while (why == NULL && next_line(head, head_len, &pos, &l)) {
        why = check_header_line(&l, v);
    }
    if (why != NULL) {
        goto out;
    }
    if (v->has_cl && v->has_te) {
        why = why_cl_and_te;
    } else if (v->has_te && !v->chunked) {
        why = why_te; /* RFC 9112 §6.1: a request whose final coding is not chunked ⇒ 400 */
    } else if (v->has_te && v->minor == 0) {
        why = why_te_http10; /* RFC 9112 §6.1: the framing is faulty */
    } else if (v->te_other) {
        /* "gzip, chunked": re-framing would drop gzip and corrupt the body (SPEC §1.2). */
        *status = 501;
        why = why_te_coding;
    }
out:
    return why;
}

/* ---------------------------------------------------------------------------------------- */
/* http-parser                                                                              */
/* ---------------------------------------------------------------------------------------- */


/* Per-call parser context, reached through http_parser.data. */
struct parse_ctx {
    struct np_http_req *req;
    struct np_header_sink hs; /* the headers, and whether they were bad */
    bool done;                /* on_headers_complete ran */
    unsigned flags;  /* parser flags at headers-complete */
    uint64_t content_length;
};

/* Record the request-target; extend it if http-parser delivers it in several slices. */
static int
on_url(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;
    struct np_http_req *req = ctx->req;

    if (req->target == NULL) {
        req->target = at;
        req->target_len = len;
    } else if (at == req->target + req->target_len) {
        req->target_len += len;
    } else {
        ctx->hs.bad = true;
        return 1;
    }
    return 0;
}

int
np_header_sink_field(struct np_header_sink *s, const char *at, size_t len)
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

int
np_header_sink_value(struct np_header_sink *s, const char *at, size_t len)
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

/* Start a new header, or extend the name of the current one. */
static int
on_header_field(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;

    return np_header_sink_field(&ctx->hs, at, len);
}

/* Set, or extend, the value of the current header. */
static int
on_header_value(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;

    return np_header_sink_value(&ctx->hs, at, len);
}

/* Capture what http-parser decided about the head, then pause: we never parse a body. */
static int
on_headers_complete(http_parser *p)
{
    struct parse_ctx *ctx = p->data;
    struct np_http_req *req = ctx->req;

    ctx->done = true;
    ctx->flags = p->flags;
    ctx->content_length = p->content_length;
    req->http_major = p->http_major;
    req->http_minor = p->http_minor;
    req->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
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
    case HPE_INVALID_HEADER_TOKEN:
    case HPE_CB_header_field:
    case HPE_CB_header_value:
        return why_header;
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        return why_cl_invalid;
    case HPE_INVALID_TRANSFER_ENCODING:
        return why_te;
    default:
        return "malformed request";
    }
}

/* Fill req's method from http-parser's method number. */
static void
set_method(struct np_http_req *req, unsigned method)
{
    const char *name = http_method_str((enum http_method)method);
    size_t n = strlen(name);

    if (n >= sizeof(req->method_name)) {
        n = sizeof(req->method_name) - 1;
    }
    memcpy(req->method_name, name, n);
    req->method_name[n] = '\0';
    switch (method) {
    case HTTP_CONNECT:
        req->method = NP_METHOD_CONNECT;
        break;
    case HTTP_GET:
        req->method = NP_METHOD_GET;
        break;
    case HTTP_HEAD:
        req->method = NP_METHOD_HEAD;
        break;
    case HTTP_POST:
        req->method = NP_METHOD_POST;
        break;
    default:
        req->method = NP_METHOD_OTHER;
        break;
    }
}

/* Check that http-parser and our own reading agree on everything that frames or routes the
 * request; any disagreement is a parser differential and is refused. */
static const char *
check_agreement(const struct parse_ctx *ctx, const struct own_view *v)
{
    const struct np_http_req *req = ctx->req;
    size_t name_len = strlen(req->method_name);
    bool parser_chunked = (ctx->flags & F_CHUNKED) != 0;
    bool parser_cl = (ctx->flags & F_CONTENTLENGTH) != 0;

    if (name_len != v->method_len || memcmp(req->method_name, v->method, name_len) != 0 ||
        req->target != v->target || req->target_len != v->target_len ||
        req->http_major != v->major || req->http_minor != v->minor) {
        return why_request_line;
    }
    if (parser_chunked != v->chunked) {
        return why_te;
    }
    if (parser_cl != v->has_cl || (v->has_cl && ctx->content_length != v->cl)) {
        return why_cl_invalid;
    }
    return NULL;
}

/* Run http-parser over the whole head (one contiguous buffer), collecting the headers. */
static const char *
run_parser(const char *head, size_t head_len, struct parse_ctx *ctx)
{
    http_parser parser;
    size_t parsed;
    enum http_errno err;

    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = ctx;
    parsed = http_parser_execute(&parser, &parser_settings, head, head_len);
    err = HTTP_PARSER_ERRNO(&parser);
    if (ctx->hs.bad) {
        return why_header;
    }
    if (err != HPE_PAUSED) {
        return parser_why(err);
    }
    /* Paused in on_headers_complete, at the final LF: the head must end exactly there. */
    if (!ctx->done || parsed + 1 != head_len) {
        return "malformed request";
    }
    set_method(ctx->req, parser.method);
    return NULL;
}

/* Check that a CONNECT request-target is an authority np_split_authority accepts. */
static bool
connect_target_ok(const struct np_http_req *req)
{
    const char *host = NULL;
    size_t host_len = 0;
    uint16_t port = 0;

    return np_split_authority(req->target, req->target_len, &host, &host_len, &port) == 0;
}

/* Whether m[0..len) is a method http-parser knows, or TRACK (refused by name). Only such a
 * name is kept for the audit event of a refused head: an arbitrary first word could carry a
 * piece of the token (SPEC §9). */
static bool
is_known_method(const char *m, size_t len)
{
    static const char *const names[] = {
#define NP_METHOD_NAME(num, name, string) #string,
        HTTP_METHOD_MAP(NP_METHOD_NAME)
#undef NP_METHOD_NAME
            "TRACK",
    };
    size_t i;

    for (i = 0; i < NP_ARRAY_LEN(names); i++) {
        if (strlen(names[i]) == len && memcmp(names[i], m, len) == 0) {
            return true;
        }
    }
    return false;
}

/* After a refusal, keep in the zeroed req what our own reading of a well-formed request line
 * found (a known method name, the target), so that the refusal can be audited with them. */
static void
keep_request_line(struct np_http_req *req, const struct own_view *v)
{
    if (v->target == NULL) {
        return;
    }
    if (v->method_len < sizeof(req->method_name) && is_known_method(v->method, v->method_len)) {
        memcpy(req->method_name, v->method, v->method_len);
        req->method_name[v->method_len] = '\0';
    }
    req->target = v->target;
    req->target_len = v->target_len;
}

/* Parse a complete head: re-check the caps, apply our own rules, run http-parser, insist that
 * both agree, then trim the header values. On failure *req is zeroed but for the method name
 * and target when the request line was well-formed. */
int
np_http_req_parse(const char *head, size_t head_len, struct np_http_req *req, const char **why)
{
    struct own_view own;
    struct parse_ctx ctx;
    int status = 400;
    const char *reason = NULL;
    size_t scanned = 0;
    size_t i;

    memset(req, 0, sizeof(*req));
    memset(&own, 0, sizeof(own));
    memset(&ctx, 0, sizeof(ctx));
    ctx.req = req;
    ctx.hs.headers = req->headers;
    ctx.hs.n = &req->n_headers;
    if (np_head_scan(head, head_len, &scanned) != NP_HEAD_COMPLETE || scanned != head_len) {
        reason = "malformed request head";
        goto out;
    }
    reason = check_own_rules(head, head_len, &own, &status);
    if (reason != NULL) {
        goto out;
    }
    status = 400;
    reason = run_parser(head, head_len, &ctx);
    if (reason != NULL) {
        goto out;
    }
    reason = check_agreement(&ctx, &own);
    if (reason != NULL) {
        goto out;
    }
    if (req->method == NP_METHOD_CONNECT && !connect_target_ok(req)) {
        reason = "invalid CONNECT authority"; /* http-parser 2.9 lets "CONNECT /" through */
        goto out;
    }
    for (i = 0; i < req->n_headers; i++) {
        trim_ows(&req->headers[i].value, &req->headers[i].value_len);
    }
    req->has_content_length = own.has_cl;
    req->content_length = own.cl;
    req->chunked = own.chunked;
out:
    if (reason != NULL) {
        memset(req, 0, sizeof(*req));
        keep_request_line(req, &own);
    }
    if (why != NULL) {
        *why = reason;
    }
    return reason == NULL ? 0 : status;
}

/* First header named name, compared case-insensitively over its whole length. */
const struct np_header *
np_http_req_header(const struct np_http_req *req, const char *name)
{
    size_t name_len = strlen(name);
    size_t i;
    size_t k;

    for (i = 0; i < req->n_headers; i++) {
        const struct np_header *h = &req->headers[i];

        if (h->name_len != name_len) {
            continue;
        }
        for (k = 0; k < name_len; k++) {
            if (np_ascii_lower(h->name[k]) != np_ascii_lower(name[k])) {
                break;
            }
        }
        if (k == name_len) {
            return h;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* np_split_authority                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* A reg-name byte of RFC 3986 without pct-encoded: unreserved or sub-delims. */
static bool
is_reg_name_char(char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
        return true;
    }
    return ch != '\0' && strchr("-._~!$&'()*+,;=", ch) != NULL;
}

/* Check a bracketed IPv6 literal's inside: it must parse as IPv6 (no zone id: '%' fails). */
static bool
is_ipv6_literal(const char *p, size_t len)
{
    char tmp[V6_BUF];
    struct in6_addr addr;

    if (len == 0 || len >= sizeof(tmp) || memchr(p, '%', len) != NULL) {
        return false;
    }
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    return inet_pton(AF_INET6, tmp, &addr) == 1;
}

/* Take the host of target[0..len) as a bracketed IPv6 literal "[v6]:..." (brackets removed)
 * or a reg-name "name:..."; *colon is set to the ':' that must precede the port. */
static bool
split_host(const char *target, size_t len, struct slice *host, const char **colon)
{
    const char *c;
    size_t i;

    if (target[0] == '[') {
        c = memchr(target, ']', len);
        if (c == NULL || c + 1 == target + len || c[1] != ':') {
            return false; /* unbalanced, or no port after the literal */
        }
        host->start = target + 1;
        host->len = (size_t)(c - host->start);
        *colon = c + 1;
        return is_ipv6_literal(host->start, host->len);
    }
    c = memchr(target, ':', len);
    if (c == NULL || c == target) {
        return false; /* no port, or empty host */
    }
    host->start = target;
    host->len = (size_t)(c - target);
    *colon = c;
    for (i = 0; i < host->len; i++) {
        if (!is_reg_name_char(target[i])) {
            return false; /* '@', '%', '/', '[', ']', whitespace, controls, non-ASCII */
        }
    }
    return true;
}

/* Split "host:port" or "[v6]:port". Examples: "example.com:443" → example.com, 443;
 * "[::1]:8443" → ::1, 8443. Refused: "example.com" (no port), ":443", "u@h:443", "h%41:443",
 * "h/x:443", "[::1]", "::1:443" (bare IPv6), "h:0", "h:65536", "h:+443", "h:000443".
 * The out-parameters are written only on success. */
int
np_split_authority(const char *target, size_t len, const char **host, size_t *host_len,
                   uint16_t *port)
{
    struct slice h = {NULL, 0};
    const char *colon = NULL;
    uint16_t pv = 0;
    int rc = -1;

    if (len == 0 || !split_host(target, len, &h, &colon)) {
        goto out;
    }
    /* a second ':' (a bare IPv6 address) lands in the port part and fails there */
    pv = np_parse_port(colon + 1, len - (size_t)(colon + 1 - target));
    if (pv == 0) {
        goto out;
    }
    *host = h.start;
    *host_len = h.len;
    *port = pv;
    rc = 0;
out:
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* np_http_hop_by_hop                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* The hop-by-hop fields of RFC 9110 §7.6.1 plus Proxy-Connection, lower-case. */
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

bool
np_http_list_has(const char *value, size_t len, const char *name, size_t name_len)
{
    size_t i = 0;

    while (i <= len) {
        const char *comma = memchr(value + i, ',', len - i);
        size_t end = comma != NULL ? (size_t)(comma - value) : len;
        const char *elem = value + i;
        size_t elem_len = end - i;

        trim_ows(&elem, &elem_len);
        if (elem_len > 0 && np_ascii_ieq(elem, elem_len, name, name_len)) {
            return true;
        }
        i = end + 1;
    }
    return false;
}

/* Whether name is hop-by-hop: one of the fixed names, or listed in a Connection header of
 * headers[0..n_headers) (headers may be NULL when n_headers is 0). Content-Length never is:
 * "Connection: Content-Length" would otherwise strip a message's framing (Transfer-Encoding
 * is in the fixed list because the proxy re-frames every body itself). */
bool
np_http_hop_by_hop(const char *name, size_t name_len, const struct np_header *headers,
                   size_t n_headers)
{
    size_t i;

    if (name == NULL || name_len == 0 || slice_ieq(name, name_len, "content-length")) {
        return false; /* framing is never hop-by-hop, whatever Connection names (SPEC §1.2) */
    }
    for (i = 0; i < NP_ARRAY_LEN(hop_by_hop_names); i++) {
        if (slice_ieq(name, name_len, hop_by_hop_names[i])) {
            return true;
        }
    }
    for (i = 0; i < n_headers && i < NP_MAX_HEADERS; i++) {
        const struct np_header *h = &headers[i];

        if (slice_ieq(h->name, h->name_len, "connection") &&
            np_http_list_has(h->value, h->value_len, name, name_len)) {
            return true;
        }
    }
    return false;
}
