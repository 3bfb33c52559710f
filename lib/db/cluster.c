/* cluster.c: the private PostgreSQL cluster of skydb: initdb, start, stop and state, run as an unprivileged user when invoked as root. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include "skystack/atomic.h"
#include "skystack/db.h"
#include "skystack/error.h"
#include "skystack/log.h"
#include "db_priv.h"
#include "db_internal.h"

#ifndef SK_PG_BINDIR
#define SK_PG_BINDIR ""
#endif

#define SK_SOCKET_NAME ".s.PGSQL.5432"
#define SK_UNIX_PATH_MAX 107

static int is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int sk_pg_program(const char *name, char *out, size_t outsz)
{
    const char *dirs[2] = {getenv("SK_PG_BINDIR"), SK_PG_BINDIR};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i] || !*dirs[i])
            continue;
        snprintf(out, outsz, "%s/%s", dirs[i], name);
        if (is_executable(out))
            return SK_OK;
    }
    const char *path = getenv("PATH");
    if (path) {
        char *copy = strdup(path);
        if (!copy)
            return sk_error(SK_EIO, "out of memory");
        char *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            snprintf(out, outsz, "%s/%s", *d ? d : ".", name);
            if (is_executable(out)) {
                free(copy);
                return SK_OK;
            }
        }
        free(copy);
    }
    return sk_error(SK_ENOTFOUND,
                    "%s: PostgreSQL server program not found in $SK_PG_BINDIR, %s or $PATH "
                    "(install postgresql and postgresql-15-q3c, or set SK_PG_BINDIR)",
                    name, *SK_PG_BINDIR ? SK_PG_BINDIR : "(no configured directory)");
}

/* The user that owns and runs the cluster: ourselves, or when we are root
 * the service user of db.service_user. */
typedef struct run_as {
    int drop;            /* 1: switch to uid/gid in the child */
    uid_t uid;
    gid_t gid;
    char user[64];
} run_as;

static int resolve_run_as(const sk_config *cfg, run_as *ra)
{
    memset(ra, 0, sizeof *ra);
    if (geteuid() != 0)
        return SK_OK;
    const char *user = cfg ? sk_config_string(cfg, "db.service_user", "postgres") : "postgres";
    if (!user || !*user)
        user = "postgres";
    struct passwd *pw = getpwnam(user);
    if (!pw)
        return sk_error(SK_EINPUT,
                        "db.service_user: no system user '%s'; PostgreSQL refuses to run as "
                        "root, so as root skydb runs the cluster as that user (create it, e.g. "
                        "by installing postgresql, or set db.service_user)",
                        user);
    if (pw->pw_uid == 0)
        return sk_error(SK_EINPUT, "db.service_user: '%s' is root; PostgreSQL refuses to run as root",
                        user);
    ra->drop = 1;
    ra->uid = pw->pw_uid;
    ra->gid = pw->pw_gid;
    snprintf(ra->user, sizeof ra->user, "%s", user);
    return SK_OK;
}

static int drop_privileges(const run_as *ra)
{
    if (!ra->drop)
        return 0;
    if (initgroups(ra->user, ra->gid) != 0 || setgid(ra->gid) != 0 || setuid(ra->uid) != 0)
        return -1;
    if (setuid(0) == 0) /* must be impossible now */
        return -1;
    return 0;
}

/* Run argv[0] (an absolute path) with argv, never through a shell, as the
 * cluster user, stdout discarded (stdout carries only products), stderr
 * kept. Returns SK_OK when it exits 0. */
static int run_program(const run_as *ra, char *const argv[])
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return sk_error(SK_EIO, "%s: cannot fork: %s", argv[0], strerror(errno));
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(sk_log_level() >= SK_LOG_DEBUG ? STDERR_FILENO : devnull, STDOUT_FILENO);
            if (devnull > STDERR_FILENO)
                close(devnull);
        }
        if (chdir("/") != 0 || drop_privileges(ra) != 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return sk_error(SK_EIO, "%s: waitpid: %s", argv[0], strerror(errno));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return SK_OK;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 126)
        return sk_error(SK_EIO, "%s: could not switch to user %s", argv[0], ra->user);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return sk_error(SK_EIO, "%s: could not execute it", argv[0]);
    if (WIFEXITED(status))
        return sk_error(SK_EIO, "%s failed (exit status %d; see its messages above)", argv[0],
                        WEXITSTATUS(status));
    return sk_error(SK_EIO, "%s was killed by signal %d", argv[0],
                    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* As the service user, find the first ancestor of dir (or dir itself when
 * it exists) that the user cannot traverse. SK_OK when all are fine. */
static int check_traversable(const run_as *ra, const char *dir)
{
    if (!ra->drop)
        return SK_OK;
    int fds[2];
    if (pipe(fds) != 0)
        return sk_error(SK_EIO, "pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return sk_error(SK_EIO, "cannot fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        if (drop_privileges(ra) != 0)
            _exit(126);
        char prefix[4096];
        size_t n = strlen(dir);
        for (size_t i = 1; i <= n; i++) {
            if (i < n && dir[i] != '/')
                continue;
            if (i >= sizeof prefix)
                break;
            memcpy(prefix, dir, i);
            prefix[i] = '\0';
            struct stat st;
            if (stat(prefix, &st) != 0) {
                if (errno == ENOENT)
                    break; /* will be created by root below a traversable parent */
                if (write(fds[1], prefix, strlen(prefix)) < 0)
                    _exit(2);
                _exit(1);
            }
            if (access(prefix, X_OK) != 0) {
                if (write(fds[1], prefix, strlen(prefix)) < 0)
                    _exit(2);
                _exit(1);
            }
        }
        _exit(0);
    }
    close(fds[1]);
    char bad[4096];
    ssize_t got = read(fds[0], bad, sizeof bad - 1);
    close(fds[0]);
    bad[got > 0 ? got : 0] = '\0';
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return SK_OK;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 126)
        return sk_error(SK_EIO, "could not switch to user %s", ra->user);
    return sk_error(SK_EINPUT,
                    "%s: the private cluster must be reachable by user %s, who runs PostgreSQL "
                    "because it refuses to run as root, but %s is not traversable for %s; "
                    "choose another place with SKYSTACK_DB_DIR (e.g. under /var/lib or /srv) "
                    "or allow traversal (chmod o+x %s)",
                    dir, ra->user, bad[0] ? bad : "a parent directory", ra->user,
                    bad[0] ? bad : "DIR");
}

static int check_socket_length(const char *dir)
{
    if (strlen(dir) + 1 + strlen(SK_SOCKET_NAME) > SK_UNIX_PATH_MAX)
        return sk_error(SK_EINPUT,
                        "%s: the socket %s/%s would be longer than the %d characters a Unix "
                        "socket path may have; choose a shorter SKYSTACK_DB_DIR",
                        dir, dir, SK_SOCKET_NAME, SK_UNIX_PATH_MAX);
    return SK_OK;
}

static char *private_conninfo(const char *dir, const char *dbname)
{
    size_t n = strlen(dir) * 2 + 128;
    char *s = malloc(n);
    if (!s)
        abort();
    size_t k = (size_t)snprintf(s, n, "host='");
    for (const char *p = dir; *p; p++) {
        if (*p == '\'' || *p == '\\')
            s[k++] = '\\';
        s[k++] = *p;
    }
    snprintf(s + k, n - k, "' dbname=%s user=skystack connect_timeout=10", dbname);
    return s;
}

int sk_cluster_state(const char *dir, int *state)
{
    *state = SK_CLUSTER_ABSENT;
    char path[4200];
    snprintf(path, sizeof path, "%s/PG_VERSION", dir);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return SK_OK;
        if (errno == EACCES)
            return sk_error(SK_EIO, "%s: cannot look into the cluster folder: %s", dir, strerror(errno));
        return sk_error(SK_EIO, "%s: %s", path, strerror(errno));
    }
    char *ci = private_conninfo(dir, "postgres");
    PGPing ping = PQping(ci);
    free(ci);
    *state = (ping == PQPING_OK || ping == PQPING_REJECT) ? SK_CLUSTER_RUNNING : SK_CLUSTER_STOPPED;
    return SK_OK;
}

/* Append the settings of a private cluster to its postgresql.conf. */
static int write_settings(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/postgresql.conf", dir);
    FILE *f = fopen(path, "a");
    if (!f)
        return sk_error(SK_EIO, "%s: %s", path, strerror(errno));
    fprintf(f, "\n# skystack private cluster: Unix socket in the cluster folder, no TCP.\n"
               "listen_addresses = ''\nunix_socket_directories = '");
    for (const char *p = dir; *p; p++) {
        if (*p == '\'')
            fputc('\'', f);
        fputc(*p, f);
    }
    fprintf(f, "'\nunix_socket_permissions = 0700\n");
    if (fclose(f) != 0)
        return sk_error(SK_EIO, "%s: %s", path, strerror(errno));
    return SK_OK;
}

int sk_cluster_init(const sk_config *cfg, const char *dir)
{
    int state;
    int st = sk_cluster_state(dir, &state);
    if (st)
        return st;
    if (state != SK_CLUSTER_ABSENT)
        return SK_OK;
    if ((st = check_socket_length(dir)))
        return st;
    run_as ra;
    if ((st = resolve_run_as(cfg, &ra)))
        return st;
    char initdb[4096];
    if ((st = sk_pg_program("initdb", initdb, sizeof initdb)))
        return st;

    if ((st = check_traversable(&ra, dir)))
        return st;
    /* Parents belong to us; the cluster folder itself to the cluster user. */
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if ((st = sk_mkdir_p(parent)))
            return sk_error_context("creating %s", parent);
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return sk_error(SK_EIO, "%s: cannot create the cluster folder: %s", dir, strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return sk_error(SK_EIO, "%s: not a directory", dir);
    /* An existing folder must be empty (initdb's own rule). */
    DIR *d = opendir(dir);
    if (!d)
        return sk_error(SK_EIO, "%s: %s", dir, strerror(errno));
    int nonempty = 0;
    struct dirent *e;
    while (!nonempty && (e = readdir(d)))
        nonempty = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    if (nonempty)
        return sk_error(SK_EINPUT,
                        "%s: exists, is not empty and holds no PostgreSQL cluster; "
                        "choose another SKYSTACK_DB_DIR or empty it",
                        dir);
    if (chmod(dir, 0700) != 0)
        return sk_error(SK_EIO, "%s: chmod: %s", dir, strerror(errno));
    if (ra.drop) {
        if (chown(dir, ra.uid, ra.gid) != 0)
            return sk_error(SK_EIO, "%s: cannot give it to user %s: %s", dir, ra.user, strerror(errno));
        if ((st = check_traversable(&ra, dir)))
            return st;
        sk_info("running as root: the cluster in %s belongs to and runs as user %s", dir, ra.user);
    }
    char dflag[4200];
    snprintf(dflag, sizeof dflag, "--pgdata=%s", dir);
    char *argv[] = {initdb,          dflag,           "--username=skystack", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C",
                    NULL};
    sk_info("creating the private cluster in %s", dir);
    if ((st = run_program(&ra, argv))) {
        sk_error_context("initdb of the private cluster in %s", dir);
        return st;
    }
    return write_settings(dir);
}

/* Create database "skystack" on a freshly started cluster when missing. */
static int ensure_database(const char *dir)
{
    char *ci = private_conninfo(dir, "postgres");
    PGconn *c = PQconnectdb(ci);
    free(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        int st = sk_error(SK_EIO, "cannot connect to the private cluster in %s: %s", dir,
                          PQerrorMessage(c));
        PQfinish(c);
        return st;
    }
    PGresult *r = PQexec(c, "SELECT 1 FROM pg_database WHERE datname = 'skystack'");
    int exists = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    int ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (ok && !exists) {
        r = PQexec(c, "CREATE DATABASE skystack");
        ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok && r) {
            /* another skydb created it at the same moment */
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            ok = state && strcmp(state, "42P04") == 0;
        }
        PQclear(r);
    }
    int st = SK_OK;
    if (!ok)
        st = sk_error(SK_EIO, "creating database skystack in %s: %s", dir, PQerrorMessage(c));
    PQfinish(c);
    return st;
}

/* Serialise skydb processes working on one cluster (two `skydb start` at
 * once must not both run initdb): an exclusive lock on DIR.lock. */
static int lock_cluster(const char *dir, int *fd_out)
{
    *fd_out = -1;
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (sk_mkdir_p(parent))
            return sk_error_context("creating %s", parent);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return sk_error(SK_EIO, "%s: %s", path, strerror(errno));
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int st = sk_error(SK_EIO, "%s: cannot lock: %s", path, strerror(errno));
            close(fd);
            return st;
        }
    }
    *fd_out = fd;
    return SK_OK;
}

static int start_locked(const sk_config *cfg, const char *dir);

int sk_cluster_start(const sk_config *cfg, const char *dir)
{
    int fd;
    int st = lock_cluster(dir, &fd);
    if (st)
        return st;
    st = start_locked(cfg, dir);
    close(fd);
    return st;
}

static int start_locked(const sk_config *cfg, const char *dir)
{
    int st = sk_cluster_init(cfg, dir);
    if (st)
        return st;
    int state;
    if ((st = sk_cluster_state(dir, &state)))
        return st;
    if (state != SK_CLUSTER_RUNNING) {
        run_as ra;
        if ((st = resolve_run_as(cfg, &ra)))
            return st;
        if ((st = check_traversable(&ra, dir)))
            return st;
        char pg_ctl[4096];
        if ((st = sk_pg_program("pg_ctl", pg_ctl, sizeof pg_ctl)))
            return st;
        char dflag[4200], lflag[4200];
        snprintf(dflag, sizeof dflag, "--pgdata=%s", dir);
        snprintf(lflag, sizeof lflag, "--log=%s/server.log", dir);
        char *argv[] = {pg_ctl, dflag, lflag, "--wait", "--timeout=60", "start", NULL};
        sk_info("starting the private cluster in %s", dir);
        if ((st = run_program(&ra, argv)))
            return sk_error_context("starting the private cluster in %s (its log: %s/server.log)",
                                    dir, dir);
    }
    return ensure_database(dir);
}

int sk_cluster_stop(const sk_config *cfg, const char *dir)
{
    int state;
    int st = sk_cluster_state(dir, &state);
    if (st)
        return st;
    if (state != SK_CLUSTER_RUNNING)
        return SK_OK;
    run_as ra;
    if ((st = resolve_run_as(cfg, &ra)))
        return st;
    char pg_ctl[4096];
    if ((st = sk_pg_program("pg_ctl", pg_ctl, sizeof pg_ctl)))
        return st;
    char dflag[4200];
    snprintf(dflag, sizeof dflag, "--pgdata=%s", dir);
    char *argv[] = {pg_ctl, dflag, "--mode=fast", "--wait", "--timeout=60", "stop", NULL};
    sk_info("stopping the private cluster in %s", dir);
    if ((st = run_program(&ra, argv)))
        return sk_error_context("stopping the private cluster in %s", dir);
    return SK_OK;
}
