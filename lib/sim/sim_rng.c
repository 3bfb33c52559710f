/* sim_rng.c: the deterministic random numbers of the simulator: xoshiro256**
 * seeded by splitmix64, with uniform, Gaussian and Poisson deviates. */
#include <math.h>
#include "skystack/sim.h"
#include "sim_internal.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sk_rng_init(sk_rng *r, uint64_t seed, uint64_t stream, uint64_t substream)
{
    /* Mix the three numbers through splitmix64 so that neighbouring streams
     * start from unrelated states. */
    uint64_t x = seed;
    uint64_t a = splitmix64(&x);
    x = a ^ (stream * 0xd1b54a32d192ed03ULL);
    uint64_t b = splitmix64(&x);
    x = b ^ (substream * 0x8cb92ba72f3d8dd7ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1; /* the all-zero state is the one forbidden state */
    r->has_spare = 0;
    r->spare_gauss = 0.0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sk_rng_u64(sk_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sk_rng_uniform(sk_rng *r) { return (double)(sk_rng_u64(r) >> 11) * 0x1.0p-53; }

double sk_rng_range(sk_rng *r, double lo, double hi) { return lo + (hi - lo) * sk_rng_uniform(r); }

double sk_rng_gauss(sk_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare_gauss;
    }
    double u1 = 1.0 - sk_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = sk_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double ang = 2.0 * M_PI * u2;
    r->spare_gauss = rad * sin(ang);
    r->has_spare = 1;
    return rad * cos(ang);
}

/* Hormann (1993), "The transformed rejection method for generating Poisson
 * random variables", algorithm PTRS; valid for mean >= 10. */
static uint64_t poisson_ptrs(sk_rng *r, double mean)
{
    double slam = sqrt(mean), loglam = log(mean);
    double b = 0.931 + 2.53 * slam;
    double a = -0.059 + 0.02483 * b;
    double invalpha = 1.1239 + 1.1328 / (b - 3.4);
    double vr = 0.9277 - 3.6224 / (b - 2.0);
    for (;;) {
        double u = sk_rng_uniform(r) - 0.5;
        double v = sk_rng_uniform(r);
        double us = 0.5 - fabs(u);
        double k = floor((2.0 * a / us + b) * u + mean + 0.43);
        if (us >= 0.07 && v <= vr)
            return (uint64_t)k;
        if (k < 0.0 || (us < 0.013 && v > us))
            continue;
        int sign;
        if (log(v) + log(invalpha) - log(a / (us * us) + b) <=
            -mean + k * loglam - lgamma_r(k + 1.0, &sign))
            return (uint64_t)k;
    }
}

uint64_t sk_rng_poisson(sk_rng *r, double mean)
{
    if (!(mean > 0.0))
        return 0;
    if (mean >= 10.0)
        return poisson_ptrs(r, mean);
    double limit = exp(-mean), prod = 1.0;
    uint64_t k = 0;
    for (;;) {
        prod *= sk_rng_uniform(r);
        if (prod <= limit)
            return k;
        k++;
    }
}
