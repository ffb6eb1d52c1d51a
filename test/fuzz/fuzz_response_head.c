/* libFuzzer target: response heads (SPEC §1.2, §5, §6.6, §8): an upstream's answer
 * (np_head_scan, np_http_resp_parse, np_http_resp_framing for GET and HEAD) and the enterprise
 * proxy's answer to a chained CONNECT. external.c reads that answer in static functions
 * (read_answer, judge_answer) over a real connection; driving np_external_connect would need a
 * listening socket, a resolver and a thread per input, so this target repeats their steps on
 * the fuzzed bytes instead: the answer arrives in pieces (sizes from the input's first bytes)
 * into a 16 KiB buffer, refused as soon as np_head_status_prefix_ok fails, scanned after each
 * piece, then parsed with np_http_resp_parse, its reason phrase read as external.c does and a
 * 2xx answer's bytes after the head kept as early tunnel bytes.
 * Properties: a verdict never depends on the piece sizes; a parsed head has a status in
 * 100..599 and HTTP/1.0 or 1.1; the early bytes are exactly the bytes after the head. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "http_head.h"
#include "http_response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ANSWER_MAX 16384 /* external.c's cap on the answer head */
#define MAX_INPUT  (NP_MAX_HEADER_BLOCK + NP_MAX_REQUEST_LINE + 64)

/* One parse of a complete head in a buffer of exactly head_len bytes; the status, or 0. */
static unsigned
parse_exact(const uint8_t *data, size_t head_len)
{
    char *head = malloc(head_len);
    struct np_http_resp *resp = malloc(sizeof(*resp));
    const char *why = NULL;
    unsigned status = 0;

    if (head == NULL || resp == NULL) {
        abort();
    }
    memcpy(head, data, head_len);
    if (np_http_resp_parse(head, head_len, resp, &why) == 0) {
        enum np_framing get = np_http_resp_framing(resp, false);
        enum np_framing hd = np_http_resp_framing(resp, true);

        if (resp->status < 100 || resp->status > 599 || resp->http_major != 1 ||
            resp->http_minor > 1 || hd != NP_FRAME_NONE) {
            abort();
        }
        if (get == NP_FRAME_CHUNKED && !resp->chunked) {
            abort();
        }
        if (get == NP_FRAME_LENGTH && (!resp->has_content_length || resp->content_length == 0)) {
            abort();
        }
        status = resp->status;
    } else if (why == NULL) {
        abort();
    }
    free(resp);
    free(head);
    return status;
}

/* external.c's reason_phrase() and the line it makes of it. */
static void
show_reason(const char *head, size_t head_len, unsigned status)
{
    struct np_slice line = {head, 0};
    char shown[64];
    char reason[192];
    size_t pos = 0;
    size_t i;

    while (pos < head_len && (head[pos] == '\r' || head[pos] == '\n')) {
        pos++;
    }
    shown[0] = '\0';
    if (np_head_next_line(head, head_len, &pos, &line) && line.len > 13) {
        np_copy_printable(shown, sizeof(shown), line.p + 13, line.len - 13);
    }
    for (i = 0; shown[i] != '\0'; i++) {
        if ((unsigned char)shown[i] < 0x20 || shown[i] == 0x7f) {
            abort(); /* the reason is one printable line */
        }
    }
    (void)snprintf(reason, sizeof(reason), "answered %u %s", status, shown);
}

/* The chained CONNECT's answer, read in pieces as read_answer() does. Returns the status of
 * an accepted answer, 0 for a refused one. */
static unsigned
chained_answer(const uint8_t *data, size_t size, size_t *early)
{
    char *buf = malloc(ANSWER_MAX);
    size_t got = 0;
    size_t head_len = 0;
    size_t i;
    unsigned status = 0;
    enum np_head_scan scan = NP_HEAD_NEED_MORE;

    if (buf == NULL) {
        abort();
    }
    *early = 0;
    for (i = 0; got < ANSWER_MAX && got < size; i++) {
        size_t n = size > 0 ? (size_t)data[i % (size < 4 ? size : 4)] % 97u + 1u : 1u;

        if (n > size - got) {
            n = size - got;
        }
        if (n > ANSWER_MAX - got) {
            n = ANSWER_MAX - got;
        }
        memcpy(buf + got, data + got, n);
        got += n;
        if (!np_head_status_prefix_ok(buf, got)) {
            break;
        }
        scan = np_head_scan(buf, got, &head_len);
        if (scan != NP_HEAD_NEED_MORE) {
            break;
        }
    }
    if (scan == NP_HEAD_COMPLETE) {
        if (head_len == 0 || head_len > got) {
            abort();
        }
        status = parse_exact((const uint8_t *)buf, head_len);
        if (status != 0) {
            show_reason(buf, head_len, status);
            *early = got - head_len;
            if (*early > 0 && memcmp(buf + head_len, data + head_len, *early) != 0) {
                abort();
            }
        }
    }
    free(buf);
    return status;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t head_len = 0;
    size_t early = 0;
    enum np_head_scan scan;
    unsigned upstream_status = 0;
    unsigned chained_status;

    if (size > MAX_INPUT) {
        return -1;
    }
    {
        char *copy = malloc(size > 0 ? size : 1);

        if (copy == NULL) {
            abort();
        }
        if (size > 0) {
            memcpy(copy, data, size);
        }
        scan = np_head_scan(copy, size, &head_len);
        (void)np_head_status_prefix_ok(copy, size);
        free(copy);
    }
    if (scan == NP_HEAD_COMPLETE) {
        upstream_status = parse_exact(data, head_len);
    }
    chained_status = chained_answer(data, size, &early);
    /* A head that fits the chained cap and begins as a status line is read the same there,
     * whatever the piece sizes (a prefix that passes np_head_status_prefix_ok is not refused
     * early: the check only looks at the first bytes). */
    if (scan == NP_HEAD_COMPLETE && head_len <= ANSWER_MAX &&
        np_head_status_prefix_ok((const char *)data, head_len) &&
        chained_status != upstream_status) {
        abort();
    }
    return 0;
}
