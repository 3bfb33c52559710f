/* log.c: levelled diagnostics on stderr (see skystack/log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include "skystack/log.h"

static const char *program = "skystack";
static int level = SK_LOG_INFO;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void sk_log_set_program(const char *name) { if (name) program = name; }
const char *sk_log_program(void) { return program; }
void sk_log_set_level(int l) { level = l < SK_LOG_QUIET ? SK_LOG_QUIET : l > SK_LOG_DEBUG ? SK_LOG_DEBUG : l; }
int sk_log_level(void) { return level; }

static void emit(int min_level, const char *tag, const char *fmt, va_list ap)
{
    if (level < min_level)
        return;
    pthread_mutex_lock(&lock);
    fprintf(stderr, "%s: %s", program, tag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&lock);
}

#define SK_LOG_FN(fn, min, tag)                 \
    void fn(const char *fmt, ...)               \
    {                                           \
        va_list ap;                             \
        va_start(ap, fmt);                      \
        emit(min, tag, fmt, ap);                \
        va_end(ap);                             \
    }

SK_LOG_FN(sk_log_error, SK_LOG_QUIET, "error: ")
SK_LOG_FN(sk_warn, SK_LOG_WARN, "warning: ")
SK_LOG_FN(sk_info, SK_LOG_INFO, "")
SK_LOG_FN(sk_debug, SK_LOG_DEBUG, "debug: ")
