/* error.c: the thread-local last error (see skystack/error.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "skystack/error.h"

#define SK_ERRMSG_SIZE 2048

static _Thread_local char errmsg[SK_ERRMSG_SIZE];
static _Thread_local int errstatus;

int sk_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    errstatus = status;
    return status;
}

int sk_error_context(const char *fmt, ...)
{
    char old[SK_ERRMSG_SIZE];
    va_list ap;
    memcpy(old, errmsg, sizeof old);
    va_start(ap, fmt);
    int n = vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof errmsg - 2) {
        size_t used = (size_t)n;
        errmsg[used++] = ':';
        errmsg[used++] = ' ';
        size_t room = sizeof errmsg - used - 1;
        size_t len = strlen(old);
        if (len > room)
            len = room;
        memcpy(errmsg + used, old, len);
        errmsg[used + len] = '\0';
    }
    return errstatus;
}

const char *sk_errmsg(void) { return errmsg; }
int sk_errstatus(void) { return errstatus; }

void sk_error_clear(void)
{
    errmsg[0] = '\0';
    errstatus = 0;
}
