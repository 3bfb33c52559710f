/* arglist.c: lists of names for the programs: a growable list of strings, arguments with "-" for stdin, and comma lists of one entry per input (see skystack/arglist.h). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/arglist.h"
#include "skystack/error.h"

int sk_strlist_add(sk_strlist *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return sk_error(SK_EIO, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s)))
        return sk_error(SK_EIO, "out of memory");
    l->n++;
    return SK_OK;
}

void sk_strlist_free(sk_strlist *l)
{
    for (int k = 0; k < l->n; k++)
        free(l->v[k]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

int sk_strlist_read_lines(sk_strlist *l, FILE *fp)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = SK_OK;
    while (!rc && (len = getline(&line, &cap, fp)) >= 0) {
        while (len > 0 && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        rc = sk_strlist_add(l, s);
    }
    free(line);
    return rc;
}

int sk_strlist_add_args(sk_strlist *l, char *const *args, int nargs)
{
    int rc = SK_OK;
    for (int i = 0; !rc && i < nargs; i++)
        rc = strcmp(args[i], "-") == 0 ? sk_strlist_read_lines(l, stdin) : sk_strlist_add(l, args[i]);
    return rc;
}

int sk_strlist_split(sk_strlist *l, const char *option, const char *text, int n)
{
    if (!text)
        return SK_OK;
    int first = l->n;
    const char *s = text;
    for (;;) {
        const char *c = strchr(s, ',');
        size_t len = c ? (size_t)(c - s) : strlen(s);
        char *entry = strndup(s, len);
        if (!entry)
            return sk_error(SK_EIO, "out of memory");
        int rc = sk_strlist_add(l, entry);
        free(entry);
        if (rc)
            return rc;
        if (!c)
            break;
        s = c + 1;
    }
    int got = l->n - first;
    if (got != n)
        return sk_error(SK_EINPUT, "%s: %d entr%s for %d input%s (one per input, in order)", option, got,
                        got == 1 ? "y" : "ies", n, n == 1 ? "" : "s");
    return SK_OK;
}
