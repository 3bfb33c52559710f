/* log.h: levelled diagnostics on stderr, prefixed with the program name;
 * stdout is reserved for the paths/ids a program produces. */
#ifndef SKYSTACK_LOG_H
#define SKYSTACK_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum sk_log_level {
    SK_LOG_QUIET = 0, /* errors only */
    SK_LOG_WARN = 1,
    SK_LOG_INFO = 2,  /* default */
    SK_LOG_DEBUG = 3
};

void sk_log_set_program(const char *name);
const char *sk_log_program(void);
void sk_log_set_level(int level);
int sk_log_level(void);

void sk_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sk_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sk_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sk_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif
#endif
