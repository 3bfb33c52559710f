/* parallel.h: the library's one parallel-for (internal, not installed):
 * items 0..n-1 cut into fixed chunks that threads take in increasing
 * order, so that each item is computed the same way whatever the thread
 * count, and the status of the first failing chunk returned. */
#ifndef SK_PARALLEL_H
#define SK_PARALLEL_H

/* Work on items [begin, end); returns 0 or a status (set with sk_error). */
typedef int (*sk_range_fn)(long begin, long end, void *user);

/* Work on item k; returns 0 or a status. */
typedef int (*sk_item_fn)(long k, void *user);

/* Work on items [begin, end) as worker `worker` (0 <= worker <
 * sk_parallel_workers() of the same n, chunk and threads): no two calls
 * with the same worker run at the same time, so scratch space kept per
 * worker needs no lock. */
typedef int (*sk_worker_fn)(int worker, long begin, long end, void *user);

/* Run fn on the chunks [0, chunk), [chunk, 2 chunk), .. [.., n) on up to
 * `threads` threads, the caller's included (below 1: one). The chunks do
 * not depend on the thread count and fn is called once per chunk, also on
 * one thread; each call must write only the outputs of its own items, and
 * then the result does not depend on the thread count either.
 * After a chunk fails no further chunk is started; the status returned is
 * that of the first failing chunk in item order (the one a single thread
 * meets), and its message is left in the caller's sk_errmsg(). */
int sk_parallel_for(long n, long chunk, int threads, sk_range_fn fn, void *user);

/* sk_parallel_for with a chunk of one item: fn(k, user) for each k. */
int sk_parallel_for_each(long n, int threads, sk_item_fn fn, void *user);

/* sk_parallel_for with the worker that runs each chunk. */
int sk_parallel_for_workers(long n, long chunk, int threads, sk_worker_fn fn, void *user);

/* How many workers sk_parallel_for_workers(n, chunk, threads, ..) uses at
 * most: threads (at least 1), no more than there are chunks; 0 when n <= 0. */
int sk_parallel_workers(long n, long chunk, int threads);

#endif
