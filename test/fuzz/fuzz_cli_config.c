/* libFuzzer target: nonoproxy-run's --config file (SPEC §1, §11): the input as the JSON text,
 * parsed by cli_config_parse, merged into an empty command line by cli_config_merge, freed.
 * Properties: a refusal always says why, in one line that names the file; nothing leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "config_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 16384

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cli_config_text src;
    struct cli_file_config f;
    struct cli_args a;
    char err[CLI_ERR_LEN];
    char *text;

    if (size > MAX_INPUT) {
        return -1;
    }
    text = malloc(size > 0 ? size : 1); /* exactly the input: not NUL-terminated */
    if (text == NULL) {
        abort();
    }
    if (size > 0) {
        memcpy(text, data, size);
    }
    src.name = "fuzz.json";
    src.text = text;
    src.len = size;
    memset(&f, 0, sizeof(f));
    err[0] = '\0';
    if (cli_config_parse(&src, &f, err, sizeof(err))) {
        memset(&a, 0, sizeof(a));
        if (!cli_config_merge(&a, &f, err, sizeof(err))) {
            abort(); /* only on out of memory */
        }
        cli_args_free(&a);
    } else if (strncmp(err, "fuzz.json", 9) != 0 || strchr(err, '\n') != NULL) {
        abort();
    }
    cli_config_free(&f);
    free(text);
    return 0;
}
