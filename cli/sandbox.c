/* Landlock network confinement of nonoproxy-run's child: TCP connect to the proxy's port only,
 * no TCP bind; plus a small seccomp filter that closes the two ways around Landlock's TCP rules
 * that this kernel generation still has. The limits are listed in sandbox.h and
 * docs/SECURITY.md; test/unit/test_sandbox.c checks every claim made there. */
#include "sandbox.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- Landlock user API ---------------------------------------------------------------------
 * Distribution headers may predate ABI 4 (Debian 12's linux/landlock.h has no network rights),
 * so the values come from the kernel's UAPI under our own names, and the structures are ours
 * too (the system's landlock_ruleset_attr may lack handled_access_net). Layouts and values are
 * fixed by the kernel ABI. */
#ifndef SBX_LANDLOCK_CREATE_RULESET_VERSION
#define SBX_LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#endif
#ifndef SBX_LANDLOCK_ACCESS_NET_BIND_TCP
#define SBX_LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#endif
#ifndef SBX_LANDLOCK_ACCESS_NET_CONNECT_TCP
#define SBX_LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef SBX_LANDLOCK_RULE_NET_PORT
#define SBX_LANDLOCK_RULE_NET_PORT 2
#endif
/* The first ABI with TCP rules (Linux 6.7). */
#define SBX_LANDLOCK_ABI_NET 4

/* System call numbers: from <sys/syscall.h> when the C library knows them, else the common
 * numbers (444-446 on every architecture but alpha). */
#ifndef SYS_landlock_create_ruleset
#if defined(__x86_64__) || defined(__aarch64__) || defined(__riscv)
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule       445
#define SYS_landlock_restrict_self  446
#else
#error "landlock system call numbers unknown for this architecture"
#endif
#endif

/* struct landlock_ruleset_attr up to ABI 4 (ABI 6 appends `scoped`; the kernel accepts the
 * shorter size and takes the missing fields as 0). On an ABI < 4 kernel this size is rejected
 * (E2BIG), so the sandbox fails instead of silently handling nothing. */
struct sbx_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
};

/* struct landlock_net_port_attr: the port in host byte order. */
struct sbx_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

_Static_assert(sizeof(struct sbx_ruleset_attr) == 16, "landlock_ruleset_attr ABI 4 layout");
_Static_assert(sizeof(struct sbx_net_port_attr) == 16, "landlock_net_port_attr layout");

/* Both network rights are handled, so every TCP bind and connect is denied unless a rule
 * allows it. No file-system right is handled: a ruleset needs at least one handled right of
 * any kind, and network-only is valid from ABI 4. */
#define SBX_HANDLED_NET (SBX_LANDLOCK_ACCESS_NET_BIND_TCP | SBX_LANDLOCK_ACCESS_NET_CONNECT_TCP)

/* ---- seccomp filter against the known ways around Landlock's TCP rules ------------------------
 * Landlock checks connect(2) and bind(2) on TCP sockets only. Two other ways open a TCP
 * connection to any port (upstream issues landlock-lsm/linux#41 and #54):
 *   - TCP Fast Open: sendto/sendmsg/sendmmsg with MSG_FASTOPEN connect without connect(2);
 *     refused with EOPNOTSUPP, as a kernel with client Fast Open disabled answers (callers fall
 *     back to connect(2), which Landlock checks; TCP_FASTOPEN_CONNECT goes through connect(2));
 *   - Multipath TCP: socket(..., IPPROTO_MPTCP) is not a TCP socket for Landlock, yet falls back
 *     to plain TCP against any server; refused with EPROTONOSUPPORT, as a kernel without MPTCP
 *     answers (Go, which uses MPTCP by default for listeners, then falls back to TCP);
 *   - kernel-internal TCP: SMC (socket(AF_SMC, ...), or socket(AF_INET/AF_INET6, ...,
 *     IPPROTO_SMC)) and RDS over TCP connect through a socket of the kernel's own that never
 *     meets Landlock's connect hook. socket(2) therefore takes only the families a program
 *     needs for the proxy and local IPC, AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK (interface
 *     and route queries); every other family (SMC, RDS, TIPC, VSOCK, packet, ...) and
 *     IPPROTO_SMC are refused with EACCES, an errno no kernel gives for them (one without the
 *     family answers EAFNOSUPPORT, without SMC EPROTONOSUPPORT), so a test can tell the filter
 *     from the kernel;
 * and io_uring could submit both operations without those system calls: io_uring_setup fails
 * with ENOSYS. System calls of another ABI (x32, or 32-bit code on a 64-bit kernel) could reach
 * the same operations under other numbers: they kill the process (SIGSYS). The filter exists for
 * little-endian x86_64 and aarch64 (it reads the low 32 bits of an argument at offset 0);
 * elsewhere only Landlock applies. */
#if defined(__x86_64__)
#define SBX_HAVE_SECCOMP 1
#define SBX_AUDIT_ARCH   AUDIT_ARCH_X86_64
#elif defined(__aarch64__) && defined(__AARCH64EL__)
#define SBX_HAVE_SECCOMP 1
#define SBX_AUDIT_ARCH   AUDIT_ARCH_AARCH64
#else
#define SBX_HAVE_SECCOMP 0
#endif

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef IPPROTO_SMC
#define IPPROTO_SMC 256
#endif
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#define SBX_X32_SYSCALL_BIT 0x40000000U

#define SBX_LD_NR   BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define SBX_LD_ARCH BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch))
#define SBX_LD_ARG_LO(i)                                                                           \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)offsetof(struct seccomp_data, args[i]))
#define SBX_RET(v)       BPF_STMT(BPF_RET | BPF_K, (v))
#define SBX_RET_ERRNO(e) SBX_RET(SECCOMP_RET_ERRNO | ((unsigned)(e)&SECCOMP_RET_DATA))
/* Five instructions: if the call is `nr` and (argument i's low word OP k), return errno e;
 * otherwise fall through to the next block. */
#define SBX_ARG_RULE(nr, i, op, k, e)                                                              \
    SBX_LD_NR, BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 3), SBX_LD_ARG_LO(i),                  \
        BPF_JUMP(BPF_JMP | (op) | BPF_K, (k), 0, 1), SBX_RET_ERRNO(e)

/* Installs the filter described above (requires no_new_privs). Returns 0 or -errno.
 * Async-signal-safe: the program is built on the stack. */
static int
install_bypass_filter(void)
{
#if SBX_HAVE_SECCOMP
    struct sock_filter prog[] = {
        SBX_LD_ARCH,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SBX_AUDIT_ARCH, 1, 0),
        SBX_RET(SECCOMP_RET_KILL_PROCESS), /* another ABI: its numbers are not checked here */
        SBX_LD_NR,
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, SBX_X32_SYSCALL_BIT, 0, 1),
        SBX_RET(SECCOMP_RET_KILL_PROCESS), /* x32 system calls on x86_64 */
        /* socket(): an allowlist of families (seven instructions), then the protocols. */
        SBX_LD_NR,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 6),
        SBX_LD_ARG_LO(0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_NETLINK, 1, 0),
        SBX_RET_ERRNO(EACCES),
        SBX_ARG_RULE(__NR_socket, 2, BPF_JEQ, IPPROTO_MPTCP, EPROTONOSUPPORT),
        SBX_ARG_RULE(__NR_socket, 2, BPF_JEQ, IPPROTO_SMC, EACCES),
        SBX_ARG_RULE(__NR_sendto, 3, BPF_JSET, MSG_FASTOPEN, EOPNOTSUPP),
        SBX_ARG_RULE(__NR_sendmsg, 2, BPF_JSET, MSG_FASTOPEN, EOPNOTSUPP),
        SBX_ARG_RULE(__NR_sendmmsg, 3, BPF_JSET, MSG_FASTOPEN, EOPNOTSUPP),
        SBX_LD_NR,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        SBX_RET_ERRNO(ENOSYS),
        SBX_RET(SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog;

    fprog.len = (unsigned short)(sizeof(prog) / sizeof(prog[0]));
    fprog.filter = prog;
    if (prctl(PR_SET_SECCOMP, (unsigned long)SECCOMP_MODE_FILTER, &fprog, 0UL, 0UL) != 0) {
        return -errno;
    }
#endif
    return 0;
}

/* ---- probe and apply --------------------------------------------------------------------------
 */

/* Creates the ruleset cli_sandbox_apply() enforces (network rights only, no rule yet). Returns
 * the ruleset descriptor (close-on-exec, set by the kernel) or -errno. Async-signal-safe. */
static int
create_net_ruleset(void)
{
    struct sbx_ruleset_attr attr;
    long fd = -1;

    attr.handled_access_fs = 0; /* the file system stays as it is */
    attr.handled_access_net = SBX_HANDLED_NET;
    fd = syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0U);
    if (fd < 0) {
        return -errno;
    }
    return (int)fd;
}

/* Writes "PREFIX: <strerror(e)>" into why (truncated to fit). */
static void
explain_errno(char *why, size_t why_len, const char *prefix, int e)
{
    char ebuf[128];

    (void)snprintf(why, why_len, "%s: %s", prefix, strerror_r(e, ebuf, sizeof(ebuf)));
}

/* Writes into why the reason a failed ABI version query gives (errno e). */
static void
explain_version_error(char *why, size_t why_len, int e)
{
    if (e == ENOSYS) {
        explain_errno(why, why_len, "Landlock is not supported by this kernel", e);
    } else if (e == EOPNOTSUPP) {
        explain_errno(why, why_len, "Landlock is disabled", e);
    } else {
        explain_errno(why, why_len, "landlock_create_ruleset", e);
    }
}

/* Checks that the Landlock ABI is at least 4, that a network ruleset can be created and that
 * seccomp exists; see sandbox.h. Any failure of the kernel calls (no Landlock, disabled at
 * boot, blocked by a seccomp filter) means "not available", never an error. */
int
cli_sandbox_probe(char *why, size_t why_len)
{
    long abi = -1;
    int fd = -1;
    int rc = -1;

    if (why == NULL || why_len == 0) {
        goto out;
    }
    why[0] = '\0';
    rc = 0;
    abi =
        syscall(SYS_landlock_create_ruleset, NULL, (size_t)0, SBX_LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0) {
        explain_version_error(why, why_len, errno);
        goto out;
    }
    if (abi < SBX_LANDLOCK_ABI_NET) {
        (void)snprintf(why, why_len, "kernel Landlock ABI %ld < %d", abi, SBX_LANDLOCK_ABI_NET);
        goto out;
    }
    fd = create_net_ruleset();
    if (fd < 0) {
        explain_errno(why, why_len, "cannot create a Landlock network ruleset", -fd);
        goto out;
    }
    if (SBX_HAVE_SECCOMP && prctl(PR_GET_SECCOMP, 0UL, 0UL, 0UL, 0UL) < 0) {
        explain_errno(why, why_len, "seccomp is not available", errno);
        goto out;
    }
    rc = 1;
out:
    if (fd >= 0) {
        (void)close(fd);
    }
    return rc;
}

/* Confines the calling process to TCP connect on proxy_port only and no TCP bind; see
 * sandbox.h. Order: ruleset and its one rule, no_new_privs (required by landlock_restrict_self
 * and seccomp without CAP_SYS_ADMIN, and wanted anyway: no set-user-ID escape), enforcement,
 * then the seccomp filter. */
int
cli_sandbox_apply(uint16_t proxy_port)
{
    struct sbx_net_port_attr rule;
    int fd = -1;
    int rc = -EINVAL;

    if (proxy_port == 0) {
        goto out; /* a rule for port 0 would allow binding ephemeral ports, never connects */
    }
    fd = create_net_ruleset();
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    rule.allowed_access = SBX_LANDLOCK_ACCESS_NET_CONNECT_TCP;
    rule.port = proxy_port;
    if (syscall(SYS_landlock_add_rule, fd, SBX_LANDLOCK_RULE_NET_PORT, &rule, 0U) != 0) {
        rc = -errno;
        goto out;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) != 0) {
        rc = -errno;
        goto out;
    }
    if (syscall(SYS_landlock_restrict_self, fd, 0U) != 0) {
        rc = -errno;
        goto out;
    }
    rc = install_bypass_filter();
out:
    if (fd >= 0) {
        (void)close(fd);
    }
    return rc;
}
