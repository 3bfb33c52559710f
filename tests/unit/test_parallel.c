/* test_parallel.c: the library's parallel-for: every item once, the same
 * chunks and results for any thread count, the first failure in item
 * order returned with its message, scratch spaces never shared; a task
 * beside the caller: on its own thread with threads > 1, at once without,
 * its status and message given by the join. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include "core/parallel.h"
#include "skystack/error.h"
#include "../tap.h"

#define N_ITEMS 1003
#define CHUNK 17

typedef struct visit_ctx {
    atomic_int visits[N_ITEMS];
    long chunk_begin[N_ITEMS]; /* the begin of the call that saw the item */
    double chunk_sum[N_ITEMS / CHUNK + 1];
} visit_ctx;

static int visit_range(long begin, long end, void *user)
{
    visit_ctx *c = user;
    double s = 0.0;
    for (long k = begin; k < end; k++) {
        atomic_fetch_add(&c->visits[k], 1);
        c->chunk_begin[k] = begin;
        s += 1.0 / (double)(k + 1) + s * 1e-3; /* order-dependent rounding */
    }
    c->chunk_sum[begin / CHUNK] = s;
    return SK_OK;
}

static int visit_item(long k, void *user)
{
    visit_ctx *c = user;
    atomic_fetch_add(&c->visits[k], 1);
    c->chunk_begin[k] = k;
    return SK_OK;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Chunk 5 fails late, chunk 9 fails at once: chunk 5's failure is the one
 * reported. Chunks run are counted; those after chunk 9 wait for its
 * failure and take 5 ms more, so that chunks started after the failure
 * would show. */
typedef struct fail_ctx {
    atomic_int ran[64];
    atomic_int nine_failed;
} fail_ctx;

static int fail_range(long begin, long end, void *user)
{
    fail_ctx *c = user;
    atomic_fetch_add(&c->ran[begin], 1);
    if (begin == 5) {
        sleep_ms(30);
        return sk_error(SK_EIO, "chunk 5 failed");
    }
    if (begin == 9) {
        atomic_store(&c->nine_failed, 1);
        return sk_error(SK_EINPUT, "chunk 9 failed");
    }
    if (begin > 9) {
        for (int i = 0; i < 2000 && !atomic_load(&c->nine_failed); i++)
            sleep_ms(1);
        sleep_ms(5);
    }
    return SK_OK;
}

/* Scratch spaces: each used by one thread, never by two chunks at once,
 * released in the caller's thread; counts kept in them are summed there. */
typedef struct scratch_ctx {
    pthread_t caller;
    int fail_init, fail_off_caller;
    atomic_int inits, releases, overlaps, foreign, other_failed;
    long items, released_off_caller;
} scratch_ctx;

typedef struct scratch {
    pthread_t owner;
    atomic_int busy;
    long items;
} scratch;

static int scratch_init(void *sv, void *user)
{
    scratch *s = sv;
    scratch_ctx *c = user;
    atomic_fetch_add(&c->inits, 1);
    s->owner = pthread_self();
    if (c->fail_init)
        return sk_error(SK_EIO, "no scratch space");
    return SK_OK;
}

static void scratch_release(void *sv, void *user)
{
    scratch *s = sv;
    scratch_ctx *c = user;
    atomic_fetch_add(&c->releases, 1);
    if (!pthread_equal(pthread_self(), c->caller))
        c->released_off_caller++;
    c->items += s->items;
}

static int scratch_range(void *sv, long begin, long end, void *user)
{
    scratch *s = sv;
    scratch_ctx *c = user;
    if (!pthread_equal(pthread_self(), s->owner))
        atomic_fetch_add(&c->foreign, 1);
    if (atomic_exchange(&s->busy, 1))
        atomic_fetch_add(&c->overlaps, 1);
    if (c->fail_off_caller) {
        /* the caller's thread waits until another thread has failed */
        if (!pthread_equal(pthread_self(), c->caller)) {
            atomic_store(&c->other_failed, 1);
            atomic_store(&s->busy, 0);
            return sk_error(SK_ENOTFOUND, "another thread failed on item %ld", begin);
        }
        for (int i = 0; i < 5000 && !atomic_load(&c->other_failed); i++)
            sleep_ms(1);
    } else {
        sleep_ms(1);
    }
    s->items += end - begin;
    atomic_store(&s->busy, 0);
    return SK_OK;
}

/* A task: where it ran, and a failure. */
typedef struct task_ctx {
    pthread_t caller;
    atomic_int ran_off_caller, ran;
    int fail;
} task_ctx;

static int task_fn(void *user)
{
    task_ctx *c = user;
    if (!pthread_equal(pthread_self(), c->caller))
        atomic_store(&c->ran_off_caller, 1);
    atomic_fetch_add(&c->ran, 1);
    return c->fail ? sk_error(SK_EIO, "the task failed") : SK_OK;
}

static void test_task(void)
{
    static task_ctx c;
    sk_task *t = NULL;
    c = (task_ctx){.caller = pthread_self()};
    ok(sk_task_start(1, task_fn, &c, &t) == SK_OK && atomic_load(&c.ran) == 1 && !atomic_load(&c.ran_off_caller),
       "one thread: the task ran at once in the caller's thread");
    ok(sk_task_join(t) == SK_OK, "and its join says so");
    c = (task_ctx){.caller = pthread_self(), .fail = 1};
    ok(sk_task_start(2, task_fn, &c, &t) == SK_OK, "two threads: started");
    sk_error_clear();
    ok(sk_task_join(t) == SK_EIO && atomic_load(&c.ran) == 1 && atomic_load(&c.ran_off_caller),
       "it ran once on a thread of its own; the join gives its failure");
    ok(!strcmp(sk_errmsg(), "the task failed"), "with its message in the caller's thread: %s", sk_errmsg());
    ok(sk_task_join(NULL) == SK_OK, "joining no task");
}

int main(void)
{
    tap_plan(58);
    test_task();
    static visit_ctx ref, c;
    memset(&ref, 0, sizeof ref);
    ok(sk_parallel_for(N_ITEMS, CHUNK, 1, visit_range, &ref) == SK_OK, "one thread runs");
    int once = 1, aligned = 1;
    for (long k = 0; k < N_ITEMS; k++) {
        once &= atomic_load(&ref.visits[k]) == 1;
        aligned &= ref.chunk_begin[k] == k / CHUNK * CHUNK;
    }
    ok(once, "one thread: every item once");
    ok(aligned, "one thread: called once per chunk of %d items, not on the whole range", CHUNK);

    const int threads[] = {2, 3, 8, 0, -4};
    for (int t = 0; t < 5; t++) {
        memset(&c, 0, sizeof c);
        int st = sk_parallel_for(N_ITEMS, CHUNK, threads[t], visit_range, &c);
        int same_chunks = 1;
        once = 1;
        for (long k = 0; k < N_ITEMS; k++) {
            once &= atomic_load(&c.visits[k]) == 1;
            same_chunks &= c.chunk_begin[k] == ref.chunk_begin[k];
        }
        ok(st == SK_OK && once, "%d threads: every item once", threads[t]);
        ok(same_chunks, "%d threads: the same chunks as one thread", threads[t]);
        ok(memcmp(c.chunk_sum, ref.chunk_sum, sizeof c.chunk_sum) == 0,
           "%d threads: chunk results bit for bit those of one thread", threads[t]);
    }

    memset(&c, 0, sizeof c);
    ok(sk_parallel_for_each(N_ITEMS, 3, visit_item, &c) == SK_OK, "per item on 3 threads");
    once = 1;
    aligned = 1;
    for (long k = 0; k < N_ITEMS; k++) {
        once &= atomic_load(&c.visits[k]) == 1;
        aligned &= c.chunk_begin[k] == k;
    }
    ok(once && aligned, "per item: every item once, on its own");

    memset(&c, 0, sizeof c);
    ok(sk_parallel_for(0, CHUNK, 4, visit_range, &c) == SK_OK &&
           sk_parallel_for(-3, CHUNK, 4, visit_range, &c) == SK_OK &&
           atomic_load(&c.visits[0]) == 0,
       "no items: nothing called");
    memset(&c, 0, sizeof c);
    ok(sk_parallel_for(5, 0, 2, visit_range, &c) == SK_OK && c.chunk_begin[4] == 4 &&
           atomic_load(&c.visits[4]) == 1,
       "chunk below 1: chunks of one item");

    for (int nt = 1; nt <= 4; nt++) {
        fail_ctx f;
        memset(&f, 0, sizeof f);
        sk_error_clear();
        int st = sk_parallel_for(40, 1, nt, fail_range, &f);
        is_int(st, SK_EIO, "%d threads: the first failing chunk's status", nt);
        is_str(sk_errmsg(), "chunk 5 failed", "%d threads: and its message", nt);
        int before = 1;
        for (int k = 0; k <= 5; k++)
            before &= atomic_load(&f.ran[k]) == 1;
        ok(before, "%d threads: every chunk up to the failing one ran once", nt);
        if (nt == 1)
            ok(atomic_load(&f.ran[6]) == 0 && atomic_load(&f.ran[9]) == 0,
               "one thread: nothing after the failure ran");
        int started = 0;
        for (int k = 6; k < 40; k++)
            started += atomic_load(&f.ran[k]);
        ok(started < 34, "%d threads: not every chunk after the failure started (%d)", nt,
           started);
    }

    const sk_scratch ops = {sizeof(scratch), scratch_init, scratch_release};
    scratch_ctx sc;
    memset(&sc, 0, sizeof sc);
    sc.caller = pthread_self();
    ok(sk_parallel_for_scratch(200, 3, 4, &ops, scratch_range, &sc) == SK_OK, "scratch: runs");
    is_int(sc.items, 200, "scratch: item counts kept in the scratch spaces add up");
    ok(atomic_load(&sc.inits) >= 1 && atomic_load(&sc.inits) <= 4,
       "scratch: one init per thread used (%d)", atomic_load(&sc.inits));
    is_int(atomic_load(&sc.releases), atomic_load(&sc.inits), "scratch: each released");
    is_int(sc.released_off_caller, 0, "scratch: released in the caller's thread");
    is_int(atomic_load(&sc.foreign), 0, "scratch: used only by the thread that made it");
    is_int(atomic_load(&sc.overlaps), 0, "scratch: never by two chunks at once");

    memset(&sc, 0, sizeof sc);
    sc.caller = pthread_self();
    sc.fail_init = 1;
    sk_error_clear();
    is_int(sk_parallel_for_scratch(50, 1, 3, &ops, scratch_range, &sc), SK_EIO,
           "scratch: a failing init is the status");
    is_str(sk_errmsg(), "no scratch space", "scratch: with its message");
    ok(sc.items == 0 && atomic_load(&sc.releases) == atomic_load(&sc.inits),
       "scratch: no chunk ran, and what init left is released");

    memset(&sc, 0, sizeof sc);
    sc.caller = pthread_self();
    sc.fail_off_caller = 1;
    sk_error(SK_EINPUT, "a stale message");
    int st = sk_parallel_for_scratch(2, 1, 2, &ops, scratch_range, &sc);
    is_int(st, SK_ENOTFOUND, "a failure on another thread: its status");
    ok(strncmp(sk_errmsg(), "another thread failed", 21) == 0,
       "and its message in the caller's thread (\"%s\")", sk_errmsg());

    memset(&sc, 0, sizeof sc);
    ok(sk_parallel_for_scratch(0, 3, 4, &ops, scratch_range, &sc) == SK_OK &&
           atomic_load(&sc.inits) == 0,
       "scratch: no items, no scratch made");
    return tap_done();
}
