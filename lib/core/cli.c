/* cli.c: the command-line parser shared by every program, on top of getopt_long (see skystack/cli.h). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "skystack/cli.h"
#include "skystack/error.h"
#include "skystack/log.h"
#include "skystack/share.h"

/* getopt_long values of the common options (program options use
 * OPT_PROGRAM + their index). */
enum {
    OPT_HELP = 'h',
    OPT_VERBOSE = 'v',
    OPT_QUIET = 'q',
    OPT_VERSION = 256,
    OPT_CONFIG,
    OPT_SET,
    OPT_DUMP,
    OPT_THREADS,
    OPT_PROGRAM = 1024
};

/* The common options, as shown by --help. */
static const sk_opt common_opts[] = {
    {"help", 'h', 0, NULL, "print this help and exit", NULL},
    {"version", 0, 0, NULL, "print the version and exit", NULL},
    {"config", 0, 1, "FILE",
     "user configuration file (default $SKYSTACK_CONFIG, else ~/.config/skystack/config.json)", NULL},
    {"set", 0, 1, "KEY=VALUE", "override one configuration key, e.g. coaddition.method=median (repeatable)", NULL},
    {"dump-config", 0, 0, NULL, "print the effective configuration and exit", NULL},
    {"verbose", 'v', 0, NULL, "more messages on stderr (repeatable)", NULL},
    {"quiet", 'q', 0, NULL, "fewer messages on stderr: -q warnings and errors, -qq errors only", NULL},
    {"threads", 0, 1, "N", "worker threads (0 = all cores, the default)", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};
static const int common_vals[] = {OPT_HELP, OPT_VERSION, OPT_CONFIG, OPT_SET,
                                  OPT_DUMP, OPT_VERBOSE, OPT_QUIET, OPT_THREADS};

int sk_cli_double(const char *option, const char *arg, double *value)
{
    char *end;
    errno = 0;
    double v = arg ? strtod(arg, &end) : 0.0;
    if (!arg || !*arg || *end || errno == ERANGE || !isfinite(v))
        return sk_error(SK_EINPUT, "%s: expected a number, got '%s'", option, arg ? arg : "");
    *value = v;
    return SK_OK;
}

int sk_cli_long(const char *option, const char *arg, long *value)
{
    char *end;
    errno = 0;
    long v = arg ? strtol(arg, &end, 10) : 0;
    if (!arg || !*arg || *end || errno == ERANGE)
        return sk_error(SK_EINPUT, "%s: expected an integer, got '%s'", option, arg ? arg : "");
    *value = v;
    return SK_OK;
}

static int count_opts(const sk_opt *opts)
{
    int n = 0;
    while (opts && opts[n].name)
        n++;
    return n;
}

static void help_line(FILE *f, const sk_opt *o)
{
    char left[128];
    if (o->short_name)
        snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, o->has_arg ? " " : "",
                 o->has_arg ? (o->arg_name ? o->arg_name : "ARG") : "");
    else
        snprintf(left, sizeof left, "    --%s%s%s", o->name, o->has_arg ? " " : "",
                 o->has_arg ? (o->arg_name ? o->arg_name : "ARG") : "");
    fprintf(f, "  %-28s ", left);
    if (strlen(left) > 28)
        fprintf(f, "\n  %-28s ", "");
    fputs(o->help ? o->help : "", f);
    if (o->config_key)
        fprintf(f, " [%s]", o->config_key);
    fputc('\n', f);
}

static void print_help(const sk_cli *cli, const sk_opt *opts)
{
    printf("Usage: %s\n", cli->usage ? cli->usage : cli->program);
    if (cli->summary)
        printf("%s\n", cli->summary);
    int n = count_opts(opts);
    if (n) {
        printf("\nOptions (a [key] is the configuration key the option sets):\n");
        for (int i = 0; i < n; i++)
            help_line(stdout, &opts[i]);
    }
    printf("\nCommon options:\n");
    for (int i = 0; common_opts[i].name; i++)
        help_line(stdout, &common_opts[i]);
    printf("\nA lone - is an argument (standard input); after -- everything is an argument.\n"
           "Exit status: 0 success, 1 bad usage or input, 2 nothing to do or not found,\n"
           "3 database or I/O failure. See %s(1) and skystack.conf(5).\n",
           cli->program);
    fflush(stdout);
}

/* The option named by getopt value `val`, for messages. */
static const char *name_of(int val, const sk_opt *opts, int nopts, char buf[4])
{
    if (val >= OPT_PROGRAM && val < OPT_PROGRAM + nopts)
        return opts[val - OPT_PROGRAM].name;
    for (size_t i = 0; i < sizeof common_vals / sizeof common_vals[0]; i++)
        if (common_vals[i] == val)
            return common_opts[i].name;
    for (int i = 0; i < nopts; i++)
        if (opts[i].short_name == val)
            return opts[i].name;
    buf[0] = (char)val;
    buf[1] = '\0';
    return buf;
}

/* 1 when `val` is the getopt value of a known option. */
static int is_known(int val, const sk_opt *opts, int nopts)
{
    if (val >= OPT_PROGRAM && val < OPT_PROGRAM + nopts)
        return 1;
    for (size_t i = 0; i < sizeof common_vals / sizeof common_vals[0]; i++)
        if (common_vals[i] == val)
            return 1;
    for (int i = 0; i < nopts; i++)
        if (opts[i].short_name && opts[i].short_name == val)
            return 1;
    return 0;
}

/* Reject option tables that clash with the common options or themselves. */
static int check_table(const sk_cli *cli, const sk_opt *opts, int nopts)
{
    for (int i = 0; i < nopts; i++) {
        for (int k = 0; common_opts[k].name; k++)
            if (strcmp(opts[i].name, common_opts[k].name) == 0 ||
                (opts[i].short_name && opts[i].short_name == common_opts[k].short_name))
                return sk_error(SK_EINPUT, "%s: option --%s clashes with the common --%s", cli->program,
                                opts[i].name, common_opts[k].name);
        for (int k = 0; k < i; k++)
            if (strcmp(opts[i].name, opts[k].name) == 0 ||
                (opts[i].short_name && opts[i].short_name == opts[k].short_name))
                return sk_error(SK_EINPUT, "%s: options --%s and --%s clash", cli->program,
                                opts[k].name, opts[i].name);
    }
    return SK_OK;
}

/* One configuration change or handler call, kept in command-line order. */
typedef struct action {
    int val;          /* OPT_SET or OPT_PROGRAM + index */
    const char *arg;  /* the option's argument (NULL for flags) */
} action;

static int parse_options(sk_cli *cli, int argc, char **argv, const sk_opt *opts, int nopts,
                         action *acts, int *nacts, const char **config_path, int *dump)
{
    struct option *longs = calloc((size_t)nopts + 9, sizeof *longs);
    char *shorts = malloc(2 * (size_t)nopts + 8);
    if (!longs || !shorts) {
        free(longs);
        free(shorts);
        return sk_error(SK_EIO, "%s: out of memory", cli->program);
    }
    int nl = 0;
    for (int i = 0; common_opts[i].name; i++)
        longs[nl++] = (struct option){common_opts[i].name, common_opts[i].has_arg ? required_argument : no_argument,
                                      NULL, common_vals[i]};
    for (int i = 0; i < nopts; i++)
        longs[nl++] = (struct option){opts[i].name, opts[i].has_arg ? required_argument : no_argument, NULL,
                                      OPT_PROGRAM + i};
    size_t ns = 0;
    shorts[ns++] = ':'; /* report a missing argument as ':' */
    shorts[ns++] = 'h';
    shorts[ns++] = 'v';
    shorts[ns++] = 'q';
    for (int i = 0; i < nopts; i++)
        if (opts[i].short_name) {
            shorts[ns++] = opts[i].short_name;
            if (opts[i].has_arg)
                shorts[ns++] = ':';
        }
    shorts[ns] = '\0';

    int rc = SK_OK, loud = 0, quiet = 0;
    char nb[4];
    opterr = 0;
    optind = 0; /* full reinitialisation of getopt, so that parsing can be repeated */
    for (;;) {
        int val = getopt_long(argc, argv, shorts, longs, NULL);
        if (val == -1)
            break;
        if (val == ':') {
            rc = sk_error(SK_EINPUT, "--%s: missing argument (see %s --help)",
                          name_of(optopt, opts, nopts, nb), cli->program);
            break;
        }
        if (val == '?') {
            if (is_known(optopt, opts, nopts))
                rc = sk_error(SK_EINPUT, "--%s: takes no argument (see %s --help)",
                              name_of(optopt, opts, nopts, nb), cli->program);
            else if (optopt)
                rc = sk_error(SK_EINPUT, "-%c: unknown option (see %s --help)", optopt, cli->program);
            else
                rc = sk_error(SK_EINPUT, "%s: unknown or ambiguous option (see %s --help)",
                              argv[optind - 1], cli->program);
            break;
        }
        switch (val) {
        case OPT_HELP:
            print_help(cli, opts);
            rc = SK_CLI_DONE;
            break;
        case OPT_VERSION:
            printf("%s (skystack) %s\n", cli->program, sk_version());
            fflush(stdout);
            rc = SK_CLI_DONE;
            break;
        case OPT_CONFIG:
            *config_path = optarg;
            break;
        case OPT_SET:
            acts[(*nacts)++] = (action){OPT_SET, optarg};
            break;
        case OPT_DUMP:
            *dump = 1;
            break;
        case OPT_VERBOSE:
            loud++;
            break;
        case OPT_QUIET:
            quiet++;
            break;
        case OPT_THREADS: {
            long n;
            rc = sk_cli_long("--threads", optarg, &n);
            if (rc == SK_OK && (n < 0 || n > INT_MAX))
                rc = sk_error(SK_EINPUT, "--threads: expected 0 (all cores) or a positive count, got '%s'",
                              optarg);
            if (rc == SK_OK) {
                cli->threads = (int)n;
                cli->threads_given = 1;
            }
            break;
        }
        default: {
            int idx = val;
            if (idx < OPT_PROGRAM) /* a short alias of a program option */
                for (int i = 0; i < nopts; i++)
                    if (opts[i].short_name == val)
                        idx = OPT_PROGRAM + i;
            acts[(*nacts)++] = (action){idx, opts[idx - OPT_PROGRAM].has_arg ? optarg : NULL};
        }
        }
        if (rc != SK_OK)
            break;
    }
    free(longs);
    free(shorts);
    if (rc == SK_OK) {
        int level = SK_LOG_INFO + loud - quiet;
        level = level < SK_LOG_QUIET ? SK_LOG_QUIET : level > SK_LOG_DEBUG ? SK_LOG_DEBUG : level;
        cli->verbosity = level;
        sk_log_set_level(level);
        cli->args = argv + optind;
        cli->nargs = argc - optind;
    }
    return rc;
}

int sk_cli_parse(sk_cli *cli, int argc, char **argv, const sk_opt *opts,
                 sk_opt_handler handler, void *user)
{
    if (!cli->program)
        cli->program = "skystack";
    sk_log_set_program(cli->program);
    cli->config = NULL;
    cli->threads = 0;
    cli->threads_given = 0;
    cli->verbosity = sk_log_level();
    cli->args = NULL;
    cli->nargs = 0;
    int nopts = count_opts(opts);
    int rc = check_table(cli, opts, nopts);
    if (rc)
        return rc;

    action *acts = calloc((size_t)argc + 1, sizeof *acts);
    if (!acts)
        return sk_error(SK_EIO, "%s: out of memory", cli->program);
    int nacts = 0, dump = 0;
    const char *config_path = NULL;
    rc = parse_options(cli, argc, argv, opts, nopts, acts, &nacts, &config_path, &dump);
    if (rc == SK_OK)
        rc = sk_config_load(config_path, NULL, 0, &cli->config);

    /* --set and friendly options, in command-line order. */
    for (int i = 0; rc == SK_OK && i < nacts; i++) {
        if (acts[i].val == OPT_SET) {
            rc = sk_config_set(cli->config, acts[i].arg);
            continue;
        }
        const sk_opt *o = &opts[acts[i].val - OPT_PROGRAM];
        if (!o->config_key)
            continue;
        char origin[160];
        if (o->has_arg)
            snprintf(origin, sizeof origin, "--%s %s", o->name, acts[i].arg);
        else
            snprintf(origin, sizeof origin, "--%s", o->name);
        rc = sk_config_set_text(cli->config, o->config_key, o->has_arg ? acts[i].arg : "true", origin);
    }
    /* Program options with handlers, in command-line order. */
    for (int i = 0; rc == SK_OK && i < nacts; i++) {
        if (acts[i].val == OPT_SET)
            continue;
        const sk_opt *o = &opts[acts[i].val - OPT_PROGRAM];
        if (o->config_key)
            continue;
        if (!handler)
            rc = sk_error(SK_EINPUT, "--%s: %s has no handler for this option", o->name, cli->program);
        else
            rc = handler(cli, o, acts[i].arg, user);
    }
    free(acts);
    if (rc != SK_OK)
        return rc;

    if (!cli->threads_given || cli->threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cli->threads = cores > 0 ? (int)cores : 1;
    }
    if (dump) {
        char *text = sk_config_dump(cli->config);
        if (!text)
            return sk_error(SK_EIO, "--dump-config: cannot serialise the configuration");
        fputs(text, stdout);
        fflush(stdout);
        free(text);
        return SK_CLI_DONE;
    }
    return SK_OK;
}

int sk_cli_finish(sk_cli *cli, int status)
{
    if (status != SK_OK && status != SK_CLI_DONE) {
        const char *msg = sk_errmsg();
        fprintf(stderr, "%s: %s\n", cli->program ? cli->program : sk_log_program(),
                msg && *msg ? msg : "failed");
    }
    sk_config_free(cli->config);
    cli->config = NULL;
    return status == SK_CLI_DONE ? 0 : status;
}
