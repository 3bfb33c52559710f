/* parallel.h: the library's one parallel-for (internal, not installed):
 * items 0..n-1 cut into fixed chunks that threads take in increasing
 * order, so that each item is computed the same way whatever the thread
 * count, and the status of the first failing chunk returned. */
#ifndef SK_PARALLEL_H
#define SK_PARALLEL_H

#include <stddef.h>

/* Work on items [begin, end); returns 0 or a status (set with sk_error). */
typedef int (*sk_range_fn)(long begin, long end, void *user);

/* Run fn on the chunks [0, chunk), [chunk, 2 chunk), .. [.., n) on up to
 * `threads` threads, the caller's included (below 1: one). The chunks do
 * not depend on the thread count and fn is called once per chunk, also on
 * one thread; each call must write only the outputs of its own items, and
 * then the result does not depend on the thread count either.
 * After a chunk fails no further chunk is started; the status returned is
 * that of the first failing chunk in item order (the one a single thread
 * meets), and its message is left in the caller's sk_errmsg(). */
int sk_parallel_for(long n, long chunk, int threads, sk_range_fn fn, void *user);

/* Work on item k; returns 0 or a status. */
typedef int (*sk_item_fn)(long k, void *user);

/* sk_parallel_for with a chunk of one item: fn(k, user) for each k. */
int sk_parallel_for_each(long n, int threads, sk_item_fn fn, void *user);

/* Scratch space of each thread: `size` bytes, zeroed, given to init in
 * that thread before its first chunk and to release in the caller's thread
 * once every chunk is done (also when init failed: release must accept
 * what a failed init leaves). Either function may be NULL. The results
 * must not depend on what a scratch held before a chunk. */
typedef struct sk_scratch {
    size_t size;
    int (*init)(void *scratch, void *user);
    void (*release)(void *scratch, void *user);
} sk_scratch;

/* Work on items [begin, end) with the calling thread's scratch. */
typedef int (*sk_scratch_fn)(void *scratch, long begin, long end, void *user);

/* sk_parallel_for with scratch space per thread (no two chunks use one
 * scratch at the same time). A failing init counts as a failure of the
 * chunk it came before. */
int sk_parallel_for_scratch(long n, long chunk, int threads, const sk_scratch *scratch,
                            sk_scratch_fn fn, void *user);

/* A task beside the caller: fn(user) on a thread of its own when
 * `threads` > 1 (and a thread can be started), else at once in the
 * caller's thread, inside sk_task_start. Either way its status is the
 * one sk_task_join returns, with its message in the caller's sk_errmsg();
 * fn must touch nothing the caller uses until then. */
typedef int (*sk_task_fn)(void *user);
typedef struct sk_task sk_task;

/* Start fn; *out is the task to join (NULL only when out of memory, after
 * fn ran in the caller's thread: the status is then returned here). */
int sk_task_start(int threads, sk_task_fn fn, void *user, sk_task **out);

/* Wait for the task and free it; its status (SK_OK for NULL). */
int sk_task_join(sk_task *t);

#endif
