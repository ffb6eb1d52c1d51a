/* HTTP/1.x response heads (SPEC §1.2, §5, §6.6): see http_response.h. */
#include "http_response.h"

#include <string.h>

static const char why_head[] = "malformed response head";
static const char why_status_line[] = "malformed status line";

/* Read the status line and framing headers of head ourselves. */
static const char *
check_own_rules(const char *head, size_t head_len, struct np_head_view *v)
{
    size_t pos = 0;
    struct np_slice l;
    const char *why = NULL;
    bool unsupported = false;

    while (pos < head_len && (head[pos] == '\r' || head[pos] == '\n')) {
        pos++; /* empty lines before the status line: http-parser skips them too */
    }
    if (!np_head_next_line(head, head_len, &pos, &l)) {
        return why_status_line;
    }
    why = np_head_check_status_line(&l, v);
    while (why == NULL && np_head_next_line(head, head_len, &pos, &l)) {
        why = np_head_check_field(&l, v);
    }
    return why != NULL ? why : np_head_check_framing(v, false, &unsupported);
}

int
np_http_resp_parse(const char *head, size_t head_len, struct np_http_resp *resp, const char **why)
{
    struct np_head_view own;
    struct np_head_parsed parsed;
    const char *reason = why_head;

    memset(resp, 0, sizeof(*resp));
    memset(&own, 0, sizeof(own));
    memset(&parsed, 0, sizeof(parsed));
    parsed.hs.headers = resp->headers;
    parsed.hs.n = &resp->n_headers;
    if (np_head_whole(head, head_len)) {
        reason = check_own_rules(head, head_len, &own);
    }
    if (reason == NULL) {
        reason = np_head_parse_agreed(false, head, head_len, &own, &parsed);
    }
    if (reason != NULL) {
        goto out;
    }
    resp->status = parsed.status;
    resp->http_major = parsed.major;
    resp->http_minor = parsed.minor;
    resp->keep_alive = parsed.keep_alive;
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
