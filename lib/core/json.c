/* json.c: canonical and pretty JSON text of jansson trees with sorted keys and shortest round-trip reals (see skystack/json.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/json.h"

/* A growing output buffer; `failed` sticks after the first allocation error. */
typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (t->len + n + 1 > cap)
            cap *= 2;
        char *s2 = realloc(t->s, cap);
        if (!s2) {
            t->failed = 1;
            return;
        }
        t->s = s2;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

int sk_json_real_text(double value, char *out, size_t outsz)
{
    if (!isfinite(value))
        return -1;
    const char *sign = signbit(value) ? "-" : "";
    double mag = fabs(value);
    if (mag == 0.0)
        return snprintf(out, outsz, "%s0.0", sign);

    /* Shortest precision that reads back to the same double. */
    char sci[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, mag);
        if (strtod(sci, NULL) == mag)
            break;
    }
    /* sci is d[.ddd]e±XX: collect the digits and the decimal exponent. */
    char digits[24];
    int ndig = 0;
    const char *p = sci;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[ndig++] = *p;
    int exp10 = atoi(p + 1);
    while (ndig > 1 && digits[ndig - 1] == '0')
        ndig--;
    digits[ndig] = '\0';

    /* Python's repr: value = 0.DIGITS x 10^decpt. */
    int decpt = exp10 + 1;
    char body[64];
    if (decpt <= -4 || decpt > 16) {
        if (ndig == 1)
            snprintf(body, sizeof body, "%c", digits[0]);
        else
            snprintf(body, sizeof body, "%c.%s", digits[0], digits + 1);
        size_t n = strlen(body);
        snprintf(body + n, sizeof body - n, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else {
        /* Plain notation: digits with the point moved, zeros to fill. */
        size_t n = 0;
        if (decpt <= 0) {
            body[n++] = '0';
            body[n++] = '.';
            for (int i = 0; i < -decpt; i++)
                body[n++] = '0';
            for (int i = 0; i < ndig; i++)
                body[n++] = digits[i];
        } else {
            for (int i = 0; i < decpt; i++)
                body[n++] = i < ndig ? digits[i] : '0';
            body[n++] = '.';
            if (decpt < ndig)
                for (int i = decpt; i < ndig; i++)
                    body[n++] = digits[i];
            else
                body[n++] = '0';
        }
        body[n] = '\0';
    }
    return snprintf(out, outsz, "%s%s", sign, body);
}

static void put_string(text *t, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put(t, "\"", 1);
    size_t run = 0; /* start of the pending run of unescaped bytes */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                u[0] = '\\', u[1] = 'u', u[2] = '0', u[3] = '0';
                u[4] = hex[c >> 4], u[5] = hex[c & 15], u[6] = '\0';
                esc = u;
            }
        }
        if (esc) {
            put(t, s + run, i - run);
            puts_(t, esc);
            run = i + 1;
        }
    }
    put(t, s + run, n - run);
    put(t, "\"", 1);
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void indent(text *t, int depth)
{
    put(t, "\n", 1);
    for (int i = 0; i < depth; i++)
        put(t, "  ", 2);
}

/* pretty < 0: canonical; else the current depth of the pretty form. */
static int write_value(text *t, const json_t *j, int pretty)
{
    char num[48];
    switch (json_typeof(j)) {
    case JSON_NULL: puts_(t, "null"); return 0;
    case JSON_TRUE: puts_(t, "true"); return 0;
    case JSON_FALSE: puts_(t, "false"); return 0;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        puts_(t, num);
        return 0;
    case JSON_REAL:
        if (sk_json_real_text(json_real_value(j), num, sizeof num) < 0)
            return -1;
        puts_(t, num);
        return 0;
    case JSON_STRING:
        put_string(t, json_string_value(j), json_string_length(j));
        return 0;
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        put(t, "[", 1);
        for (size_t i = 0; i < n; i++) {
            if (i)
                put(t, ",", 1);
            if (pretty >= 0)
                indent(t, pretty + 1);
            if (write_value(t, json_array_get(j, i), pretty >= 0 ? pretty + 1 : -1))
                return -1;
        }
        if (pretty >= 0 && n)
            indent(t, pretty);
        put(t, "]", 1);
        return 0;
    }
    case JSON_OBJECT: {
        size_t n = json_object_size(j);
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        if (!keys)
            return -1;
        size_t k = 0;
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)j, key, v)
            keys[k++] = key;
        qsort(keys, k, sizeof *keys, cmp_keys);
        put(t, "{", 1);
        int rc = 0;
        for (size_t i = 0; i < k && rc == 0; i++) {
            if (i)
                put(t, ",", 1);
            if (pretty >= 0)
                indent(t, pretty + 1);
            put_string(t, keys[i], strlen(keys[i]));
            put(t, pretty >= 0 ? ": " : ":", pretty >= 0 ? 2 : 1);
            rc = write_value(t, json_object_get(j, keys[i]), pretty >= 0 ? pretty + 1 : -1);
        }
        if (pretty >= 0 && k && rc == 0)
            indent(t, pretty);
        put(t, "}", 1);
        free(keys);
        return rc;
    }
    }
    return -1;
}

static char *serialise(const json_t *j, int pretty)
{
    if (!j)
        return NULL;
    text t = {0};
    put(&t, "", 0);
    int rc = write_value(&t, j, pretty);
    if (rc == 0 && pretty >= 0)
        put(&t, "\n", 1);
    if (rc != 0 || t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}

char *sk_json_canonical(const json_t *j) { return serialise(j, -1); }
char *sk_json_pretty(const json_t *j) { return serialise(j, 0); }

void sk_json_print_line(FILE *fp, const json_t *j)
{
    char *line = sk_json_canonical(j);
    if (line) {
        fputs(line, fp);
        fputc('\n', fp);
        free(line);
    }
}
