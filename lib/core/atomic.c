/* atomic.c: temporary file + fsync + rename + directory fsync (see skystack/atomic.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "skystack/atomic.h"
#include "skystack/error.h"

static char *dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return NULL;
    char *d = strdup(dirname(copy));
    free(copy);
    return d;
}

/* A path that exists and is not a regular file (a device such as
 * /dev/null or /dev/stdout, a FIFO): written straight through, since a
 * rename would replace the device or pipe with a file; a directory or
 * socket is refused. Returns SK_OK with a->fp set when it applies, -1
 * when the path is new or a regular file, else the error status. */
static int open_stream(const char *path, sk_atomic *a, int keep_open)
{
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode))
        return -1;
    if (!keep_open || !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)))
        return sk_error(SK_EIO, "%s: exists and is not a regular file", path);
    a->fp = fopen(path, "wb");
    if (!a->fp)
        return sk_error(SK_EIO, "%s: cannot open for writing: %s", path, strerror(errno));
    return SK_OK;
}

static int make_temp(const char *path, sk_atomic **out, int keep_open)
{
    *out = NULL;
    sk_atomic *a = calloc(1, sizeof *a);
    if (!a)
        return sk_error(SK_EIO, "%s: out of memory", path);
    int st = open_stream(path, a, keep_open);
    if (st != -1) {
        a->final_path = st == SK_OK ? strdup(path) : NULL;
        if (st == SK_OK && !a->final_path)
            st = sk_error(SK_EIO, "%s: out of memory", path);
        if (st != SK_OK) {
            sk_atomic_abort(a);
            return st;
        }
        *out = a;
        return SK_OK;
    }
    size_t n = strlen(path) + 32;
    a->final_path = strdup(path);
    a->tmp_path = malloc(n);
    if (!a->final_path || !a->tmp_path) {
        sk_atomic_abort(a);
        return sk_error(SK_EIO, "%s: out of memory", path);
    }
    /* The temporary keeps the product's suffix out of its name so that no
     * glob on *.fits ever picks up a half-written file. */
    snprintf(a->tmp_path, n, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(a->tmp_path);
    if (fd < 0) {
        int e = errno;
        free(a->tmp_path);
        a->tmp_path = NULL;
        sk_atomic_abort(a);
        return sk_error(SK_EIO, "%s: cannot create a temporary file in its directory: %s",
                        path, strerror(e));
    }
    /* mkstemp gives 0600; products get the usual 0666 & ~umask. */
    mode_t um = umask(0);
    umask(um);
    fchmod(fd, 0666 & ~um);
    if (keep_open) {
        a->fp = fdopen(fd, "wb");
        if (!a->fp) {
            close(fd);
            sk_atomic_abort(a);
            return sk_error(SK_EIO, "%s: cannot open temporary file", path);
        }
    } else {
        close(fd);
    }
    *out = a;
    return SK_OK;
}

int sk_atomic_open(const char *path, sk_atomic **out) { return make_temp(path, out, 1); }
int sk_atomic_reserve(const char *path, sk_atomic **out) { return make_temp(path, out, 0); }

static void free_atomic(sk_atomic *a)
{
    free(a->final_path);
    free(a->tmp_path);
    free(a);
}

void sk_atomic_abort(sk_atomic *a)
{
    if (!a)
        return;
    if (a->fp)
        fclose(a->fp);
    if (a->tmp_path)
        unlink(a->tmp_path);
    free_atomic(a);
}

/* A stream opened by open_stream: flushed and closed, nothing renamed. */
static int commit_stream(sk_atomic *a)
{
    int rc = SK_OK;
    if (fflush(a->fp) != 0 || ferror(a->fp))
        rc = sk_error(SK_EIO, "%s: write failed: %s", a->final_path, strerror(errno));
    if (fclose(a->fp) != 0 && rc == SK_OK)
        rc = sk_error(SK_EIO, "%s: write failed: %s", a->final_path, strerror(errno));
    free_atomic(a);
    return rc;
}

int sk_atomic_commit(sk_atomic *a)
{
    if (!a->tmp_path)
        return commit_stream(a);
    int rc = SK_OK;
    if (a->fp) {
        if (fflush(a->fp) != 0 || fsync(fileno(a->fp)) != 0 || ferror(a->fp))
            rc = sk_error(SK_EIO, "%s: write failed: %s", a->final_path, strerror(errno));
        if (fclose(a->fp) != 0 && rc == SK_OK)
            rc = sk_error(SK_EIO, "%s: write failed: %s", a->final_path, strerror(errno));
        a->fp = NULL;
    } else {
        int fd = open(a->tmp_path, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0)
            rc = sk_error(SK_EIO, "%s: cannot sync: %s", a->final_path, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if (rc == SK_OK && rename(a->tmp_path, a->final_path) != 0)
        rc = sk_error(SK_EIO, "%s: cannot rename into place: %s", a->final_path, strerror(errno));
    if (rc != SK_OK) {
        unlink(a->tmp_path);
        free_atomic(a);
        return rc;
    }
    char *dir = dir_of(a->final_path);
    if (dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free_atomic(a);
    return SK_OK;
}

int sk_atomic_write_file(const char *path, const void *data, size_t len)
{
    sk_atomic *a;
    int rc = sk_atomic_open(path, &a);
    if (rc)
        return rc;
    if (len && fwrite(data, 1, len, a->fp) != len) {
        int e = errno;
        sk_atomic_abort(a);
        return sk_error(SK_EIO, "%s: write failed: %s", path, strerror(e));
    }
    return sk_atomic_commit(a);
}

int sk_mkdir_p(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return sk_error(SK_EIO, "%s: out of memory", path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            int rc = sk_error(SK_EIO, "%s: cannot create directory %s: %s", path, p, strerror(e));
            free(p);
            return rc;
        }
        *s = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
        int e = errno;
        free(p);
        return sk_error(SK_EIO, "%s: cannot create directory: %s", path, strerror(e));
    }
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        free(p);
        return sk_error(SK_EIO, "%s: exists and is not a directory", path);
    }
    free(p);
    return SK_OK;
}
