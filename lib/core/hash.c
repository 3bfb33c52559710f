/* hash.c: SHA-256 and MD5 from libcrypto (of buffers and files), RFC 4648 base32 (see skystack/hash.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "skystack/error.h"
#include "skystack/hash.h"

static void to_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void sk_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

/* A digest context of md, ready for updates; NULL when libcrypto cannot. */
static EVP_MD_CTX *digest_begin(const EVP_MD *md)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_DigestInit_ex(c, md, NULL) != 1) {
        EVP_MD_CTX_free(c);
        c = NULL;
    }
    return c;
}

/* The n-byte digest of c in hex into out (2n + 1 chars); c is freed. */
static void digest_end(EVP_MD_CTX *c, unsigned int n, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    EVP_DigestFinal_ex(c, d, &n);
    EVP_MD_CTX_free(c);
    to_hex(d, n, out);
}

sk_sha256_stream *sk_sha256_begin(void)
{
    return (sk_sha256_stream *)digest_begin(EVP_sha256());
}

void sk_sha256_update(sk_sha256_stream *s, const void *data, size_t len)
{
    EVP_DigestUpdate((EVP_MD_CTX *)s, data, len);
}

void sk_sha256_end(sk_sha256_stream *s, char out[65])
{
    digest_end((EVP_MD_CTX *)s, 32, out);
}

void sk_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[32];
    sk_sha256(data, len, d);
    to_hex(d, 32, out);
}

void sk_md5_hex(const void *data, size_t len, char out[33])
{
    unsigned char d[16];
    unsigned int n = 16;
    EVP_Digest(data, len, d, &n, EVP_md5(), NULL);
    to_hex(d, 16, out);
}

sk_md5_stream *sk_md5_begin(void)
{
    return (sk_md5_stream *)digest_begin(EVP_md5());
}

void sk_md5_update(sk_md5_stream *s, const void *data, size_t len)
{
    EVP_DigestUpdate((EVP_MD_CTX *)s, data, len);
}

int sk_md5_update_file(sk_md5_stream *s, const char *path, long long from, long long to)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return sk_error(SK_EIO, "%s: cannot open for md5: %s", path, strerror(errno));
    /* on the heap: a profiler's copy of the stack then reaches the callers */
    const size_t size = (size_t)1 << 20;
    unsigned char *buf = malloc(size);
    int bad = !buf;
    for (long long at = from; !bad && at < to;) {
        size_t want = to - at < (long long)size ? (size_t)(to - at) : size;
        ssize_t n = pread(fd, buf, want, (off_t)at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            bad = 1;
            break;
        }
        EVP_DigestUpdate((EVP_MD_CTX *)s, buf, (size_t)n);
        at += (long long)n;
    }
    free(buf);
    close(fd);
    return bad ? sk_error(SK_EIO, "%s: cannot read bytes [%lld, %lld) for md5", path, from, to) : SK_OK;
}

void sk_md5_end(sk_md5_stream *s, char out[33])
{
    digest_end((EVP_MD_CTX *)s, 16, out);
}

int sk_md5_file(const char *path, char out[33])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sk_error(SK_EIO, "%s: cannot open for md5: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = digest_begin(EVP_md5());
    if (!ctx) {
        fclose(f);
        return sk_error(SK_EIO, "%s: libcrypto cannot compute md5", path);
    }
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        EVP_DigestUpdate(ctx, buf, n);
    int bad = ferror(f);
    fclose(f);
    digest_end(ctx, 16, out);
    return bad ? sk_error(SK_EIO, "%s: read error while computing md5", path) : SK_OK;
}

int sk_base32(const unsigned char *data, size_t len, char *out, size_t outsz)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    size_t need = 8 * ((len + 4) / 5) + 1;
    if (outsz < need)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 5) {
        unsigned char b[5] = {0, 0, 0, 0, 0};
        size_t n = len - i < 5 ? len - i : 5;
        memcpy(b, data + i, n);
        char chunk[8] = {
            alphabet[b[0] >> 3],
            alphabet[((b[0] & 7) << 2) | (b[1] >> 6)],
            alphabet[(b[1] >> 1) & 31],
            alphabet[((b[1] & 1) << 4) | (b[2] >> 4)],
            alphabet[((b[2] & 15) << 1) | (b[3] >> 7)],
            alphabet[(b[3] >> 2) & 31],
            alphabet[((b[3] & 3) << 3) | (b[4] >> 5)],
            alphabet[b[4] & 31],
        };
        /* Characters carrying input bits: 2, 4, 5, 7, 8 for n = 1..5. */
        static const int used[6] = {0, 2, 4, 5, 7, 8};
        for (int k = 0; k < 8; k++)
            out[o++] = k < used[n] ? chunk[k] : '=';
    }
    out[o] = '\0';
    return (int)o;
}
