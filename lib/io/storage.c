/* storage.c: the data root, the relative layout of products in it, safe resolution of stored paths, and MJD/ISO dates (see skystack/storage.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "skystack/error.h"
#include "skystack/storage.h"

#define MJD_UNIX_EPOCH 40587.0

static int absolutise(const char *in, char *out, size_t outsz)
{
    size_t n;
    if (in[0] == '/') {
        n = (size_t)snprintf(out, outsz, "%s", in);
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd))
            return sk_error(SK_EIO, "cannot resolve the current directory: %s", strerror(errno));
        n = (size_t)snprintf(out, outsz, "%s/%s", cwd, in);
    }
    if (n >= outsz)
        return sk_error(SK_EINPUT, "%s: path too long", in);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    return SK_OK;
}

int sk_storage_root(const sk_config *cfg, char *out, size_t outsz)
{
    const char *env = getenv("SKYSTACK_DATA");
    if (env && *env)
        return absolutise(env, out, outsz);
    const char *key = cfg ? sk_config_string(cfg, "storage.root", NULL) : NULL;
    if (key && *key)
        return absolutise(key, out, outsz);
    const char *home = getenv("HOME");
    if (!home || !*home)
        return sk_error(SK_EINPUT, "HOME is not set: set SKYSTACK_DATA or storage.root");
    char def[4096];
    if ((size_t)snprintf(def, sizeof def, "%s/.local/share/skystack/data", home) >= sizeof def)
        return sk_error(SK_EINPUT, "HOME: path too long");
    return absolutise(def, out, outsz);
}

int sk_storage_resolve(const char *root, const char *relpath, char *out, size_t outsz)
{
    if (!relpath || !*relpath || relpath[0] == '/')
        return sk_error(SK_EIO, "stored path '%s' is not relative to the data root: refused",
                        relpath ? relpath : "");
    const char *c = relpath;
    while (*c) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return sk_error(SK_EIO, "stored path '%s' could leave the data root: refused", relpath);
        c += n;
        if (*c == '/')
            c++;
    }
    if (relpath[strlen(relpath) - 1] == '/')
        return sk_error(SK_EIO, "stored path '%s' names a directory: refused", relpath);
    if ((size_t)snprintf(out, outsz, "%s/%s", root, relpath) >= outsz)
        return sk_error(SK_EINPUT, "%s/%s: path too long", root, relpath);
    return SK_OK;
}

void sk_storage_component(const char *in, char *out, size_t outsz)
{
    if (outsz == 0)
        return;
    if (!in)
        in = "none";
    size_t o = 0;
    for (const char *c = in; *c && o + 1 < outsz; c++) {
        unsigned char u = (unsigned char)*c;
        out[o++] = (isalnum(u) || u == '.' || u == '_' || u == '+' || u == '-') ? (char)u : '_';
    }
    out[o] = '\0';
    if (o == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
        snprintf(out, outsz, "_");
}

int sk_mjd_to_iso(double mjd, char *out, size_t outsz)
{
    if (!isfinite(mjd))
        return sk_error(SK_EINPUT, "MJD %g is not a finite number", mjd);
    double seconds = (mjd - MJD_UNIX_EPOCH) * 86400.0;
    double whole = floor(seconds);
    long ms = lround((seconds - whole) * 1000.0);
    if (ms == 1000) {
        whole += 1;
        ms = 0;
    }
    time_t t = (time_t)whole;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return sk_error(SK_EINPUT, "MJD %g is outside the calendar", mjd);
    snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return SK_OK;
}

/* Days from 1970-01-01 to the civil date (proleptic Gregorian). */
static long days_from_civil(long y, int m, int d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int sk_iso_to_mjd(const char *iso, double *mjd)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, consumed = 0;
    double s = 0;
    if (!iso || sscanf(iso, "%4d-%2d-%2d%n", &y, &mo, &d, &consumed) != 3 || consumed != 10)
        return sk_error(SK_EINPUT, "'%s' is not an ISO date (YYYY-MM-DD[THH:MM[:SS]])", iso ? iso : "");
    const char *rest = iso + consumed;
    if (*rest == 'T' || *rest == ' ') {
        int n = 0;
        if (sscanf(rest + 1, "%2d:%2d%n", &h, &mi, &n) != 2)
            return sk_error(SK_EINPUT, "'%s' is not an ISO date (YYYY-MM-DD[THH:MM[:SS]])", iso);
        rest += 1 + n;
        if (*rest == ':') {
            char *end;
            s = strtod(rest + 1, &end);
            if (end == rest + 1)
                return sk_error(SK_EINPUT, "'%s' is not an ISO date (YYYY-MM-DD[THH:MM[:SS]])", iso);
            rest = end;
        }
    }
    if (*rest == 'Z')
        rest++;
    if (*rest != '\0')
        return sk_error(SK_EINPUT, "'%s' is not an ISO date (YYYY-MM-DD[THH:MM[:SS]])", iso);
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) || h < 0 ||
        h > 23 || mi < 0 || mi > 59 || s < 0 || s >= 61)
        return sk_error(SK_EINPUT, "'%s' is not a valid date and time", iso);
    *mjd = MJD_UNIX_EPOCH + (double)days_from_civil(y, mo, d) + (h * 3600.0 + mi * 60.0 + s) / 86400.0;
    return SK_OK;
}

int sk_storage_dir(const char *instrument, double mjd, const char *section, const char *filter,
                   const char *type, const char *prov_id, char *out, size_t outsz)
{
    char iso[40];
    int st = sk_mjd_to_iso(mjd, iso, sizeof iso);
    if (st)
        return st;
    iso[10] = '\0';
    char inst[128], sec[128], filt[128], typ[64], prov[SK_STORAGE_PROV_PREFIX + 1];
    sk_storage_component(instrument, inst, sizeof inst);
    sk_storage_component(section, sec, sizeof sec);
    sk_storage_component(filter, filt, sizeof filt);
    sk_storage_component(type, typ, sizeof typ);
    sk_storage_component(prov_id, prov, sizeof prov);
    if ((size_t)snprintf(out, outsz, "%s/%s/%s/%s/%s/%s", inst, iso, sec, filt, typ, prov) >= outsz)
        return sk_error(SK_EINPUT, "product directory too long");
    return SK_OK;
}
