/* nonoproxy-run --serve: export lines on stdout or in a 0600 file, then wait for a signal. */
#include "serve.h"

#include "childenv.h"
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG     "nonoproxy-run"
/* Longest export line: the proxy's variables are URLs and tokens of well under 1 KiB. */
#define LINE_CAP 4096

/* Writes the export lines of vars to fd, each built in a buffer that is wiped after use (it
 * holds the token). On failure prints why and returns false. */
static bool
write_vars(int fd, const struct nonoproxy_env_var *vars, size_t n, const char *where)
{
    char line[LINE_CAP];
    char ebuf[128];
    char shown[128];
    size_t len = 0;
    size_t i = 0;
    bool ok = true;

    for (i = 0; i < n && ok; i++) {
        len = cli_export_line(line, sizeof(line), vars[i].name, vars[i].value);
        if (len == 0) {
            cli_printable(shown, sizeof(shown), vars[i].name != NULL ? vars[i].name : "");
            (void)fprintf(stderr, PROG ": --serve: cannot export variable '%s'\n", shown);
            ok = false;
        } else if (!cli_write_all(fd, line, len)) {
            int e = errno;

            (void)fprintf(stderr, PROG ": --serve: cannot write to %s: %s\n", where,
                          strerror_r(e, ebuf, sizeof(ebuf)));
            ok = false;
        }
        explicit_bzero(line, sizeof(line));
    }
    return ok;
}

/* Writes both lists of the proxy's variables to fd. */
static bool
write_environment(int fd, const struct nonoproxy_proxy *p, const char *where)
{
    const struct nonoproxy_env_var *vars = NULL;
    size_t n = 0;

    if (nonoproxy_env_vars(p, &vars, &n) != NONOPROXY_OK || !write_vars(fd, vars, n, where)) {
        return false;
    }
    if (nonoproxy_credential_env_vars(p, &vars, &n) != NONOPROXY_OK ||
        !write_vars(fd, vars, n, where)) {
        return false;
    }
    return true;
}

/* Creates the --env-file: a new regular file of mode 0600, never through a symlink. Returns
 * its descriptor, or -1 with the message printed. */
static int
create_env_file(const char *path)
{
    struct stat st;
    char shown[256];
    char ebuf[128];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    int e = errno;

    cli_printable(shown, sizeof(shown), path);
    if (fd < 0) {
        if (e == EEXIST && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
            (void)fprintf(stderr, PROG ": --env-file %s: is a symbolic link (refused)\n", shown);
        } else if (e == EEXIST) {
            (void)fprintf(stderr, PROG ": --env-file %s: already exists (remove it first)\n",
                          shown);
        } else {
            (void)fprintf(stderr, PROG ": --env-file %s: %s\n", shown,
                          strerror_r(e, ebuf, sizeof(ebuf)));
        }
        return -1;
    }
    if (fchmod(fd, 0600) != 0) { /* exactly 0600, whatever the umask took away */
        e = errno;
        (void)fprintf(stderr, PROG ": --env-file %s: %s\n", shown,
                      strerror_r(e, ebuf, sizeof(ebuf)));
        (void)unlink(path);
        (void)close(fd);
        return -1;
    }
    return fd;
}

/* Empties and removes the --env-file at path if it is still the file fd refers to (not one
 * that replaced it), then closes fd. */
static void
remove_env_file(const char *path, int fd)
{
    struct stat mine;
    struct stat now;

    if (fd < 0) {
        return;
    }
    if (fstat(fd, &mine) == 0 && lstat(path, &now) == 0 && mine.st_dev == now.st_dev &&
        mine.st_ino == now.st_ino) {
        (void)ftruncate(fd, 0);
        (void)unlink(path);
    }
    (void)close(fd);
}

/* Closes stdout, so that a reader of the export lines sees end of file; fd 1 then refers to
 * /dev/null so that nothing else can take its number. */
static void
close_stdout(void)
{
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

    if (null >= 0) {
        (void)dup2(null, STDOUT_FILENO);
        (void)close(null);
    } else {
        (void)close(STDOUT_FILENO);
    }
}

/* Waits for a signal of stop_set (others, e.g. SIGCHLD, are ignored). */
static void
wait_stop(const sigset_t *stop_set)
{
    siginfo_t info;

    for (;;) {
        memset(&info, 0, sizeof(info));
        if (sigwaitinfo(stop_set, &info) < 0) {
            continue; /* EINTR */
        }
        if (info.si_signo == SIGINT || info.si_signo == SIGTERM || info.si_signo == SIGHUP) {
            return;
        }
    }
}

int
cli_serve(const struct cli_args *a, const struct nonoproxy_proxy *p, const sigset_t *stop_set)
{
    char shown[256];
    int fd = -1;
    bool ok = false;

    if (a->env_file != NULL) {
        cli_printable(shown, sizeof(shown), a->env_file);
        fd = create_env_file(a->env_file);
        ok = fd >= 0 && write_environment(fd, p, shown);
        if (!ok && fd >= 0) {
            remove_env_file(a->env_file, fd);
            fd = -1;
        }
    } else {
        (void)fflush(stdout);
        ok = write_environment(STDOUT_FILENO, p, "stdout");
        close_stdout();
    }
    if (!ok) {
        return CLI_EXIT_FAILURE;
    }
    if (!a->quiet) {
        (void)fprintf(stderr,
                      PROG ": serving on port %u (environment %s%s); stop with SIGINT or "
                           "SIGTERM\n",
                      (unsigned)nonoproxy_port(p), a->env_file != NULL ? "in " : "on stdout",
                      a->env_file != NULL ? shown : "");
    }
    wait_stop(stop_set);
    remove_env_file(a->env_file, fd);
    return 0;
}
