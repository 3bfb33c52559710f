/* error.h: the one error path of skystack: status codes (the exit codes of
 * skystack(7), EXIT STATUS) and the last error message of the calling thread. */
#ifndef SKYSTACK_ERROR_H
#define SKYSTACK_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by library calls; programs exit with them. */
enum sk_status {
    SK_OK = 0,        /* success */
    SK_EINPUT = 1,    /* bad usage or bad input (message names the file/option) */
    SK_ENOTFOUND = 2, /* nothing to do, or not found where the caller asked for it */
    SK_EIO = 3        /* database or I/O failure */
};

/* Record an error for the calling thread and return `status`, so that
 * library code can write `return sk_error(SK_EINPUT, "%s: no WCS", path);`.
 * The message should name the file or option and say what is wrong. */
int sk_error(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefix the current message with context ("reading x.fits: ...") and
 * return the current status unchanged. */
int sk_error_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last message ("" when none) and status (SK_OK when none). */
const char *sk_errmsg(void);
int sk_errstatus(void);
void sk_error_clear(void);

#ifdef __cplusplus
}
#endif
#endif
