/* test_cli.c: the shared option parser on synthetic argv arrays: common
 * options, friendly options in command-line order with --set, positionals,
 * "-" and "--", usage errors naming the option, --help/--version/--dump-config
 * output. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "skystack/skystack.h"
#include "../tap.h"

static const sk_opt opts[] = {
    {"method", 'm', 1, "METHOD", "how pixels are combined", "coaddition.method"},
    {"mesh", 0, 1, "PX", "background mesh size", "extraction.background.mesh_px"},
    {"background-match", 0, 0, NULL, "match backgrounds", "coaddition.background_match"},
    {"ra", 0, 1, "DEG", "right ascension of the centre", NULL},
    {"dry-run", 'n', 0, NULL, "say what would be done", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

/* What the handler saw. */
typedef struct seen {
    double ra_deg;
    int dry_run;
    int calls;
    int config_loaded;     /* cli->config was there at every call */
    char method_at_call[32];
} seen;

static int handler(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    seen *s = user;
    s->calls++;
    s->config_loaded = cli->config != NULL;
    if (cli->config)
        snprintf(s->method_at_call, sizeof s->method_at_call, "%s",
                 sk_config_string(cli->config, "coaddition.method", ""));
    if (strcmp(opt->name, "ra") == 0)
        return sk_cli_double("--ra", arg, &s->ra_deg);
    if (strcmp(opt->name, "dry-run") == 0)
        s->dry_run = arg == NULL ? 1 : -1;
    return SK_OK;
}

/* Parse a NULL-terminated list of arguments (argv[0] = "coadd"). */
static int parse(sk_cli *cli, seen *s, char **args)
{
    static char *argv[64];
    int argc = 0;
    argv[argc++] = "coadd";
    while (args[argc - 1])
        argv[argc] = args[argc - 1], argc++;
    argv[argc] = NULL;
    memset(cli, 0, sizeof *cli);
    cli->program = "coadd";
    cli->usage = "coadd [OPTIONS] IMAGE...";
    cli->summary = "Combine images into a deep coadd.";
    memset(s, 0, sizeof *s);
    return sk_cli_parse(cli, argc, argv, opts, handler, s);
}

/* Parse with stdout (fd 1) or stderr (fd 2) captured into a string. */
static char captured[65536];
static int parse_captured(sk_cli *cli, seen *s, char **args, int fd, int finish)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/capture-%d.txt", tap_tmpdir(), fd);
    fflush(stdout);
    fflush(stderr);
    int saved = dup(fd);
    int out = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    dup2(out, fd);
    close(out);
    int rc = parse(cli, s, args);
    if (finish)
        rc = sk_cli_finish(cli, rc);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, fd);
    close(saved);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(captured, 1, sizeof captured - 1, f) : 0;
    captured[n] = '\0';
    if (f)
        fclose(f);
    return rc;
}

#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})

int main(void)
{
    tap_plan(68);
    setenv("SKYSTACK_SHARE", tap_src("share/skystack"), 0);
    setenv("HOME", tap_tmpdir(), 1);
    unsetenv("SKYSTACK_CONFIG");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    sk_cli cli;
    seen s;

    /* Positionals, "-", "--", program options, handlers. */
    int rc = parse(&cli, &s, ARGS("a.fits", "--method", "median", "-", "--ra", "150.5", "-n", "--",
                                  "--weird", "b.fits"));
    ok(rc == SK_OK, "a mixed command line parses");
    is_int(cli.nargs, 4, "four positional arguments");
    if (cli.nargs == 4) {
        is_str(cli.args[0], "a.fits", "first positional");
        is_str(cli.args[1], "-", "a lone - is positional");
        is_str(cli.args[2], "--weird", "after -- options are positional");
        is_str(cli.args[3], "b.fits", "last positional");
    }
    is_str(sk_config_string(cli.config, "coaddition.method", NULL), "median", "--method sets coaddition.method");
    is_near(s.ra_deg, 150.5, 0, "--ra handled with its value");
    is_int(s.dry_run, 1, "-n is the short alias of --dry-run, a flag without argument");
    is_int(s.calls, 2, "the handler is called once per handled option");
    ok(s.config_loaded, "handlers run with the configuration loaded");
    is_str(s.method_at_call, "median", "and after the config-key options were applied");
    is_int(cli.threads, cores, "no --threads: all cores");
    is_int(cli.threads_given, 0, "threads_given is 0 without --threads");
    is_int(cli.verbosity, SK_LOG_INFO, "default verbosity is info");
    is_int(sk_cli_finish(&cli, rc), 0, "finish of a success returns 0");
    ok(cli.config == NULL, "finish frees the configuration");

    /* --set and friendly options apply in command-line order. */
    rc = parse(&cli, &s, ARGS("--set", "coaddition.method=zogy", "--method", "median"));
    is_str(sk_config_string(cli.config, "coaddition.method", NULL), "median", "--set then --method: --method wins");
    sk_cli_finish(&cli, rc);
    rc = parse(&cli, &s, ARGS("-m", "median", "--set=coaddition.method=zogy"));
    is_str(sk_config_string(cli.config, "coaddition.method", NULL), "zogy", "-m then --set: --set wins");
    sk_cli_finish(&cli, rc);
    rc = parse(&cli, &s, ARGS("--background-match", "--mesh", "64"));
    ok(rc == SK_OK && sk_config_bool(cli.config, "coaddition.background_match", 0) == 1,
       "a friendly flag sets its key to true");
    is_int(sk_config_long(cli.config, "extraction.background.mesh_px", 0), 64, "a friendly integer option");
    sk_cli_finish(&cli, rc);

    /* --config FILE, overridden by --set. */
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/user.json", tap_tmpdir());
    FILE *f = fopen(cfg, "w");
    fputs("{\"coaddition\": {\"method\": \"mean\", \"kernel\": \"bilinear\"}}", f);
    fclose(f);
    rc = parse(&cli, &s, ARGS("--config", cfg, "--set", "coaddition.kernel=nearest"));
    ok(rc == SK_OK, "--config FILE loads");
    is_str(sk_config_string(cli.config, "coaddition.method", NULL), "mean", "the file's value applies");
    is_str(sk_config_string(cli.config, "coaddition.kernel", NULL), "nearest", "--set beats the file");
    is_str(cli.config ? cli.config->user_path : NULL, cfg, "the file is recorded");
    sk_cli_finish(&cli, rc);

    /* Threads and verbosity. */
    rc = parse(&cli, &s, ARGS("--threads", "3"));
    ok(rc == SK_OK && cli.threads == 3 && cli.threads_given == 1, "--threads 3");
    sk_cli_finish(&cli, rc);
    rc = parse(&cli, &s, ARGS("--threads=0"));
    ok(rc == SK_OK && cli.threads == cores && cli.threads_given == 1, "--threads 0 means all cores");
    sk_cli_finish(&cli, rc);
    rc = parse(&cli, &s, ARGS("-v", "-v"));
    ok(cli.verbosity == SK_LOG_DEBUG && sk_log_level() == SK_LOG_DEBUG, "-v -v: debug");
    sk_cli_finish(&cli, rc);
    rc = parse(&cli, &s, ARGS("-q"));
    ok(cli.verbosity == SK_LOG_WARN && sk_log_level() == SK_LOG_WARN, "-q: warnings");
    sk_cli_finish(&cli, rc);
    rc = parse(&cli, &s, ARGS("-qq"));
    ok(cli.verbosity == SK_LOG_QUIET && sk_log_level() == SK_LOG_QUIET, "-qq: errors only");
    sk_cli_finish(&cli, rc);
    rc = parse(&cli, &s, ARGS("-q", "--verbose"));
    ok(cli.verbosity == SK_LOG_INFO, "-q --verbose: back to info");
    sk_cli_finish(&cli, rc);

    /* Usage errors name the option. */
    struct {
        char **args;
        const char *named;
        const char *what;
    } bad[] = {
        {ARGS("--bogus"), "--bogus", "unknown long option"},
        {ARGS("-x"), "-x", "unknown short option"},
        {ARGS("a.fits", "--method"), "--method", "missing argument"},
        {ARGS("-m"), "--method", "missing argument of a short option"},
        {ARGS("--threads", "many"), "--threads", "non-numeric --threads"},
        {ARGS("--threads", "-1"), "--threads", "negative --threads"},
        {ARGS("--dry-run=1"), "--dry-run", "argument given to a flag"},
        {ARGS("--help=1"), "--help", "argument given to --help"},
        {ARGS("--ra", "east"), "--ra", "handler rejects a bad number"},
        {ARGS("--mesh", "big"), "--mesh", "friendly option of the wrong type"},
        {ARGS("--set", "coaddition.metod=zogy"), "coaddition.metod", "unknown key in --set"},
        {ARGS("--set", "nokey"), "--set", "--set without ="},
        {ARGS("--config", "/nonexistent/c.json"), "/nonexistent/c.json", "missing --config file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = parse(&cli, &s, bad[i].args);
        int want = strstr(bad[i].what, "--config") ? SK_ENOTFOUND : SK_EINPUT;
        ok(rc == want && strstr(sk_errmsg(), bad[i].named) != NULL, "%s: rejected naming %s", bad[i].what,
           bad[i].named);
        if (rc != want || !strstr(sk_errmsg(), bad[i].named))
            tap_diag("status %d, message \"%s\"", rc, sk_errmsg());
        sk_cli_finish(&cli, SK_OK);
    }

    /* An option table that clashes with the common options. */
    static const sk_opt clash[] = {{"threads", 0, 1, "N", "x", NULL}, {NULL, 0, 0, NULL, NULL, NULL}};
    char *argv1[] = {"prog", NULL};
    sk_cli c2 = {.program = "prog"};
    ok(sk_cli_parse(&c2, 1, argv1, clash, NULL, NULL) == SK_EINPUT && strstr(sk_errmsg(), "--threads"),
       "a program option clashing with a common one is refused");
    sk_cli_finish(&c2, SK_OK);

    /* --help: usage, summary, program and common options, on stdout. */
    rc = parse_captured(&cli, &s, ARGS("--method", "x", "--help", "--bogus"), 1, 0);
    is_int(rc, SK_CLI_DONE, "--help returns SK_CLI_DONE (even before a later bad option)");
    ok(strstr(captured, "Usage: coadd [OPTIONS] IMAGE...") != NULL, "help shows the usage");
    ok(strstr(captured, "Combine images into a deep coadd.") != NULL, "help shows the summary");
    ok(strstr(captured, "-m, --method METHOD") && strstr(captured, "how pixels are combined") &&
           strstr(captured, "[coaddition.method]"),
       "help shows a program option, its help and its config key");
    ok(strstr(captured, "--dry-run") && strstr(captured, "--ra DEG"), "help shows the other program options");
    const char *common[] = {"--help", "--version", "--config FILE", "--set KEY=VALUE", "--dump-config",
                            "-v, --verbose", "-q, --quiet", "--threads N"};
    int all = 1;
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        if (!strstr(captured, common[i])) {
            all = 0;
            tap_diag("help lacks %s", common[i]);
        }
    ok(all, "help shows every common option");
    is_int(sk_cli_finish(&cli, rc), 0, "finish maps SK_CLI_DONE to exit 0");

    /* --version. */
    rc = parse_captured(&cli, &s, ARGS("--version"), 1, 0);
    char want[128];
    snprintf(want, sizeof want, "coadd (skystack) %s\n", sk_version());
    ok(rc == SK_CLI_DONE, "--version returns SK_CLI_DONE");
    is_str(captured, want, "--version prints the program and version");
    sk_cli_finish(&cli, rc);

    /* --dump-config: the effective configuration after every override. */
    rc = parse_captured(&cli, &s, ARGS("--config", cfg, "--set", "coaddition.method=zogy", "--mesh", "32",
                                       "--dump-config"),
                        1, 0);
    ok(rc == SK_CLI_DONE, "--dump-config returns SK_CLI_DONE");
    json_error_t jerr;
    json_t *dumped = json_loads(captured, 0, &jerr);
    ok(dumped != NULL, "--dump-config prints valid JSON");
    ok(dumped && cli.config && json_equal(dumped, cli.config->root), "equal to the effective configuration");
    is_str(json_string_value(json_object_get(json_object_get(dumped, "coaddition"), "method")), "zogy",
           "with --set applied");
    is_str(json_string_value(json_object_get(json_object_get(dumped, "coaddition"), "kernel")), "bilinear",
           "with the file applied");
    is_int(json_integer_value(json_object_get(json_object_get(json_object_get(dumped, "extraction"),
                                                              "background"), "mesh_px")),
           32, "with the friendly option applied");
    json_decref(dumped);
    sk_cli_finish(&cli, rc);

    /* sk_cli_finish prints "program: message" for an error. */
    rc = parse_captured(&cli, &s, ARGS("--bogus"), 2, 1);
    is_int(rc, SK_EINPUT, "finish returns the error's exit code");
    ok(strncmp(captured, "coadd: ", 7) == 0 && strstr(captured, "--bogus") && strchr(captured, '\n'),
       "finish prints \"program: message\" on stderr");
    if (strncmp(captured, "coadd: ", 7) != 0)
        tap_diag("stderr was \"%s\"", captured);

    /* Number helpers. */
    double d;
    long l;
    ok(sk_cli_double("--x", "1e-3", &d) == SK_OK && d == 1e-3, "sk_cli_double parses 1e-3");
    ok(sk_cli_double("--x", "1.5abc", &d) == SK_EINPUT && strstr(sk_errmsg(), "--x"), "trailing junk rejected");
    ok(sk_cli_double("--x", "nan", &d) == SK_EINPUT, "nan rejected");
    ok(sk_cli_long("--n", "-42", &l) == SK_OK && l == -42, "sk_cli_long parses -42");
    ok(sk_cli_long("--n", "4.2", &l) == SK_EINPUT, "a real is not an integer");
    ok(sk_cli_long("--n", "", &l) == SK_EINPUT, "empty is not an integer");
    return tap_done();
}
