/* The chained CONNECT through the external (enterprise) proxy (SPEC §8), L3. Its address and
 * bypass list are config_external.c's.
 *
 * Outcomes of np_external_connect (the caller maps them to statuses and audit categories):
 *   - name does not resolve, connection refused or reset (SPEC §8: an unreachable enterprise
 *     proxy is a 502 upstream_connect_failed) ⇒ NP_EXT_UNREACHABLE, "external proxy H:P
 *     unreachable: <errno text>";
 *   - the connect timeout ran out on every address that did not refuse (SPEC §3: 504 on every
 *     path) ⇒ NP_EXT_TIMEOUT, "external proxy H:P unreachable: connect timed out";
 *   - accepted the connection, then closed it without a byte of answer ⇒ NP_EXT_REJECTED with
 *     status 0, "external proxy H:P closed the connection without answering": it is reachable
 *     and refused to serve us (many proxies close on an ACL deny);
 *   - an answer that is not a response head http_response.c accepts (refused at the first
 *     bytes that cannot begin "HTTP/1.d "), a head over 16 KiB, a bare CR or NUL in it, or a
 *     close in the middle of it ⇒ NP_EXT_REJECTED, status 0, "external proxy H:P sent a
 *     malformed answer";
 *   - a well-formed non-2xx status ⇒ NP_EXT_REJECTED, status NNN,
 *     "external proxy H:P answered NNN <reason phrase>" (printable, at most 63 characters);
 *   - no complete answer head within answer_timeout_ms ⇒ NP_EXT_TIMEOUT,
 *     "external proxy H:P did not answer in time";
 *   - the stop descriptor became readable ⇒ NP_EXT_STOPPED.
 * A 2xx CONNECT answer has no body: every byte after its head belongs to the tunnel and is
 * returned in t->early. At most 16 KiB is read in all, so an early_cap of 16 KiB always
 * suffices; with less, and more early bytes than fit, the tunnel is refused (REJECTED, status
 * 0, "sent too much data after its answer") rather than losing bytes. */
#include "external.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "http_head.h"
#include "http_response.h"
#include "net.h"
#include "token.h"

#define ANSWER_MAX   16384 /* the enterprise proxy's answer head, and our request */
#define SHOWN_HOST   64    /* host as shown in reasons (truncated with "...") */
#define SHOWN_PHRASE 64    /* reason phrase as shown in reasons */

/* ---------------------------------------------------------------------------------------- */
/* np_external_connect                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* State of one chained CONNECT. */
struct chain {
    const struct np_external *e;
    int stop_fd;
    char who[SHOWN_HOST + 24]; /* "external proxy H:P" */
    char *buf;                 /* ANSWER_MAX bytes: first our request, then the answer */
    size_t got;                /* answer bytes received */
    size_t head_len;           /* length of the answer head once complete */
    struct np_ext_tunnel *t;
};

/* Write "external proxy H:P" (or "[v6]:P") into c->who, the host shown printable and
 * truncated to SHOWN_HOST. */
static void
format_who(struct chain *c)
{
    char shown[SHOWN_HOST];
    bool v6 = strchr(c->e->host, ':') != NULL;

    np_copy_printable(shown, sizeof(shown), c->e->host, strlen(c->e->host));
    (void)snprintf(c->who, sizeof(c->who), "external proxy %s%s%s:%u", v6 ? "[" : "", shown,
                   v6 ? "]" : "", (unsigned)c->e->port);
}

/* Set t->reason to "<who> <what>". */
static void
set_reason(struct chain *c, const char *what)
{
    (void)snprintf(c->t->reason, sizeof(c->t->reason), "%s %s", c->who, what);
}

/* Set t->reason to "<who> unreachable: <errno text>". */
static void
set_unreachable(struct chain *c, int err)
{
    (void)snprintf(c->t->reason, sizeof(c->t->reason), "%s unreachable: %s", c->who,
                   NP_ERRSTR(err));
}

/* Resolve the enterprise proxy into addrs (its configured port set on each). Returns the
 * number of addresses, 0 with t->reason set on failure. */
static size_t
resolve_proxy(struct chain *c, const struct np_resolver *r, struct sockaddr_storage *addrs)
{
    size_t count = 0;
    size_t i;

    if (np_host_parse_ip(c->e->host, &addrs[0])) {
        count = 1;
    } else {
        struct nonoproxy_addrs out = {addrs, NP_MAX_ADDRS, 0};
        int rc;

        if (r != NULL && r->fn != NULL) {
            rc = r->fn(r->userdata, c->e->host, c->e->port, &out);
        } else {
            rc = np_net_resolve(NULL, c->e->host, c->e->port, &out);
        }
        count = out.count;
        if (rc != 0 || count == 0) {
            set_reason(c, rc != 0 ? "unreachable: its name does not resolve"
                                  : "unreachable: its name has no address");
            return 0;
        }
        if (count > NP_MAX_ADDRS) {
            count = NP_MAX_ADDRS; /* never trust more than the array holds */
        }
    }
    for (i = 0; i < count; i++) {
        np_sockaddr_set_port(&addrs[i], c->e->port);
    }
    return count;
}

/* Connect to each address of the enterprise proxy in turn. On NP_EXT_OK *fd is connected. */
static enum np_ext_result
connect_proxy(struct chain *c, const struct np_resolver *r, uint32_t timeout_ms, int *fd)
{
    struct sockaddr_storage addrs[NP_MAX_ADDRS];
    size_t n = resolve_proxy(c, r, addrs);
    enum np_io io;
    int err = 0;

    if (n == 0) {
        return NP_EXT_UNREACHABLE;
    }
    io = np_net_connect_any(addrs, n, (struct np_dial_limits){timeout_ms, c->stop_fd}, fd, &err);
    switch (io) {
    case NP_IO_OK:
        return NP_EXT_OK;
    case NP_IO_STOPPED:
        set_reason(c, "abandoned: shutting down");
        return NP_EXT_STOPPED;
    case NP_IO_TIMEOUT:
        /* SPEC §3: the connect timeout running out is a 504 on every path. */
        set_reason(c, "unreachable: connect timed out");
        return NP_EXT_TIMEOUT;
    case NP_IO_EOF:
    case NP_IO_ERR:
        break;
    }
    /* SPEC §8: an enterprise proxy that refuses or cannot be reached is a 502. */
    set_unreachable(c, err != 0 ? err : ECONNREFUSED);
    return NP_EXT_UNREACHABLE;
}

/* Map a failed send or receive to a result and a reason. */
static enum np_ext_result
io_failure(struct chain *c, enum np_io io, int err)
{
    if (io == NP_IO_TIMEOUT) {
        set_reason(c, "did not answer in time");
        return NP_EXT_TIMEOUT;
    }
    if (io == NP_IO_STOPPED) {
        set_reason(c, "abandoned: shutting down");
        return NP_EXT_STOPPED;
    }
    if (io == NP_IO_EOF) {
        set_reason(c, c->got == 0 ? "closed the connection without answering"
                                  : "sent a malformed answer");
        return NP_EXT_REJECTED;
    }
    set_unreachable(c, err != 0 ? err : EIO);
    return NP_EXT_UNREACHABLE;
}

/* Send "CONNECT target HTTP/1.1" with Host and the optional Proxy-Authorization on fd. The
 * request (which may hold the credentials) is wiped from c->buf afterwards. */
static enum np_ext_result
send_connect(struct chain *c, int fd, const char *target, uint64_t deadline)
{
    const struct np_external *e = c->e;
    enum np_ext_result res = NP_EXT_OK;
    struct np_buf b;
    enum np_io io;

    np_buf_init(&b, c->buf, ANSWER_MAX);
    np_buf_puts(&b, "CONNECT ");
    np_buf_puts(&b, target);
    np_buf_puts(&b, " HTTP/1.1\r\nHost: ");
    np_buf_puts(&b, target);
    np_buf_puts(&b, "\r\n");
    if (e->auth_header != NULL) {
        np_buf_put(&b, e->auth_header, e->auth_header_len);
    }
    np_buf_puts(&b, "\r\n");
    if (!np_buf_ok(&b)) {
        set_reason(c, "cannot be asked: request too long");
        res = NP_EXT_REJECTED;
        goto out;
    }
    io = np_net_send_all(fd, b.p, b.len, c->stop_fd, deadline);
    if (io != NP_IO_OK) {
        res = io_failure(c, io, errno);
    }
out:
    np_secure_zero(c->buf, ANSWER_MAX); /* wipe the Proxy-Authorization header */
    return res;
}

/* Read the answer head into c->buf (c->got bytes, c->head_len once complete). */
static enum np_ext_result
read_answer(struct chain *c, int fd, uint64_t deadline)
{
    size_t n = 0;

    for (;;) {
        enum np_io io;
        enum np_head_scan scan;

        if (c->got == ANSWER_MAX) {
            break; /* head over the cap */
        }
        io = np_net_recv(fd, c->buf + c->got, ANSWER_MAX - c->got, &n,
                         (struct np_until){c->stop_fd, deadline});
        if (io != NP_IO_OK) {
            return io_failure(c, io, errno);
        }
        c->got += n;
        if (!np_head_status_prefix_ok(c->buf, c->got)) {
            break;
        }
        scan = np_head_scan(c->buf, c->got, &c->head_len);
        if (scan == NP_HEAD_COMPLETE) {
            return NP_EXT_OK;
        }
        if (scan != NP_HEAD_NEED_MORE) {
            break;
        }
    }
    set_reason(c, "sent a malformed answer");
    return NP_EXT_REJECTED;
}

/* The reason phrase of the status line of a head np_http_resp_parse accepted. */
static struct np_slice
reason_phrase(const char *head, size_t head_len)
{
    struct np_slice line = {head, 0};
    struct np_slice phrase = {head, 0};
    size_t pos = 0;

    while (pos < head_len && (head[pos] == '\r' || head[pos] == '\n')) {
        pos++;
    }
    if (np_head_next_line(head, head_len, &pos, &line) && line.len > 13) {
        phrase.p = line.p + 13; /* after "HTTP/1.x NNN " */
        phrase.len = line.len - 13;
    }
    return phrase;
}

/* Judge the complete answer head in c->buf, read with the same grammar as every response
 * (http_response.c): 2xx ⇒ OK with the early bytes copied out. */
static enum np_ext_result
judge_answer(struct chain *c)
{
    struct np_ext_tunnel *t = c->t;
    struct np_http_resp resp;
    struct np_slice phrase;
    char shown[SHOWN_PHRASE];
    size_t early = c->got - c->head_len;
    size_t i;

    if (np_http_resp_parse(c->buf, c->head_len, &resp, NULL) != 0) {
        set_reason(c, "sent a malformed answer");
        return NP_EXT_REJECTED;
    }
    t->status = resp.status;
    phrase = reason_phrase(c->buf, c->head_len);
    np_copy_printable(shown, sizeof(shown), phrase.p, phrase.len);
    for (i = 0; shown[i] != '\0'; i++) {
        if ((unsigned char)shown[i] >= 0x80) {
            shown[i] = '?'; /* one line of ASCII for the audit and the 502 body */
        }
    }
    (void)snprintf(t->reason, sizeof(t->reason), "%s answered %u%s%s", c->who, t->status,
                   shown[0] != '\0' ? " " : "", shown);
    if (t->status < 200 || t->status > 299) {
        return NP_EXT_REJECTED;
    }
    if (early > 0 && (t->early == NULL || early > t->early_cap)) {
        t->status = 0;
        set_reason(c, "sent too much data after its answer");
        return NP_EXT_REJECTED;
    }
    if (early > 0) {
        memcpy(t->early, c->buf + c->head_len, early);
    }
    t->early_len = early;
    return NP_EXT_OK;
}

/* Normalise the target host and write "host:port" / "[v6]:port" into out. Returns 0 or -1. */
static int
format_target(const char *host, uint16_t port, char *out, size_t cap)
{
    char norm[NP_HOST_BUF];
    bool v6;
    int n;

    if (host == NULL || port == 0 ||
        np_host_normalize(host, strlen(host), norm, sizeof(norm)) != 0) {
        return -1;
    }
    v6 = strchr(norm, ':') != NULL;
    n = snprintf(out, cap, "%s%s%s:%u", v6 ? "[" : "", norm, v6 ? "]" : "", (unsigned)port);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

enum np_ext_result
np_external_connect(const struct np_ext_request *q, struct np_ext_tunnel *t)
{
    const struct np_external *e = q->e;
    enum np_ext_result res = NP_EXT_UNREACHABLE;
    struct chain c;
    char target[NP_HOST_BUF + 8];
    uint64_t deadline;
    int fd = -1;

    memset(&c, 0, sizeof(c));
    c.e = e;
    c.stop_fd = q->stop_fd;
    c.t = t;
    t->fd = -1;
    t->status = 0;
    t->early_len = 0;
    if (e == NULL || e->port == 0) {
        (void)snprintf(t->reason, sizeof(t->reason), "no external proxy configured");
        return NP_EXT_UNREACHABLE;
    }
    format_who(&c);
    t->reason[0] = '\0';
    if (format_target(q->host, q->port, target, sizeof(target)) != 0) {
        set_reason(&c, "not asked: invalid target host or port");
        return NP_EXT_REJECTED;
    }
    c.buf = np_malloc(ANSWER_MAX);
    if (c.buf == NULL) {
        set_unreachable(&c, ENOMEM);
        goto out;
    }
    res = connect_proxy(&c, q->resolver, q->connect_timeout_ms, &fd);
    if (res != NP_EXT_OK) {
        goto out;
    }
    deadline = np_deadline(q->answer_timeout_ms);
    res = send_connect(&c, fd, target, deadline);
    if (res == NP_EXT_OK) {
        res = read_answer(&c, fd, deadline);
    }
    if (res == NP_EXT_OK) {
        res = judge_answer(&c);
    }
out:
    if (res == NP_EXT_OK) {
        t->fd = fd;
        fd = -1; /* ownership moved to the caller */
    }
    np_net_close(fd);
    np_free(c.buf);
    return res;
}
