/* nonoproxy-run: the -c/--config FILE loader (one JSON object, SPEC §11) and its merge with the
 * command line. Pure but for cli_config_load(), which reads the file. */
#ifndef NONOPROXY_CLI_CONFIG_FILE_H
#define NONOPROXY_CLI_CONFIG_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "args.h"

/** Largest --config file read, in bytes. */
#define CLI_CONFIG_MAX_BYTES ((size_t)1 << 20)

/** Largest audit_capacity the loader accepts (the library may still refuse to allocate it). */
#define CLI_CONFIG_MAX_AUDIT_CAPACITY 4294967295ull

/**
 * The values of a --config file, in the form of the command line's: v.allow (allowed_hosts),
 * v.routes (routes, with buf NULL), v.bypass (external_proxy.bypass_hosts),
 * v.file_external_proxy (external_proxy.address), the scalars, timeouts in milliseconds. A key
 * that is absent or null leaves its field unset. Every string points into the parsed JSON tree
 * that f owns; release it with cli_config_free().
 */
struct cli_file_config {
    struct cli_args v; /**< only the fields above are used; action, command etc. stay zero */
    void *tree;        /**< the parsed document (a cJSON *); owned */
};

/** A --config text to parse. */
struct cli_config_text {
    const char *name; /**< the file's name, used only in messages */
    const char *text; /**< the JSON text: len bytes, not necessarily NUL-terminated */
    size_t len;
};

/**
 * Parse src->text (NUL bytes are an error) as a --config file into *out, checking every key
 * and type against SPEC §1/§11: an unknown or duplicate key, a wrong type, a number that is
 * not an integer in its range, an empty string, an inject_mode that is not header, url_path,
 * query_param or basic_auth (any case), a route without prefix or upstream, or an
 * external_proxy without address is an error. A key that is null counts as absent. The values
 * themselves (host syntax, URLs, ...) are left to the library, as for the command line.
 * On failure err receives one line without the program name, naming the file and the key path
 * and never a value, e.g. "cfg.json: routes[1].inject_mode: expected one of header, url_path,
 * query_param, basic_auth". Installs cJSON allocation hooks that wipe every block cJSON frees
 * (process-wide; set once). Always release *out with cli_config_free(), whatever the result.
 */
bool cli_config_parse(const struct cli_config_text *src, struct cli_file_config *out, char *err,
                      size_t err_len);

/**
 * Read the file at path (at most CLI_CONFIG_MAX_BYTES; any readable file, also a pipe such as
 * /dev/stdin) and parse it with cli_config_parse(). The copy of the text is wiped and freed
 * before returning. An unreadable file is an error naming it: "PATH: cannot read: <reason>".
 */
bool cli_config_load(const char *path, struct cli_file_config *out, char *err, size_t err_len);

/**
 * Merge the file's values f into the command line a: the lists (allow, bypass, routes) become
 * the file's items followed by the command line's (n_file says how many came from the file);
 * a scalar given on the command line stays, else it takes the file's value;
 * file_external_proxy, audit_capacity and require_auth come from the file only. a then points
 * into f: f must outlive a. On allocation failure returns false with err set ("out of
 * memory") and leaves a unchanged.
 */
bool cli_config_merge(struct cli_args *a, const struct cli_file_config *f, char *err,
                      size_t err_len);

/** Free what cli_config_parse() allocated (the tree: every block is wiped as it is freed) and
 * reset f. NULL-safe; f may be zeroed. */
void cli_config_free(struct cli_file_config *f);

#endif /* NONOPROXY_CLI_CONFIG_FILE_H */
