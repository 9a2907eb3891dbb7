/* Runtime CPU dispatch for plain C loops: the compiler emits an AVX-512,
 * an AVX2 and a baseline version of a function and the loader picks one
 * for the CPU it runs on (GNU ifunc). The build host's CPU never matters;
 * cluster nodes differ from it. The baseline clone is the reference: the
 * loops are written so every clone gives bit-identical results (no
 * reassociation: no -ffast-math, reductions stay in source order). */
#ifndef QB_SIMD_H
#define QB_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(QB_NO_CLONES)
#define QB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define QB_CLONES
#endif

#endif
