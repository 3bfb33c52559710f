/* vectorise.h: one attribute for loops written for the compiler's vectoriser: -O3 and,
 * on x86 with GCC, an AVX2 clone chosen at run time (element-wise loops:
 * the same results in every clone); elsewhere -O3 alone. */
#ifndef SK_CORE_VECTORISE_H
#define SK_CORE_VECTORISE_H

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define SK_VECTORISE __attribute__((optimize("O3"), target_clones("avx2", "default")))
#elif defined(__GNUC__) && !defined(__clang__)
#define SK_VECTORISE __attribute__((optimize("O3")))
#else
#define SK_VECTORISE
#endif

#endif
