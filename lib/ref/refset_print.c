/* refset_print.c: refsets and their references as the aligned text refset(1) prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/json.h"
#include "skystack/ref.h"

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

/* "T/S" for a field, "RA,DEC" for a position. */
static void place_text(const char *key, char *out, size_t outsz)
{
    json_t *k = key ? json_loads(key, 0, NULL) : NULL;
    json_t *t = json_object_get(k, "target"), *s = json_object_get(k, "section");
    if (json_is_string(t) && json_is_string(s))
        snprintf(out, outsz, "%s/%s", json_string_value(t), json_string_value(s));
    else if (json_is_number(json_object_get(k, "ra")))
        snprintf(out, outsz, "%.6f,%+.6f", json_number_value(json_object_get(k, "ra")),
                 json_number_value(json_object_get(k, "dec")));
    else
        snprintf(out, outsz, "%s", key ? key : "-");
    json_decref(k);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The criteria that restrict anything (non-null values, non-empty lists),
 * sorted by name; strings without quotes. */
static void print_criteria(FILE *out, const json_t *criteria)
{
    size_t n = json_object_size(criteria), k = 0;
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    const char *key;
    json_t *v;
    if (!keys)
        return;
    json_object_foreach((json_t *)criteria, key, v) keys[k++] = key;
    qsort(keys, n, sizeof *keys, cmp_key);
    int first = 1;
    fprintf(out, "      criteria:");
    for (k = 0; k < n; k++) {
        v = json_object_get(criteria, keys[k]);
        if (json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0))
            continue;
        char *text = json_is_string(v) ? strdup(json_string_value(v)) : sk_json_canonical(v);
        fprintf(out, "%s%s=%s", first ? " " : ", ", keys[k], text ? text : "?");
        free(text);
        first = 0;
    }
    fprintf(out, "%s\n", first ? " (none)" : "");
    free(keys);
}

void sk_refset_print_list(FILE *out, const json_t *list)
{
    size_t i;
    json_t *o;
    int wname = 4;
    json_array_foreach((json_t *)list, i, o) {
        int n = (int)strlen(str(o, "name"));
        if (n > wname)
            wname = n;
    }
    fprintf(out, "%-*s  %5s  %4s  %4s  %-20s  %s\n", wname, "name", "provs", "refs", "bad",
                 "upstream_hash", "description");
    json_array_foreach((json_t *)list, i, o) {
        fprintf(out, "%-*s  %5lld  %4lld  %4lld  %-20s  %s\n", wname, str(o, "name"),
                     json_integer_value(json_object_get(o, "provenances")),
                     json_integer_value(json_object_get(o, "references")),
                     json_integer_value(json_object_get(o, "bad_references")),
                     str(o, "upstream_hash"), str(o, "description"));
    }
}

void sk_refset_print_show(FILE *out, const json_t *o)
{
    fprintf(out, "name:          %s\n", str(o, "name"));
    fprintf(out, "description:   %s\n", str(o, "description"));
    fprintf(out, "upstream_hash: %s\n", str(o, "upstream_hash"));
    fprintf(out, "created:       %s\n", str(o, "created"));
    fprintf(out, "references:    %lld good, %lld marked bad\n",
                 json_integer_value(json_object_get(o, "references")),
                 json_integer_value(json_object_get(o, "bad_references")));
    json_t *provs = json_object_get(o, "provenances");
    fprintf(out, "referencing provenances, in the order they are tried: %zu\n",
            json_array_size(provs));
    size_t i;
    json_t *p;
    json_array_foreach(provs, i, p) {
        fprintf(out, "  %lld  %s  code %s  references %lld good, %lld bad%s\n",
                     json_integer_value(json_object_get(p, "position")), str(p, "id"),
                     str(p, "code_version"), json_integer_value(json_object_get(p, "references")),
                     json_integer_value(json_object_get(p, "bad_references")),
                     json_is_true(json_object_get(p, "is_bad")) ? "  (provenance marked bad)" : "");
        print_criteria(out, json_object_get(p, "criteria"));
        size_t k;
        json_t *u;
        json_array_foreach(json_object_get(p, "upstreams"), k, u)
            fprintf(out, "      upstream: %s %s\n", str(u, "process"), str(u, "id"));
    }
}

void sk_refset_print_refs(FILE *out, const json_t *refs)
{
    size_t i;
    json_t *o;
    int wplace = 5, wfilter = 6;
    json_array_foreach((json_t *)refs, i, o) {
        char pt[512];
        place_text(json_string_value(json_object_get(o, "place")), pt, sizeof pt);
        if ((int)strlen(pt) > wplace)
            wplace = (int)strlen(pt);
        if ((int)strlen(str(o, "filter")) > wfilter)
            wfilter = (int)strlen(str(o, "filter"));
    }
    fprintf(out, "%6s  %-*s  %-*s  %3s  %-20s  %8s  %-6s  %s\n", "id", wplace, "place", wfilter,
                 "filter", "pos", "provenance", "coadd", "loaded", "path / bad reason");
    json_array_foreach((json_t *)refs, i, o) {
        char pt[512];
        place_text(json_string_value(json_object_get(o, "place")), pt, sizeof pt);
        int bad = json_is_true(json_object_get(o, "is_bad"));
        int trouble = !bad && json_is_string(json_object_get(o, "trouble"));
        fprintf(out, "%6lld  %-*s  %-*s  %3lld  %-20s  %8lld  %-6s  %s%s\n",
                     json_integer_value(json_object_get(o, "id")), wplace, pt, wfilter,
                     str(o, "filter"), json_integer_value(json_object_get(o, "position")),
                     str(o, "provenance_id"), json_integer_value(json_object_get(o, "image_id")),
                     json_is_true(json_object_get(o, "loaded")) ? "*" : "",
                     bad ? "BAD: " : trouble ? "NOT LOADABLE: " : "",
                     bad ? str(o, "bad_reason") : trouble ? str(o, "trouble") : str(o, "path"));
    }
}

void sk_refset_print_chain(FILE *out, const json_t *chain)
{
    size_t i;
    json_t *o;
    fprintf(out, "%6s  %8s  %-20s  %11s  %s\n", "id", "coadd", "created", "replaced_by", "state");
    json_array_foreach((json_t *)chain, i, o) {
        json_t *by = json_object_get(o, "replaced_by");
        char bytext[32] = "-";
        if (json_is_integer(by))
            snprintf(bytext, sizeof bytext, "%lld", (long long)json_integer_value(by));
        fprintf(out, "%6lld  %8lld  %-20s  %11s  %s\n",
                (long long)json_integer_value(json_object_get(o, "id")),
                (long long)json_integer_value(json_object_get(o, "image_id")), str(o, "created"),
                bytext, json_is_true(json_object_get(o, "loadable")) ? "loadable" : str(o, "trouble"));
    }
}
