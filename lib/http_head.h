/* The HTTP/1.x head grammar (SPEC §1.2), L1: the one copy of every rule about the bytes of a
 * message head, shared by requests (http_request.c), responses (http_response.c) and the
 * enterprise proxy's answer to a chained CONNECT (external.c).
 *
 * A head goes through three independent gates, each of which can only reject:
 *   1. np_head_scan: line structure and the caps, on the raw bytes as they arrive;
 *   2. our own reading of the start line and the framing headers (np_head_view), with the
 *      request-smuggling rules kept visible here;
 *   3. http-parser 2.9.4 (np_head_parse_agreed), whose view of the start line and the framing
 *      must agree with ours, otherwise the head is refused.
 * http_parser_set_max_header_size() is never called: it writes a process-global. */
#ifndef NP_HTTP_HEAD_H
#define NP_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

enum np_head_scan {
    NP_HEAD_NEED_MORE = 0, /* no complete head yet, no cap exceeded */
    NP_HEAD_COMPLETE,      /* *head_len = bytes up to and including the blank line */
    NP_HEAD_URI_TOO_LONG,  /* start line over NP_MAX_REQUEST_LINE ⇒ 414 */
    NP_HEAD_TOO_LARGE, /* header block over NP_MAX_HEADER_BLOCK or NP_MAX_HEADERS lines ⇒ 431 */
    NP_HEAD_MALFORMED, /* NUL, bare CR, obsolete line folding, empty start line ⇒ 400 */
};

/* Scan buf[0..len), the bytes received so far (len may grow between calls; the result only
 * depends on the bytes), for the end of the head. Lines end in CRLF or LF. Caps are checked
 * as soon as the bytes prove them exceeded, even before the line ends; the verdict for a
 * prefix is either NEED_MORE or the verdict for every longer input. */
enum np_head_scan np_head_scan(const char *buf, size_t len, size_t *head_len);

/* How a message body is delimited. */
enum np_framing {
    NP_FRAME_NONE = 0, /* no body */
    NP_FRAME_LENGTH,   /* Content-Length bytes */
    NP_FRAME_CHUNKED,  /* Transfer-Encoding: chunked */
    NP_FRAME_CLOSE,    /* until the sender closes (responses only) */
};

struct np_header {
    const char *name; /* points into the head buffer; not NUL-terminated */
    size_t name_len;
    const char *value; /* leading and trailing whitespace removed */
    size_t value_len;
};

/* A run of bytes: a line of a head (line ending excluded), an element of a list. */
struct np_slice {
    const char *p;
    size_t len;
};

/* Byte classes of RFC 9110 §5.6: optional white space, token characters, and the bytes a
 * field value or reason phrase may hold (HTAB, SP, VCHAR, obs-text). */
bool np_http_is_ows(char ch);
bool np_http_is_tchar(char ch);
bool np_http_is_text(char ch);

/* Remove leading and trailing SP/HTAB from the slice *p, *len. */
void np_http_trim_ows(const char **p, size_t *len);

/* Whether s[0..len) is word, ignoring ASCII case on both sides. */
bool np_http_ieq(const char *s, size_t len, const char *word);

/* Take the line at *pos of head[0..head_len) (which ends in LF, as np_head_scan guarantees),
 * without its CR/LF, and advance *pos past it. Returns false at the final empty line or the
 * end. */
bool np_head_next_line(const char *head, size_t head_len, size_t *pos, struct np_slice *line);

/* What our own reading of a head's start line and framing headers found. */
struct np_head_view {
    struct np_slice method; /* requests */
    struct np_slice target; /* requests */
    unsigned status;        /* responses */
    unsigned short major;
    unsigned short minor;
    bool has_cl;
    uint64_t cl;
    bool has_te;
    bool chunked;  /* the final coding seen so far is chunked */
    bool te_other; /* a coding other than chunked was named */
};

/* Check one header line: a token name directly followed by ':' (http-parser 2.9 accepts
 * "Transfer-Encoding : chunked"), and the framing headers: Content-Length (digits only, at
 * most 18446744073709551609 as http-parser; any duplicate refused, as http-parser does) and
 * Transfer-Encoding (non-empty comma-list elements, nothing after chunked). Other values are
 * left to http-parser. Returns NULL or the reason. */
const char *np_head_check_field(const struct np_slice *line, struct np_head_view *v);

/* Check "HTTP/d.d SP ddd [SP reason]": version 1.0 or 1.1, status 100..599 (RFC 9110 §15),
 * reason of text bytes only; fills v->major, minor, status. Returns NULL or the reason. */
const char *np_head_check_status_line(const struct np_slice *line, struct np_head_view *v);

/* Whether the first len bytes of an answer can still begin "HTTP/1.d ": lets a peer that
 * does not speak HTTP be refused at its first bytes rather than at a timeout. */
bool np_head_status_prefix_ok(const char *p, size_t len);

/* The framing rules of a whole head (RFC 9112 §6): both Content-Length and
 * Transfer-Encoding; a final coding other than chunked; Transfer-Encoding in HTTP/1.0 (the
 * reason names a request or a response); then a coding before chunked ("gzip, chunked"),
 * which the proxy, re-framing every body, would drop. Returns NULL or the reason;
 * *unsupported is true for the last one (a request answered 501 rather than 400). */
const char *np_head_check_framing(const struct np_head_view *v, bool request, bool *unsupported);

/* The reasons np_head_check_framing gives, for callers that name them. */
extern const char np_head_why_te[];
extern const char np_head_why_te_coding[];

/* Collects the header slices http-parser hands to its on_header_field / on_header_value
 * callbacks into headers[] (pointers into the head, never copies). A name or value delivered
 * in several slices must be contiguous. */
struct np_header_sink {
    struct np_header *headers; /* NP_MAX_HEADERS entries */
    size_t *n;                 /* entries used */
    int last;                  /* 0: nothing yet, 1: a name, 2: a value */
    bool bad;                  /* more headers than fit, or non-contiguous slices */
};

/* What http-parser made of a head. */
struct np_head_parsed {
    struct np_header_sink hs; /* set by the caller: where the headers go */
    struct np_slice target;   /* requests */
    unsigned method;          /* requests: http-parser's method number */
    unsigned status;          /* responses */
    unsigned short major;
    unsigned short minor;
    bool keep_alive; /* http_should_keep_alive */
    bool chunked;    /* F_CHUNKED */
    bool has_cl;     /* F_CONTENTLENGTH */
    uint64_t cl;
    bool done; /* on_headers_complete ran */
};

/* Whether head[0..head_len) is exactly one complete head as np_head_scan delimits it. */
bool np_head_whole(const char *head, size_t head_len);

/* Run http-parser over the whole head (request when request, else response) into *out,
 * pausing at the end of the head (a body is never parsed here), trim the header values, then
 * check that its reading agrees with ours (own, from the np_head_check_* rules) on the start
 * line (a request's method and target, a response's status), the version and the framing:
 * any disagreement is a parser differential, and refused. Returns NULL or the reason. */
const char *np_head_parse_agreed(bool request, const char *head, size_t head_len,
                                 const struct np_head_view *own, struct np_head_parsed *out);

/* Whether m[0..len) is the name of a method http-parser knows. */
bool np_http_method_known(const char *m, size_t len);

/* The name of http-parser's method number (static text). */
const char *np_http_method_name(unsigned method);

/* First header of headers[0..n) named name (case-insensitive), or NULL. */
const struct np_header *np_header_find(const struct np_header *headers, size_t n, const char *name);

/* Whether the comma-separated list value[0..len) (a Connection or Upgrade value) names
 * name[0..name_len), ignoring ASCII case and optional whitespace around elements. */
bool np_http_list_has(const char *value, size_t len, const char *name, size_t name_len);

/* Whether a header is hop-by-hop (RFC 9110 §7.6.1): Connection, Keep-Alive, Proxy-Connection,
 * Proxy-Authenticate, Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade, or a name
 * listed in any of the given Connection header values (comma-separated tokens), except
 * Content-Length, which is framing and never hop-by-hop (SPEC §1.2). */
bool np_http_hop_by_hop(const char *name, size_t name_len, const struct np_header *headers,
                        size_t n_headers);

#endif /* NP_HTTP_HEAD_H */
