/* libFuzzer target: a client's request head as the proxy reads it (SPEC §1.2, §2, §4):
 * np_head_scan over the bytes as they arrive, np_http_req_parse, np_http_req_framing, the
 * Proxy-Authorization check and the CONNECT authority split.
 * Property: the scan's verdict does not depend on how the bytes are split into reads. The
 * input is scanned whole, then as a growing prefix (piece sizes taken from its first bytes),
 * each prefix in a buffer of exactly its length (so ASan sees a read past it), stopping at the
 * first verdict other than NEED_MORE as the proxy does; that verdict and its head length must
 * be the whole input's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_head.h"
#include "http_request.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The session token the seeds' Proxy-Authorization headers carry. */
static const char token[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#define MAX_INPUT  (NP_MAX_HEADER_BLOCK + NP_MAX_REQUEST_LINE + 64)
#define MAX_PIECES 48

/* Scan data[0..len) from a buffer of exactly len bytes. */
static enum np_head_scan
scan_exact(const uint8_t *data, size_t len, size_t *head_len)
{
    char *p = malloc(len > 0 ? len : 1);
    enum np_head_scan r;

    if (p == NULL) {
        abort();
    }
    if (len > 0) {
        memcpy(p, data, len);
    }
    *head_len = 0;
    r = np_head_scan(p, len, head_len);
    free(p);
    return r;
}

/* The verdict reached when the bytes arrive in pieces; *head_len as np_head_scan sets it. */
static enum np_head_scan
scan_in_pieces(const uint8_t *data, size_t size, size_t *head_len)
{
    size_t len = 0;
    size_t i;
    enum np_head_scan r = NP_HEAD_NEED_MORE;
    size_t nsel = size < 8 ? size : 8;

    *head_len = 0;
    for (i = 0; len < size; i++) {
        size_t piece = size - len; /* after MAX_PIECES: the rest at once */

        if (i < MAX_PIECES && nsel > 0) {
            piece = (size_t)data[i % nsel] + 1u;
            if (data[(i + 1) % nsel] & 1u) {
                piece *= 37u; /* some large pieces too */
            }
        }
        if (piece > size - len) {
            piece = size - len;
        }
        len += piece;
        r = scan_exact(data, len, head_len);
        if (r != NP_HEAD_NEED_MORE) {
            break;
        }
    }
    return r;
}

/* Parse a complete head and read it as the session and tunnel code do. */
static void
parse_head(const uint8_t *data, size_t head_len)
{
    char *head = malloc(head_len);
    struct np_http_req *req = malloc(sizeof(*req));
    const char *why = NULL;

    if (head == NULL || req == NULL) {
        abort();
    }
    memcpy(head, data, head_len);
    if (np_http_req_parse(head, head_len, req, &why) == 0) {
        enum np_framing fr = np_http_req_framing(req);
        enum np_auth a = np_token_check_proxy_auth(req, token);

        if (fr == NP_FRAME_CLOSE ||
            (a != NP_AUTH_MISSING && a != NP_AUTH_INVALID && a != NP_AUTH_OK)) {
            abort();
        }
        if ((np_http_req_header(req, "Proxy-Authorization") == NULL) != (a == NP_AUTH_MISSING)) {
            abort();
        }
        if (req->method == NP_METHOD_CONNECT) {
            const char *host = NULL;
            size_t host_len = 0;
            uint16_t port = 0;

            if (np_split_authority(req->target, req->target_len, &host, &host_len, &port) == 0) {
                if (port == 0 || host_len == 0 || host < req->target ||
                    host + host_len > req->target + req->target_len) {
                    abort();
                }
            }
        }
    } else if (why == NULL) {
        abort(); /* a refusal always says why */
    }
    free(req);
    free(head);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t whole_len = 0;
    size_t piece_len = 0;
    enum np_head_scan whole;
    enum np_head_scan pieces;

    if (size > MAX_INPUT) {
        return -1;
    }
    whole = scan_exact(data, size, &whole_len);
    pieces = scan_in_pieces(data, size, &piece_len);
    if (whole != pieces) {
        abort();
    }
    if (whole == NP_HEAD_COMPLETE) {
        if (whole_len != piece_len || whole_len == 0 || whole_len > size) {
            abort();
        }
        parse_head(data, whole_len);
    }
    return 0;
}
