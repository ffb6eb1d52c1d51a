/* HTTP/1.x response heads and message bodies (SPEC §1.2, §5, §6.6).
 *
 * Response heads pass the same three gates as request heads in http_req.c, each of which can
 * only reject: np_head_scan on the raw bytes, our own explicit status-line and framing rules,
 * and http-parser 2.9.4, whose view of status, version and framing must agree with ours.
 *
 * Bodies: a fresh http-parser is first fed a synthetic response head that states the framing,
 * then the body bytes as they arrive. Its on_body callbacks deliver the decoded data, which is
 * compacted in place and written to dst at the end of every read (never waiting for more), and
 * on_message_complete pauses it, so bytes after the body stay unconsumed in the buffer.
 *
 * Debian's libhttp-parser 2.9.4 is built with HTTP_PARSER_STRICT=0: it does not check the CRLF
 * after chunk data nor the LF after a chunk-size line ("5\r\nhelloXX0\r\n\r\n" passes, a
 * smuggling vector). A small strict chunk-syntax checker (struct chunk_check) therefore reads
 * the same bytes first; it can only reject, and both must agree on where the body ends.
 * http_parser_set_max_header_size() is never called: it writes a process-global. */
#include "http_msg.h"

#include <errno.h>
#include <http_parser.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#if defined(HTTP_PARSER_VERSION_MAJOR) &&                                                          \
    (HTTP_PARSER_VERSION_MAJOR != 2 || HTTP_PARSER_VERSION_MINOR < 9)
#error "nonoproxy needs http-parser 2.9 or a later 2.x"
#endif

/* "HTTP/1.1 200": the shortest status line (the reason phrase may be absent). */
#define STATUS_LINE_MIN 12

/* Longest chunk-size line (size and extensions, CRLF excluded), and longest trailer section. */
#define CHUNK_LINE_MAX 4096
#define TRAILER_MAX    NP_MAX_HEADER_BLOCK

/* "<up to 16 hex digits>\r\n", and the reserve kept before received data for it (only when
 * the work buffer holds at least CHUNK_RESERVE_MIN bytes). */
#define CHUNK_HDR_MAX     ((size_t)24)
#define CHUNK_RESERVE_MIN ((size_t)96)

/* Synthetic head stating the body framing; the longest is the Content-Length one. */
#define SYNTH_HEAD_MAX 96

static const char *const why_head = "malformed response head";
static const char *const why_status_line = "malformed status line";
static const char *const why_status = "invalid status code";
static const char *const why_version = "unsupported HTTP version";
static const char *const why_header = "invalid header";
static const char *const why_cl_invalid = "invalid Content-Length";
static const char *const why_cl_conflict = "conflicting Content-Length";
static const char *const why_cl_duplicate = "duplicate Content-Length";
static const char *const why_cl_and_te = "both Content-Length and Transfer-Encoding";
static const char *const why_te = "unsupported Transfer-Encoding";
static const char *const why_te_http10 = "Transfer-Encoding in an HTTP/1.0 response";
static const char *const why_te_coding = "transfer coding other than chunked";
static const char *const why_malformed = "malformed response";

/* ---------------------------------------------------------------------------------------- */
/* Byte classes                                                                             */
/* ---------------------------------------------------------------------------------------- */

static bool
is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool
is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Tell whether ch may appear in a field value or reason phrase (HTAB, SP, VCHAR, obs-text). */
static bool
is_text(char ch)
{
    unsigned char c = (unsigned char)ch;

    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Tell whether ch is a tchar of RFC 9110 §5.6.2 (field names are tokens). */
static bool
is_tchar(char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch)) {
        return true;
    }
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Compare s[0..len) with the NUL-terminated word, ignoring ASCII case. */
static bool
slice_ieq(const char *s, size_t len, const char *word)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (word[i] == '\0' || np_ascii_lower(s[i]) != np_ascii_lower(word[i])) {
            return false;
        }
    }
    return word[len] == '\0';
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

/* ---------------------------------------------------------------------------------------- */
/* Our own rules over the raw lines of a response head                                     */
/* ---------------------------------------------------------------------------------------- */

/* What our own reading of the status line and framing headers found. */
struct own_view {
    unsigned status;
    unsigned short major;
    unsigned short minor;
    bool has_cl;
    uint64_t cl;
    bool has_te;
    bool chunked;  /* the final coding seen so far is chunked */
    bool te_other; /* a coding other than chunked was named */
};

/* Take the line at *pos (ending in LF within head_len, as np_head_scan guarantees), without
 * its CR/LF, and advance *pos past it. Returns false at the final empty line or the end. */
static bool
next_line(const char *head, size_t head_len, size_t *pos, const char **line, size_t *len)
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
    *line = head + *pos;
    *len = (n > 0 && (*line)[n - 1] == '\r') ? n - 1 : n;
    *pos += n + 1;
    return *len > 0;
}

/* Check the status line "HTTP/d.d SP ddd [SP reason]": version 1.0 or 1.1, status 100..599
 * (RFC 9110 §15), reason of text bytes only. http-parser also takes "HTTP/1.1 20 OK". */
static const char *
check_status_line(const char *l, size_t len, struct own_view *v)
{
    size_t i;

    if (len < STATUS_LINE_MIN || memcmp(l, "HTTP/", 5) != 0 || !is_digit(l[5]) || l[6] != '.' ||
        !is_digit(l[7]) || l[8] != ' ' || !is_digit(l[9]) || !is_digit(l[10]) || !is_digit(l[11]) ||
        (len > STATUS_LINE_MIN && l[STATUS_LINE_MIN] != ' ')) {
        return why_status_line;
    }
    for (i = STATUS_LINE_MIN + 1; i < len; i++) {
        if (!is_text(l[i])) {
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

/* Parse a Content-Length value: digits only, at most 18446744073709551609 (http-parser 2.9
 * refuses a digit once the value exceeds (UINT64_MAX - 10) / 10; same limit, so both agree). */
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

/* Apply one Transfer-Encoding value (a comma list of codings) to v. Elements must be
 * non-empty; nothing may follow chunked (RFC 9112 §7: chunked is applied once, last). */
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
            return why_te;
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

/* Check one header line: a token name directly followed by ':', and the framing headers. */
static const char *
check_header_line(const char *l, size_t len, struct own_view *v)
{
    const char *colon = memchr(l, ':', len);
    const char *value;
    size_t name_len;
    size_t value_len;
    size_t i;

    if (colon == NULL || colon == l) {
        return why_header;
    }
    name_len = (size_t)(colon - l);
    for (i = 0; i < name_len; i++) {
        if (!is_tchar(l[i])) {
            return why_header;
        }
    }
    value = colon + 1;
    value_len = len - name_len - 1;
    trim_ows(&value, &value_len);
    if (slice_ieq(l, name_len, "content-length")) {
        return check_content_length(value, value_len, v);
    }
    if (slice_ieq(l, name_len, "transfer-encoding")) {
        return check_transfer_encoding(value, value_len, v);
    }
    return NULL;
}

/* Read the status line and framing headers of head ourselves. A transfer coding other than
 * chunked ("gzip, chunked", or a close-delimited "gzip") is refused: the proxy re-frames every
 * body and would drop it, corrupting the body (SPEC §1.2). */
static const char *
check_own_rules(const char *head, size_t head_len, struct own_view *v)
{
    size_t pos = 0;
    const char *line = NULL;
    size_t len = 0;
    const char *why = NULL;

    while (pos < head_len && (head[pos] == '\r' || head[pos] == '\n')) {
        pos++; /* empty lines before the status line: http-parser skips them too */
    }
    if (!next_line(head, head_len, &pos, &line, &len)) {
        why = why_status_line;
        goto out;
    }
    why = check_status_line(line, len, v);
    while (why == NULL && next_line(head, head_len, &pos, &line, &len)) {
        why = check_header_line(line, len, v);
    }
    if (why != NULL) {
        goto out;
    }
    if (v->has_cl && v->has_te) {
        why = why_cl_and_te;
    } else if (v->has_te && v->minor == 0) {
        why = why_te_http10; /* RFC 9112 §6.1: the framing is faulty */
    } else if (v->te_other) {
        why = why_te_coding;
    }
out:
    return why;
}

/* ---------------------------------------------------------------------------------------- */
/* np_http_resp_parse: http-parser                                                          */
/* ---------------------------------------------------------------------------------------- */


/* Per-call parser context, reached through http_parser.data. */
struct resp_ctx {
    struct np_http_resp *resp;
    struct np_header_sink hs; /* the headers, and whether they were bad */
    bool done;                /* on_headers_complete ran */
    unsigned flags;  /* parser flags at headers-complete */
    uint64_t content_length;
};

/* Start a new header, or extend the name of the current one. */
static int
resp_on_header_field(http_parser *p, const char *at, size_t len)
{
    struct resp_ctx *ctx = p->data;

    return np_header_sink_field(&ctx->hs, at, len);
}

/* Set, or extend, the value of the current header. */
static int
resp_on_header_value(http_parser *p, const char *at, size_t len)
{
    struct resp_ctx *ctx = p->data;

    return np_header_sink_value(&ctx->hs, at, len);
}

/* Capture what http-parser decided about the head, then pause: the body is not parsed here. */
static int
resp_on_headers_complete(http_parser *p)
{
    struct resp_ctx *ctx = p->data;
    struct np_http_resp *resp = ctx->resp;

    ctx->done = true;
    ctx->flags = p->flags;
    ctx->content_length = p->content_length;
    resp->status = p->status_code;
    resp->http_major = p->http_major;
    resp->http_minor = p->http_minor;
    resp->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings resp_settings = {
    .on_header_field = resp_on_header_field,
    .on_header_value = resp_on_header_value,
    .on_headers_complete = resp_on_headers_complete,
};

/* Name the reason for an http-parser error. */
static const char *
resp_parser_why(enum http_errno err)
{
    switch (err) {
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
        return why_te;
    default:
        return why_malformed;
    }
}

/* Run http-parser over the whole head (one contiguous buffer), collecting the headers. */
static const char *
resp_run_parser(const char *head, size_t head_len, struct resp_ctx *ctx)
{
    http_parser parser;
    size_t parsed;
    enum http_errno err;

    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = ctx;
    parsed = http_parser_execute(&parser, &resp_settings, head, head_len);
    err = HTTP_PARSER_ERRNO(&parser);
    if (ctx->hs.bad) {
        return why_header;
    }
    if (err != HPE_PAUSED) {
        return resp_parser_why(err);
    }
    /* Paused in on_headers_complete, at the final LF: the head must end exactly there. */
    if (!ctx->done || parsed + 1 != head_len) {
        return why_malformed;
    }
    return NULL;
}

/* Check that http-parser and our own reading agree on status, version and framing. */
static const char *
resp_check_agreement(const struct resp_ctx *ctx, const struct own_view *v)
{
    const struct np_http_resp *resp = ctx->resp;
    bool parser_chunked = (ctx->flags & F_CHUNKED) != 0;
    bool parser_cl = (ctx->flags & F_CONTENTLENGTH) != 0;

    if (resp->status != v->status || resp->http_major != v->major || resp->http_minor != v->minor) {
        return why_status_line;
    }
    if (parser_chunked != v->chunked) {
        return why_te;
    }
    if (parser_cl != v->has_cl || (v->has_cl && ctx->content_length != v->cl)) {
        return why_cl_invalid;
    }
    return NULL;
}

/* Parse a complete response head: re-check the caps, apply our own rules, run http-parser,
 * insist that both agree, then trim the header values. keep_alive is http-parser's
 * http_should_keep_alive: false for HTTP/1.0 without "Connection: keep-alive", for
 * "Connection: close", and whenever the body would be close-delimited (no Content-Length nor
 * chunked on a status that may have a body, e.g. also a HEAD answer without Content-Length:
 * conservative). On failure *resp is zeroed. */
int
np_http_resp_parse(const char *head, size_t head_len, struct np_http_resp *resp, const char **why)
{
    struct own_view own;
    struct resp_ctx ctx;
    const char *reason = NULL;
    size_t scanned = 0;
    size_t i;

    memset(resp, 0, sizeof(*resp));
    memset(&own, 0, sizeof(own));
    memset(&ctx, 0, sizeof(ctx));
    ctx.resp = resp;
    ctx.hs.headers = resp->headers;
    ctx.hs.n = &resp->n_headers;
    if (np_head_scan(head, head_len, &scanned) != NP_HEAD_COMPLETE || scanned != head_len) {
        reason = why_head;
        goto out;
    }
    reason = check_own_rules(head, head_len, &own);
    if (reason != NULL) {
        goto out;
    }
    reason = resp_run_parser(head, head_len, &ctx);
    if (reason != NULL) {
        goto out;
    }
    reason = resp_check_agreement(&ctx, &own);
    if (reason != NULL) {
        goto out;
    }
    for (i = 0; i < resp->n_headers; i++) {
        trim_ows(&resp->headers[i].value, &resp->headers[i].value_len);
    }
    resp->has_content_length = own.has_cl;
    resp->content_length = own.cl;
    resp->chunked = own.chunked;
out:
    if (reason != NULL) {
        memset(resp, 0, sizeof(*resp));
    }
    if (why != NULL) {
        *why = reason;
    }
    return reason == NULL ? 0 : -1;
}

/* Find the first header named name, compared case-insensitively over its whole length. */
const struct np_header *
np_http_resp_header(const struct np_http_resp *resp, const char *name)
{
    size_t name_len = strlen(name);
    size_t i;

    for (i = 0; i < resp->n_headers; i++) {
        const struct np_header *h = &resp->headers[i];

        if (h->name_len == name_len && slice_ieq(h->name, h->name_len, name)) {
            return h;
        }
    }
    return NULL;
}

/* Decide the body framing of a response (RFC 9112 §6.3, rules 1–7 as they apply here). */
enum np_framing
np_http_resp_framing(const struct np_http_resp *resp, bool head_request)
{
    if (head_request || (resp->status >= 100 && resp->status < 200) || resp->status == 204 ||
        resp->status == 304) {
        return NP_FRAME_NONE;
    }
    if (resp->chunked) {
        return NP_FRAME_CHUNKED;
    }
    if (resp->has_content_length) {
        return resp->content_length == 0 ? NP_FRAME_NONE : NP_FRAME_LENGTH;
    }
    return NP_FRAME_CLOSE;
}

/* Decide the body framing of a request; a request body is never close-delimited. */
enum np_framing
np_http_req_framing(const struct np_http_req *req)
{
    if (req->chunked) {
        return NP_FRAME_CHUNKED;
    }
    if (req->has_content_length && req->content_length > 0) {
        return NP_FRAME_LENGTH;
    }
    return NP_FRAME_NONE;
}

/* ---------------------------------------------------------------------------------------- */
/* Strict chunk syntax (RFC 9112 §7.1), the checks http-parser's non-strict build skips    */
/* ---------------------------------------------------------------------------------------- */

enum chk_state {
    CHK_SIZE_START = 0, /* first hex digit of a chunk size */
    CHK_SIZE,           /* more hex digits */
    CHK_SIZE_WS,        /* BWS after the size, before ';' or CR */
    CHK_EXT_NAME,       /* after ';': optional whitespace, then an extension name */
    CHK_EXT,            /* the rest of the chunk extensions, up to CR */
    CHK_SIZE_LF,        /* the LF ending the size line */
    CHK_DATA,           /* size bytes of data */
    CHK_DATA_CR,        /* the CRLF after the data */
    CHK_DATA_LF,
    CHK_TRAILER_START, /* start of a trailer line, or the final CRLF */
    CHK_TRAILER_NAME,  /* field name, up to ':' */
    CHK_TRAILER,       /* field value, up to CR */
    CHK_TRAILER_LF,
    CHK_END_LF, /* the LF ending the message */
    CHK_DONE,
};

enum chk_result { CHK_MORE, CHK_END, CHK_BAD };

struct chunk_check {
    enum chk_state state;
    uint64_t size;   /* the chunk size being read, then the data bytes still to come */
    size_t line_len; /* bytes of the current size line, or of the whole trailer section */
};

/* Take the byte ending a chunk size (or the whitespace after it). */
static bool
chk_size_end(struct chunk_check *c, char ch)
{
    if (is_ows(ch)) {
        c->state = CHK_SIZE_WS;
    } else if (ch == ';') {
        c->state = CHK_EXT_NAME;
    } else if (ch == '\r') {
        c->state = CHK_SIZE_LF;
    } else {
        return false;
    }
    return true;
}

/* Take one byte of a chunk-size line: 1*HEXDIG (no overflow) [BWS] [";" ext] CRLF. */
static bool
chk_size_line(struct chunk_check *c, char ch)
{
    int h = np_hex_value(ch);

    if (++c->line_len > CHUNK_LINE_MAX) {
        return false;
    }
    switch (c->state) {
    case CHK_SIZE_START:
        c->size = (uint64_t)(h < 0 ? 0 : h);
        c->state = CHK_SIZE;
        return h >= 0;
    case CHK_SIZE:
        if (h < 0) {
            return chk_size_end(c, ch);
        }
        if (c->size > (UINT64_MAX >> 4)) {
            return false;
        }
        c->size = (c->size << 4) | (uint64_t)h;
        return true;
    case CHK_SIZE_WS:
        return chk_size_end(c, ch);
    case CHK_EXT_NAME:
        /* RFC 9112 §7.1.1: a ';' must introduce a name ("5 ;" is malformed). */
        if (is_ows(ch)) {
            return true;
        }
        c->state = CHK_EXT;
        return is_tchar(ch);
    case CHK_EXT:
        if (ch == '\r') {
            c->state = CHK_SIZE_LF;
            return true;
        }
        return is_text(ch);
    case CHK_SIZE_LF:
        c->state = c->size == 0 ? CHK_TRAILER_START : CHK_DATA;
        c->line_len = 0;
        return ch == '\n';
    default:
        return false;
    }
}

/* Take one byte of the trailer section: "token ':' text" lines ending in CRLF (no obsolete
 * folding; the non-strict http-parser takes a space as a token byte), then an empty line. */
static bool
chk_trailer(struct chunk_check *c, char ch)
{
    if (++c->line_len > TRAILER_MAX) {
        return false;
    }
    switch (c->state) {
    case CHK_TRAILER_START:
        if (ch == '\r') {
            c->state = CHK_END_LF;
            return true;
        }
        c->state = CHK_TRAILER_NAME;
        return is_tchar(ch);
    case CHK_TRAILER_NAME:
        if (ch == ':') {
            c->state = CHK_TRAILER;
            return true;
        }
        return is_tchar(ch);
    case CHK_TRAILER:
        if (ch == '\r') {
            c->state = CHK_TRAILER_LF;
            return true;
        }
        return is_text(ch);
    case CHK_TRAILER_LF:
        c->state = CHK_TRAILER_START;
        return ch == '\n';
    case CHK_END_LF:
        c->state = CHK_DONE;
        return ch == '\n';
    default:
        return false;
    }
}

/* Take one byte outside chunk data. */
static bool
chk_byte(struct chunk_check *c, char ch)
{
    switch (c->state) {
    case CHK_SIZE_START:
    case CHK_SIZE:
    case CHK_SIZE_WS:
    case CHK_EXT_NAME:
    case CHK_EXT:
    case CHK_SIZE_LF:
        return chk_size_line(c, ch);
    case CHK_DATA_CR:
        c->state = CHK_DATA_LF;
        return ch == '\r';
    case CHK_DATA_LF:
        c->state = CHK_SIZE_START;
        c->line_len = 0;
        return ch == '\n';
    case CHK_TRAILER_START:
    case CHK_TRAILER_NAME:
    case CHK_TRAILER:
    case CHK_TRAILER_LF:
    case CHK_END_LF:
        return chk_trailer(c, ch);
    default:
        return false; /* CHK_DATA is taken in bulk; nothing may follow CHK_DONE */
    }
}

/* Check p[0..n), the next bytes of a chunked body. *used = bytes up to the end of the body
 * (CHK_END), up to the bad byte (CHK_BAD), or n (CHK_MORE). */
static enum chk_result
chk_feed(struct chunk_check *c, const char *p, size_t n, size_t *used)
{
    size_t i = 0;

    while (i < n) {
        if (c->state == CHK_DATA) {
            uint64_t avail = (uint64_t)(n - i);
            uint64_t take = c->size < avail ? c->size : avail;

            i += (size_t)take;
            c->size -= take;
            if (c->size == 0) {
                c->state = CHK_DATA_CR;
            }
            continue;
        }
        if (!chk_byte(c, p[i])) {
            *used = i;
            return CHK_BAD;
        }
        i++;
        if (c->state == CHK_DONE) {
            *used = i;
            return CHK_END;
        }
    }
    *used = n;
    return CHK_MORE;
}

bool
np_body_chunked_prefix_ok(const char *buf, size_t len)
{
    struct chunk_check c;
    size_t used = 0;

    memset(&c, 0, sizeof(c));
    return chk_feed(&c, buf, len, &used) != CHK_BAD;
}

/* ---------------------------------------------------------------------------------------- */
/* np_body_relay                                                                            */
/* ---------------------------------------------------------------------------------------- */

/* State of one np_body_relay call, reached through http_parser.data. */
struct relay {
    struct np_body_xfer *x;
    http_parser parser;
    struct chunk_check chk;
    bool chunked_in;
    bool complete;  /* on_message_complete ran */
    char *out_base; /* first decoded byte of the current read; NULL if none yet */
    char *out_end;  /* one past the last decoded byte (compacted over framing bytes) */
};

/* Collect decoded body bytes: move them down over the framing bytes already consumed in this
 * read, so that a read's data ends up contiguous at out_base. at always lies in x->buf, at or
 * after out_end, and bytes before it are never looked at again by the parser. */
static int
relay_on_body(http_parser *p, const char *at, size_t len)
{
    struct relay *r = p->data;
    char *src = r->x->buf + (at - r->x->buf); /* the same byte, without const */

    if (r->out_base == NULL) {
        r->out_base = src;
        r->out_end = src;
    }
    if (r->out_end != src) {
        memmove(r->out_end, src, len);
    }
    r->out_end += len;
    return 0;
}

/* Note the end of the body and pause, so that the bytes after it are not consumed. */
static int
relay_on_message_complete(http_parser *p)
{
    struct relay *r = p->data;

    r->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings relay_settings = {
    .on_body = relay_on_body,
    .on_message_complete = relay_on_message_complete,
};

/* Write p[0..len) to dst, if len > 0, within send_ms. */
static enum np_body_result
send_part(struct np_body_xfer *x, const char *p, size_t len)
{
    enum np_io io;

    if (len == 0) {
        return NP_BODY_DONE;
    }
    io = np_stream_send_all(x->dst, p, len, np_deadline(x->send_ms));
    if (io == NP_IO_OK) {
        return NP_BODY_DONE;
    }
    return io == NP_IO_STOPPED ? NP_BODY_STOPPED : NP_BODY_DST_ERR;
}

/* Write the decoded bytes data[0..len) (len may be 0, data then unused) in the output
 * framing; last adds the chunked terminator. For chunked output the chunk header is put in
 * place just before data when the consumed bytes there leave room, and the tail just after
 * data when it stays below limit, so a read usually costs one send. */
static enum np_body_result
emit(struct relay *r, char *data, size_t len, const char *limit, bool last)
{
    static const char tails[] = "\r\n0\r\n\r\n"; /* end of a data chunk, then the last chunk */
    struct np_body_xfer *x = r->x;
    char hdr[CHUNK_HDR_MAX];
    const char *tail = tails;
    size_t tlen = 0;
    size_t hlen = 0;
    char *start = data;
    size_t total = len;
    enum np_body_result res;

    if (x->out != NP_FRAME_CHUNKED) {
        res = send_part(x, data, len);
        goto out;
    }
    if (len > 0) {
        int k = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);

        hlen = k > 0 ? (size_t)k : 0;
        tlen = last ? sizeof(tails) - 1 : 2;
        if ((size_t)(data - x->buf) >= hlen) {
            start = data - hlen;
            memcpy(start, hdr, hlen);
            total += hlen;
            hlen = 0;
        }
        if ((size_t)(limit - (data + len)) >= tlen) {
            memcpy(data + len, tail, tlen);
            total += tlen;
            tlen = 0;
        }
    } else if (last) {
        tail = tails + 2;
        tlen = sizeof(tails) - 3;
    }
    res = send_part(x, hdr, hlen);
    if (res == NP_BODY_DONE) {
        res = send_part(x, start, total);
    }
    if (res == NP_BODY_DONE) {
        res = send_part(x, tail, tlen);
    }
out:
    if (res == NP_BODY_DONE) {
        x->body_bytes += len;
    }
    return res;
}

/* Start the parser with a synthetic head stating the source framing. An empty body
 * (LENGTH 0, or NONE) completes the message here already. */
static enum np_body_result
relay_start(struct relay *r)
{
    char head[SYNTH_HEAD_MAX];
    const char *h = head;
    size_t n = 0;
    size_t parsed;
    enum http_errno err;
    int k;

    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
    if (r->x->in == NP_FRAME_CHUNKED) {
        h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        n = strlen(h);
    } else if (r->x->in == NP_FRAME_CLOSE) {
        h = "HTTP/1.1 200 OK\r\n\r\n"; /* neither header: http-parser reads until EOF */
        n = strlen(h);
    } else {
        k = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %" PRIu64 "\r\n\r\n",
                     r->x->in == NP_FRAME_LENGTH ? r->x->length : 0);
        n = (k > 0 && (size_t)k < sizeof(head)) ? (size_t)k : 0;
    }
    parsed = http_parser_execute(&r->parser, &relay_settings, h, n);
    err = HTTP_PARSER_ERRNO(&r->parser);
    if (n == 0 || parsed != n || (err != HPE_OK && !(err == HPE_PAUSED && r->complete))) {
        return NP_BODY_MALFORMED; /* a length beyond http-parser's limit */
    }
    return NP_BODY_DONE;
}

/* Check that http-parser's run over n bytes (parsed of them) is clean and, for chunked input,
 * ends the body exactly where the strict checker does. */
static bool
relay_agrees(const struct relay *r, size_t parsed, size_t n, enum chk_result cr, size_t checked)
{
    enum http_errno err = HTTP_PARSER_ERRNO(&r->parser);

    if (r->complete) {
        return err == HPE_PAUSED && (!r->chunked_in || (cr == CHK_END && checked == parsed));
    }
    return err == HPE_OK && parsed == n && (!r->chunked_in || cr == CHK_MORE);
}

/* Process data[0..n) (inside x->buf), the bytes of one read: check, decode, write. On a
 * framing error nothing of this read is written. */
static enum np_body_result
relay_step(struct relay *r, char *data, size_t n)
{
    struct np_body_xfer *x = r->x;
    enum chk_result cr = CHK_MORE;
    size_t checked = n;
    size_t parsed;
    const char *limit;
    enum np_body_result res;

    if (r->chunked_in) {
        cr = chk_feed(&r->chk, data, n, &checked);
        if (cr == CHK_BAD) {
            return NP_BODY_MALFORMED;
        }
    }
    r->out_base = NULL;
    r->out_end = NULL;
    parsed = http_parser_execute(&r->parser, &relay_settings, data, n);
    if (!relay_agrees(r, parsed, n, cr, checked)) {
        return NP_BODY_MALFORMED;
    }
    /* Decoded data may be followed in place by framing bytes up to limit: after a complete
     * body the leftover starts at data + parsed; otherwise the whole read was consumed. */
    limit = r->complete ? data + parsed : x->buf + x->cap;
    res = emit(r, r->out_base, r->out_base != NULL ? (size_t)(r->out_end - r->out_base) : 0, limit,
               r->complete);
    if (res == NP_BODY_DONE && r->complete) {
        x->leftover_off = (size_t)(data - x->buf) + parsed;
        x->leftover_len = n - parsed;
    }
    return res;
}

/* Finish at the source's EOF: the end of a close-delimited body, else a truncated one. */
static enum np_body_result
relay_eof(struct relay *r)
{
    (void)http_parser_execute(&r->parser, &relay_settings, NULL, 0);
    if (!r->complete) {
        return NP_BODY_TRUNCATED;
    }
    return emit(r, NULL, 0, NULL, true);
}

/* Map a failed source read to the result. */
static enum np_body_result
src_failure(enum np_io io)
{
    switch (io) {
    case NP_IO_TIMEOUT:
        return NP_BODY_SRC_TIMEOUT;
    case NP_IO_STOPPED:
        return NP_BODY_STOPPED;
    default:
        return NP_BODY_SRC_ERR;
    }
}

/* Relay one body: the bytes already in buf first, then read after read, each read's decoded
 * data written before the next read. Reads after the first land at buf + off, so that a
 * chunk header fits in front of the data they hold. */
enum np_body_result
np_body_relay(struct np_body_xfer *x)
{
    struct relay r;
    enum np_body_result res = NP_BODY_SRC_ERR;
    size_t off = 0;
    size_t n = 0;
    enum np_io io;

    x->body_bytes = 0;
    x->leftover_off = 0;
    x->leftover_len = 0;
    if (x->buf == NULL || x->cap == 0 || x->have > x->cap) {
        errno = EINVAL;
        goto out;
    }
    memset(&r, 0, sizeof(r));
    r.x = x;
    r.chunked_in = x->in == NP_FRAME_CHUNKED;
    if (x->out == NP_FRAME_CHUNKED && x->cap >= CHUNK_RESERVE_MIN) {
        off = CHUNK_HDR_MAX;
    }
    res = relay_start(&r);
    if (res == NP_BODY_DONE && r.complete) {
        x->leftover_len = x->have; /* empty body: everything received belongs to what follows */
        res = emit(&r, NULL, 0, NULL, true);
        goto out;
    }
    if (res == NP_BODY_DONE && x->have > 0) {
        res = relay_step(&r, x->buf, x->have);
    }
    while (res == NP_BODY_DONE && !r.complete) {
        io = np_stream_recv(x->src, x->buf + off, x->cap - off, &n, np_deadline(x->idle_ms));
        if (io == NP_IO_OK) {
            res = relay_step(&r, x->buf + off, n);
        } else if (io == NP_IO_EOF) {
            res = relay_eof(&r);
        } else {
            res = src_failure(io);
        }
    }
out:
    return res;
}

/* Write the chunked terminator. */
enum np_io
np_body_write_last_chunk(struct np_stream *dst, uint64_t deadline)
{
    return np_stream_send_all(dst, "0\r\n\r\n", 5, deadline);
}
