/* hash.h: digests from libcrypto (SHA-256, MD5 of files) and RFC 4648 base32. */
#ifndef SKYSTACK_HASH_H
#define SKYSTACK_HASH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* SHA-256 of a buffer into 32 bytes. */
void sk_sha256(const void *data, size_t len, unsigned char out[32]);

/* SHA-256 of a stream: begin, any number of updates, end (which frees
 * the state and gives 64 lowercase hex characters plus NUL). NULL from
 * begin when out of memory. */
typedef struct sk_sha256_stream sk_sha256_stream;
sk_sha256_stream *sk_sha256_begin(void);
void sk_sha256_update(sk_sha256_stream *s, const void *data, size_t len);
void sk_sha256_end(sk_sha256_stream *s, char out[65]);

/* SHA-256 of a buffer as 64 lowercase hex characters plus NUL. */
void sk_sha256_hex(const void *data, size_t len, char out[65]);

/* MD5 of a buffer as 32 lowercase hex characters plus NUL. */
void sk_md5_hex(const void *data, size_t len, char out[33]);

/* MD5 of a stream, as the SHA-256 stream above (end gives 32 hex
 * characters plus NUL); sk_md5_update_file adds bytes [from, to) of a
 * file (SK_EIO when they cannot all be read). */
typedef struct sk_md5_stream sk_md5_stream;
sk_md5_stream *sk_md5_begin(void);
void sk_md5_update(sk_md5_stream *s, const void *data, size_t len);
int sk_md5_update_file(sk_md5_stream *s, const char *path, long long from, long long to);
void sk_md5_end(sk_md5_stream *s, char out[33]);

/* MD5 of a whole file as 32 lowercase hex characters plus NUL.
 * SK_EIO with the path in the message when the file cannot be read. */
int sk_md5_file(const char *path, char out[33]);

/* RFC 4648 base32 (alphabet A-Z2-7, '=' padding) of `len` bytes into `out`
 * of size `outsz` (needs 8*ceil(len/5)+1). Returns characters written
 * (without NUL), or -1 when `out` is too small. */
int sk_base32(const unsigned char *data, size_t len, char *out, size_t outsz);

#ifdef __cplusplus
}
#endif
#endif
