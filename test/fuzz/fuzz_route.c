/* libFuzzer target: reverse-proxy routes (SPEC §6): a request head is parsed, matched against
 * a fixed set of routes (np_route_match), its phantom checked in every inject mode
 * (np_route_phantom_ok: header, basic_auth, url_path with and without a suffix, query_param,
 * and a route without credential), and the upstream head built as route_serve.c does:
 * np_route_upstream_target, np_xchg_strip_token, np_route_uphead, np_uphead_build. The routes
 * are built once, with a known session token and secrets (LLVMFuzzerInitialize).
 * Property: the session token never appears in a built upstream head, literally or in any
 * spelling np_token_find_encoded knows (percent-escapes, either case). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nonoproxy/config.h>

#include "buf.h"
#include "common.h"
#include "exchange.h"
#include "http_head.h"
#include "http_request.h"
#include "route_build.h"
#include "route_path.h"
#include "route_phantom.h"
#include "route_target.h"
#include "token.h"
#include "upstream_head.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char token[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
#define TOKEN_LEN  ((size_t)NP_TOKEN_HEX_LEN)
#define MAX_INPUT  (NP_MAX_HEADER_BLOCK + NP_MAX_REQUEST_LINE)
#define TARGET_CAP ((size_t)32 * 1024) /* NP_XCHG_HEAD_OFF */
#define HEAD_CAP   ((size_t)224 * 1024)

struct route_def {
    const char *prefix;
    const char *upstream;
    enum nonoproxy_inject_mode mode;
    const char *header;
    const char *format;
    const char *pattern;
    const char *replacement;
    const char *param;
    const char *secret; /* NULL: a route without credential */
};

static const struct route_def defs[] = {
    {"hdr", "https://api.example.com/v1", NONOPROXY_INJECT_HEADER, NULL, NULL, NULL, NULL, NULL,
     "sk-real"},
    {"x", "https://api.example.com", NONOPROXY_INJECT_HEADER, "X-Api-Key", "{}", NULL, NULL, NULL,
     "sk-x"},
    {"basic", "https://api.example.com", NONOPROXY_INJECT_BASIC_AUTH, NULL, NULL, NULL, NULL, NULL,
     "user:pass"},
    {"bot", "https://api.telegram.org", NONOPROXY_INJECT_URL_PATH, NULL, NULL, "/bot{}/",
     "/v2/bot{}/", NULL, "123:ABC"},
    {"key", "https://maps.example.com", NONOPROXY_INJECT_URL_PATH, NULL, NULL, "/key/{}", NULL,
     NULL, "s3cr3t"},
    {"q", "https://maps.example.com", NONOPROXY_INJECT_QUERY_PARAM, NULL, NULL, NULL, NULL, "key",
     "s k&=/~-._\xc3\xa9"},
    {"free", "http://127.0.0.1:8080/base", NONOPROXY_INJECT_HEADER, NULL, NULL, NULL, NULL, NULL,
     NULL},
};
#define N_ROUTES (sizeof(defs) / sizeof(defs[0]))

static struct np_route routes[N_ROUTES];

/* The upstream target and head areas (static: a fresh 256 KiB per input would dominate). */
static char target_mem[TARGET_CAP];
static char head_mem[HEAD_CAP];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    size_t i;

    (void)argc;
    (void)argv;
    for (i = 0; i < N_ROUTES; i++) {
        struct nonoproxy_route_config rc;
        char why[256];

        memset(&rc, 0, sizeof(rc));
        rc.prefix = defs[i].prefix;
        rc.upstream = defs[i].upstream;
        rc.credential_key = defs[i].secret != NULL ? "env://SVC_KEY" : NULL;
        rc.inject_mode = defs[i].mode;
        rc.inject_header = defs[i].header;
        rc.credential_format = defs[i].format;
        rc.path_pattern = defs[i].pattern;
        rc.path_replacement = defs[i].replacement;
        rc.query_param_name = defs[i].param;
        if (np_route_build(&rc, i, &routes[i], why, sizeof(why)) != 0) {
            abort();
        }
        if (defs[i].secret != NULL) {
            routes[i].secret = strdup(defs[i].secret);
            if (routes[i].secret == NULL) {
                abort();
            }
            routes[i].secret_len = strlen(defs[i].secret);
        }
        if (np_route_prepare_injection(&routes[i]) != 0) {
            abort();
        }
    }
    return 0;
}

/* Build the upstream head of req on r as route_serve.c's rev_build_head does, and check it. */
static void
build_head(const struct np_route *r, const struct np_http_req *req, const struct np_route_hit *hit)
{
    struct np_buf target;
    struct np_buf head;
    struct np_uphead u;
    size_t target_len;

    np_buf_init(&target, target_mem, TARGET_CAP);
    if (np_route_upstream_target(r, hit->rest, hit->rest_len, &target) != 0) {
        return;
    }
    target_len = target.len;
    if (np_xchg_strip_token(target.p, &target_len, token) != 0) {
        return; /* refused: the token in the path */
    }
    if (target_len > target.len) {
        abort();
    }
    np_route_uphead(r, req, (struct np_slice){target.p, target_len}, token, &u);
    u.body = np_http_req_framing(req);
    u.body_len = req->content_length;
    np_buf_init(&head, head_mem, HEAD_CAP);
    if (np_uphead_build(&u, &head) != 0 || !np_buf_ok(&head)) {
        return;
    }
    if (memmem(head.p, head.len, token, TOKEN_LEN) != NULL ||
        np_token_find_encoded(head.p, head.len, token, TOKEN_LEN)) {
        abort(); /* the session token would go upstream */
    }
    if (head.len < 4 || memcmp(head.p + head.len - 4, "\r\n\r\n", 4) != 0) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf;
    size_t len = size;
    size_t head_len = 0;
    struct np_http_req *req;
    struct np_route_hit hit;
    const char *why = NULL;
    size_t i;

    if (size > MAX_INPUT) {
        return -1;
    }
    buf = malloc(size + 4);
    req = malloc(sizeof(*req));
    if (buf == NULL || req == NULL) {
        abort();
    }
    if (size > 0) {
        memcpy(buf, data, size);
    }
    if (np_head_scan(buf, len, &head_len) != NP_HEAD_COMPLETE) {
        memcpy(buf + len, "\r\n\r\n", 4); /* a head cut short: complete it */
        len += 4;
        if (np_head_scan(buf, len, &head_len) != NP_HEAD_COMPLETE) {
            goto out;
        }
    }
    if (np_http_req_parse(buf, head_len, req, &why) != 0) {
        goto out;
    }
    if (np_route_match(routes, N_ROUTES, req->target, req->target_len, &hit) != NP_ROUTE_FOUND) {
        goto out;
    }
    if (hit.index >= N_ROUTES) {
        abort();
    }
    /* The phantom check in every mode, whichever route the prefix chose; the head is built
     * for the matched route whatever the check said (the property holds regardless). */
    for (i = 0; i < N_ROUTES; i++) {
        (void)np_route_phantom_ok(&routes[i], req, hit.rest, hit.rest_len, token);
    }
    build_head(&routes[hit.index], req, &hit);
out:
    free(req);
    free(buf);
    return 0;
}
