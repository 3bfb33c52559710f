/* share.c: locating share/skystack (see skystack/share.h). */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "skystack/error.h"
#include "skystack/share.h"

#ifndef SK_DATADIR
#define SK_DATADIR "/usr/local/share/skystack"
#endif
#ifndef SK_VERSION
#define SK_VERSION "0.0.0"
#endif

static char share_dir[PATH_MAX];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int is_dir_with_defaults(const char *dir)
{
    char p[PATH_MAX + 32];
    struct stat st;
    snprintf(p, sizeof p, "%s/defaults.json", dir);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void find_share(void)
{
    const char *env = getenv("SKYSTACK_SHARE");
    if (env && *env) {
        snprintf(share_dir, sizeof share_dir, "%s", env);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0'; /* exe is now the bin directory */
            const char *rel[] = {"/../share/skystack", "/../../share/skystack",
                                 "/../../../share/skystack"};
            for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
                char cand[PATH_MAX + 64];
                snprintf(cand, sizeof cand, "%s%s", exe, rel[i]);
                char real[PATH_MAX];
                if (realpath(cand, real) && is_dir_with_defaults(real)) {
                    snprintf(share_dir, sizeof share_dir, "%s", real);
                    return;
                }
            }
        }
    }
    snprintf(share_dir, sizeof share_dir, "%s", SK_DATADIR);
}

const char *sk_share_dir(void)
{
    pthread_once(&once, find_share);
    return share_dir;
}

int sk_share_path(const char *rel, char *out, size_t outsz)
{
    const char *dir = sk_share_dir();
    struct stat st;
    snprintf(out, outsz, "%s/%s", dir, rel);
    if (stat(out, &st) == 0)
        return SK_OK;
    /* Source tree: share/skystack/defaults.json but share/sql, share/examples. */
    char alt[PATH_MAX + 64];
    snprintf(alt, sizeof alt, "%s/../%s", dir, rel);
    if (stat(alt, &st) == 0) {
        snprintf(out, outsz, "%s", alt);
        return SK_OK;
    }
    return sk_error(SK_ENOTFOUND, "%s not found in %s or %s/.. (set SKYSTACK_SHARE)", rel, dir, dir);
}

const char *sk_version(void) { return SK_VERSION; }
