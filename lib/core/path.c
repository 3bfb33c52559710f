/* path.c: the small path helpers the pipelines share: bounded formatting, FITS extensions, base names, files and ids (see path_priv.h). */
#include <dirent.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "skystack/error.h"
#include "path_priv.h"
#include "skystack/log.h"

int sk_path_format(char *out, size_t outsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outsz)
        return sk_error(SK_EINPUT, "path too long: %.80s...", out);
    return SK_OK;
}

void sk_path_strip_fits_ext(const char *path, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s", path);
    static const char *const exts[] = {".fits.fz", ".fits.gz", ".fit.gz", ".fits", ".fit", ".fts", ".fz", ".gz"};
    size_t n = strlen(out);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcmp(out + n - e, exts[i]) == 0) {
            out[n - e] = '\0';
            return;
        }
    }
}

const char *sk_path_base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int sk_path_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int sk_path_is_number(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

void sk_path_remove_product(const char *path)
{
    char side[4300];
    snprintf(side, sizeof side, "%s.json", path);
    unlink(path);
    unlink(side);
}

int sk_path_remove_temporaries(const char *dir, const char *stem)
{
    size_t nstem = strlen(stem);
    DIR *d = opendir(dir);
    int removed = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *t = strstr(e->d_name, ".tmp-");
        if (strncmp(e->d_name, stem, nstem) != 0 || e->d_name[nstem] != '.' || !t || strlen(t) != 11)
            continue;
        char path[8400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) {
            removed++;
            sk_info("%s: removed, left by a worker that stopped", path);
        }
    }
    if (d)
        closedir(d);
    return removed;
}
