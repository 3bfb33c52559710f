/* cli.h: the one option parser shared by every program: the common options
 * (--help, --version, --config, --set, --dump-config, -v/-q, --threads)
 * plus each program's own, with friendly options that map to config keys. */
#ifndef SKYSTACK_CLI_H
#define SKYSTACK_CLI_H

#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A program option. Long names only, plus an optional one-letter alias. */
typedef struct sk_opt {
    const char *name;        /* "min-mjd" for --min-mjd */
    char short_name;         /* 0 for none */
    int has_arg;             /* 0 flag, 1 required argument */
    const char *arg_name;    /* "MJD" in the help text */
    const char *help;        /* one line */
    const char *config_key;  /* non-NULL: "--name V" means --set config_key=V
                                (flags set it to true) */
} sk_opt;

typedef struct sk_cli {
    const char *program;     /* "coadd" */
    const char *usage;       /* "coadd [OPTIONS] IMAGE..." */
    const char *summary;     /* one-sentence description for --help */
    sk_config *config;       /* effective configuration after parsing */
    int threads;             /* --threads N (0 = all cores) resolved to >= 1;
                                all cores when --threads is absent */
    int threads_given;       /* 1 when --threads was on the command line */
    int verbosity;           /* enum sk_log_level */
    char **args;             /* positional arguments (borrowed from argv) */
    int nargs;
} sk_cli;

/* Called for each program option without config_key; `arg` is NULL for
 * flags. Return SK_OK or an error (sk_error) to stop. */
typedef int (*sk_opt_handler)(sk_cli *cli, const sk_opt *opt, const char *arg, void *user);

/* Parse argv: program options (`opts`, terminated by a {NULL} entry, may be
 * NULL), the common ones, positional arguments (options and positionals may
 * mix; after "--" everything is positional; a lone "-" is positional).
 * Loads the configuration with --config, then applies --set and friendly
 * (config_key) options in command-line order, then calls `handler` for the
 * other program options in command-line order (so handlers see cli->config
 * and may change it), then prints the configuration for --dump-config.
 * --help (usage, summary, all options) and --version print to stdout as
 * soon as they are met; these three return the sentinel SK_CLI_DONE (the
 * caller exits 0). cli->config must be NULL on entry.
 * Bad usage: SK_EINPUT with a message naming the option. */
#define SK_CLI_DONE (-1)
int sk_cli_parse(sk_cli *cli, int argc, char **argv, const sk_opt *opts,
                 sk_opt_handler handler, void *user);

/* Print "program: message" for the current error (when status != 0) and
 * return the exit code to use: SK_CLI_DONE maps to 0. Frees the config. */
int sk_cli_finish(sk_cli *cli, int status);

/* Parse helpers for handlers: SK_EINPUT naming --option on failure. */
int sk_cli_double(const char *option, const char *arg, double *value);
int sk_cli_long(const char *option, const char *arg, long *value);

#ifdef __cplusplus
}
#endif
#endif
