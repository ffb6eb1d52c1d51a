/* nonoproxy-run --sandbox: network confinement of the child (Linux, Landlock ABI >= 4).
 *
 * What it does: the confined process, and every process it starts, may open TCP connections
 * only to the proxy's port and may not bind any TCP port (connect() elsewhere and bind() fail
 * with EACCES). The rules hold across fork and execve and cannot be lifted by the child.
 * A seccomp filter closes the known ways around Landlock's TCP rules: TCP Fast Open sends
 * (MSG_FASTOPEN: EOPNOTSUPP), Multipath TCP sockets (EPROTONOSUPPORT), socket families other
 * than AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK, among them SMC and RDS, whose kernel-internal
 * TCP never meets Landlock, and IPPROTO_SMC (EACCES), io_uring (ENOSYS), and system calls of
 * another ABI (32-bit or x32 code is killed with SIGSYS).
 *
 * What it does not do (see docs/SECURITY.md):
 *   - Landlock rules name ports, not addresses: the child may connect to ANY host on the proxy's
 *     port (another local service, or a remote host that listens on that port number).
 *   - Only TCP is covered: UDP (DNS, QUIC, ...), SCTP and raw sockets (given CAP_NET_RAW), unix
 *     sockets (abstract or on the file system), inherited descriptors, files and other IPC are
 *     not restricted.
 *   - listen() on a socket that was never bound picks an ephemeral port without bind(), which
 *     Landlock does not see.
 *   - The seccomp part exists for x86_64 and little-endian aarch64 only.
 *   - Kernels without Landlock ABI 4 cannot do it: cli_sandbox_probe() says so, and
 *     cli_sandbox_apply() fails there instead of leaving the child unconfined.
 */
#ifndef NONOPROXY_CLI_SANDBOX_H
#define NONOPROXY_CLI_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

/** --sandbox auto|on|off: auto confines when cli_sandbox_probe() says it can. */
enum cli_sandbox_mode { CLI_SANDBOX_AUTO = 0, CLI_SANDBOX_ON, CLI_SANDBOX_OFF };

/**
 * Check, in the parent before fork, whether Landlock ABI >= 4 (TCP rules) is available: query
 * the ABI version, create (and close) a ruleset handling the network rights that
 * cli_sandbox_apply() uses, and check that seccomp exists.
 * \param why      receives one line (no newline) when Landlock cannot be used, e.g.
 *                 "kernel Landlock ABI 3 < 4" or "Landlock is disabled: Operation not
 *                 supported"; the empty string when it can.
 * \param why_len  size of why, including the terminating NUL.
 * \return 1 if available, 0 if not (*why says why), -1 on a bad argument (why NULL or
 *         why_len 0).
 * Uses strerror_r and snprintf: not for the child after fork.
 */
int cli_sandbox_probe(char *why, size_t why_len);

/**
 * Confine the calling process, in the child after fork and before exec, so that it and all
 * it runs may TCP-connect only to proxy_port (on any address) and may not bind TCP ports.
 * Sets PR_SET_NO_NEW_PRIVS, enforces the Landlock ruleset, then installs the seccomp filter.
 * Async-signal-safe: system calls only, no allocation, no stdio.
 * Confines the calling thread only: call it while the process has a single thread.
 * \return 0, or -errno: -EINVAL for proxy_port 0, else the errno of the failing step
 *         (-ENOSYS/-EOPNOTSUPP without Landlock, -E2BIG or -EINVAL without ABI 4). On failure
 *         the process may be partly confined or not at all: the caller must not exec the
 *         command then.
 */
int cli_sandbox_apply(uint16_t proxy_port);

#endif /* NONOPROXY_CLI_SANDBOX_H */
