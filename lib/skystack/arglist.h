/* arglist.h: the lists of names the programs take: a growable list of
 * strings, the positional arguments with "-" standing for names read from
 * stdin (one a line), and comma-separated lists of one entry per input. */
#ifndef SKYSTACK_ARGLIST_H
#define SKYSTACK_ARGLIST_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_strlist {
    char **v;                /* n strings (owned) */
    int n, cap;
} sk_strlist;

/* Append a copy of s. */
int sk_strlist_add(sk_strlist *l, const char *s);
void sk_strlist_free(sk_strlist *l);

/* Append the lines of fp, blanks around each removed; empty lines and
 * lines starting with '#' are skipped. */
int sk_strlist_read_lines(sk_strlist *l, FILE *fp);

/* Append the arguments, each "-" replaced by the lines of stdin. */
int sk_strlist_add_args(sk_strlist *l, char *const *args, int nargs);

/* Split a comma-separated list into exactly n entries ("" entries
 * allowed); SK_EINPUT naming `option` when the count differs. NULL text:
 * nothing appended. */
int sk_strlist_split(sk_strlist *l, const char *option, const char *text, int n);

#ifdef __cplusplus
}
#endif
#endif
