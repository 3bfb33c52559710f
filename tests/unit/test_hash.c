/* test_hash.c: SHA-256, MD5 and base32 against published vectors. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "skystack/skystack.h"
#include "../tap.h"

int main(void)
{
    tap_plan(19);
    /* RFC 4648 section 10 test vectors. */
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "MY======", "MZXQ====", "MZXW6===", "MZXW6YQ=",
                          "MZXW6YTB", "MZXW6YTBOI======"};
    for (int i = 0; i < 7; i++) {
        char out[64];
        sk_base32((const unsigned char *)in[i], strlen(in[i]), out, sizeof out);
        is_str(out, want[i], "base32(\"%s\")", in[i]);
    }
    char small[4];
    ok(sk_base32((const unsigned char *)"foo", 3, small, sizeof small) == -1,
       "base32 refuses a too-small buffer");

    char hex[65];
    sk_sha256_hex("abc", 3, hex); /* FIPS 180-2 example */
    is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256(abc)");

    const char *dir = tap_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/x.txt", dir);
    ok(sk_atomic_write_file(path, "abc", 3) == SK_OK, "atomic write");
    char md5[33];
    ok(sk_md5_file(path, md5) == SK_OK, "md5 of a file");
    is_str(md5, "900150983cd24fb0d6963f7d28e17f72", "md5(abc) (RFC 1321)");
    ok(sk_md5_file("/nonexistent/file", md5) == SK_EIO, "md5 of a missing file is an I/O error");
    ok(strstr(sk_errmsg(), "/nonexistent/file") != NULL, "and the message names the file");

    /* a FIFO (as /dev/null or /dev/stdout) is written through, never
       replaced by a renamed file */
    char fifo[4200];
    snprintf(fifo, sizeof fifo, "%s/pipe", dir);
    int made = mkfifo(fifo, 0600) == 0;
    int rd = made ? open(fifo, O_RDONLY | O_NONBLOCK) : -1;
    ok(made && rd >= 0 && sk_atomic_write_file(fifo, "xyz", 3) == SK_OK, "atomic write to a FIFO");
    char got[8] = "";
    ok(rd >= 0 && read(rd, got, sizeof got) == 3 && !memcmp(got, "xyz", 3), "the bytes went through it");
    struct stat sb;
    ok(stat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode), "and it is still a FIFO");
    if (rd >= 0)
        close(rd);
    sk_atomic *a = NULL;
    ok(sk_atomic_reserve(dir, &a) == SK_EIO && !a, "a directory is not a product's place (an I/O failure)");
    ok(strstr(sk_errmsg(), "not a regular file") != NULL, "and the message says so");
    return tap_done();
}
