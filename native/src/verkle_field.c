/* verkle_field.c - prime-field arithmetic for Banderwagon: Fp = the BLS12-381 scalar field (the
 * curve's base field) and Fr = the Banderwagon scalar field, 4 x 64-bit limbs in Montgomery form
 * (the inline add, sub and Montgomery product are in verkle_internal.h): conversions to and from
 * bytes, inversion (single and batched), the square root in Fp (Tonelli-Shanks) and the
 * "lexicographically largest" test. */
#include "verkle_internal.h"

const fe_field VK_FP = {
    {0xffffffff00000001ULL, 0x53bda402fffe5bfeULL, 0x3339d80809a1d805ULL, 0x73eda753299d7d48ULL},
    0xfffffffeffffffffULL,
    {{0x00000001fffffffeULL, 0x5884b7fa00034802ULL, 0x998c4fefecbc4ff5ULL, 0x1824b159acc5056fULL}},
    {{0xc999e990f3f29c6dULL, 0x2b6cedcb87925c23ULL, 0x05d314967254398fULL, 0x0748d9d99f59ff11ULL}},
};

const fe_field VK_FR = {
    {0x74fd06b52876e7e1ULL, 0xff8f870074190471ULL, 0x0cce760202687600ULL, 0x1cfb69d4ca675f52ULL},
    0xf19f22295cc063dfULL,
    {{0x5817ca56bc48c0f8ULL, 0x0383c7fc5f37dc74ULL, 0x998c4fefecbc4ff8ULL, 0x1824b159acc5056fULL}},
    {{0xdbb4f5d658db47cbULL, 0x40fa7ca27fecb938ULL, 0xaa9e6daec0055ceaULL, 0x0ae793ddb14aec7dULL}},
};

/* 7^((p-1)/2^32) in Montgomery form: a primitive 2^32-th root of unity (7 is a non-residue). */
static const fe FP_ROOT_2_32 = {
    {0xb9b58d8c5f0e466aULL, 0x5b1b4c801819d7ecULL, 0x0af53ae352a31e64ULL, 0x5bf3adda19e9b27bULL}};

/* ---- field ----------------------------------------------------------------------------------- */

void fe_from_u64(fe *o, uint64_t x, const fe_field *F)
{
    fe raw = {{x, 0, 0, 0}};
    fe_mul(o, &raw, &F->r2, F);
}

void fe_from_raw(fe *o, const uint64_t raw[4], const fe_field *F)
{
    fe t = {{raw[0], raw[1], raw[2], raw[3]}};
    while (fe_raw_geq(t.v, F->m)) { /* at most 2^256 / m (< 9) times */
        fe_raw_sub(t.v, t.v, F->m);
    }
    fe_mul(o, &t, &F->r2, F);
}

void fe_from_bytes_le_reduce(fe *o, const uint8_t in[32], const fe_field *F)
{
    uint64_t raw[4];
    for (int i = 0; i < 4; i++) {
        uint64_t w = 0;
        for (int j = 7; j >= 0; j--) {
            w = (w << 8) | in[8 * i + j];
        }
        raw[i] = w;
    }
    fe_from_raw(o, raw, F);
}

int fe_from_bytes_le(fe *o, const uint8_t in[32], const fe_field *F)
{
    uint64_t raw[4];
    for (int i = 0; i < 4; i++) {
        uint64_t w = 0;
        for (int j = 7; j >= 0; j--) {
            w = (w << 8) | in[8 * i + j];
        }
        raw[i] = w;
    }
    if (fe_raw_geq(raw, F->m)) {
        return 0;
    }
    fe_from_bytes_le_reduce(o, in, F);
    return 1;
}

int fe_from_bytes_be(fe *o, const uint8_t in[32], const fe_field *F)
{
    uint8_t le[32];
    for (int i = 0; i < 32; i++) {
        le[i] = in[31 - i];
    }
    return fe_from_bytes_le(o, le, F);
}

void fe_to_raw(uint64_t out[4], const fe *a, const fe_field *F)
{
    static const fe ONE_RAW = {{1, 0, 0, 0}};
    fe t;
    fe_mul(&t, a, &ONE_RAW, F);
    memcpy(out, t.v, sizeof t.v);
}

void fe_to_bytes_le(uint8_t out[32], const fe *a, const fe_field *F)
{
    uint64_t raw[4];
    fe_to_raw(raw, a, F);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 8; j++) {
            out[8 * i + j] = (uint8_t)(raw[i] >> (8 * j));
        }
    }
}

void fe_to_bytes_be(uint8_t out[32], const fe *a, const fe_field *F)
{
    uint8_t le[32];
    fe_to_bytes_le(le, a, F);
    for (int i = 0; i < 32; i++) {
        out[i] = le[31 - i];
    }
}

/* o = a^e, e a 256-bit exponent (limbs little-endian); left to right. */
static void fe_pow(fe *o, const fe *a, const uint64_t e[4], const fe_field *F)
{
    fe acc = F->one;
    int started = 0;
    for (int i = 255; i >= 0; i--) {
        if (started) {
            fe_sqr(&acc, &acc, F);
        }
        if ((e[i / 64] >> (i % 64)) & 1) {
            if (started) {
                fe_mul(&acc, &acc, a, F);
            } else {
                acc = *a;
                started = 1;
            }
        }
    }
    *o = acc;
}

void fe_inv(fe *o, const fe *a, const fe_field *F)
{
    uint64_t e[4];
    static const uint64_t two[4] = {2, 0, 0, 0};
    fe_raw_sub(e, F->m, two);
    fe_pow(o, a, e, F);
}

int fe_batch_inv(fe *a, size_t n, fe *tmp, const fe_field *F)
{
    if (n == 0) {
        return 1;
    }
    fe acc = F->one;
    for (size_t i = 0; i < n; i++) {
        if (fe_is_zero(&a[i])) {
            return 0;
        }
        tmp[i] = acc;
        fe_mul(&acc, &acc, &a[i], F);
    }
    fe inv;
    fe_inv(&inv, &acc, F);
    for (size_t i = n; i-- > 0;) {
        fe t;
        fe_mul(&t, &inv, &tmp[i], F);
        fe_mul(&inv, &inv, &a[i], F);
        a[i] = t;
    }
    return 1;
}

/* Tonelli-Shanks with p - 1 = 2^32 * q. */
int fp_sqrt(fe *o, const fe *a)
{
    const fe_field *F = &VK_FP;
    if (fe_is_zero(a)) {
        *o = *a;
        return 1;
    }
    /* (q - 1) / 2, q = (p - 1) >> 32 */
    static const uint64_t E[4] = {0x7fff2dff7fffffffULL, 0x04d0ec02a9ded201ULL,
                                  0x94cebea4199cec04ULL, 0x0000000039f6d3a9ULL};
    fe u;
    fe_pow(&u, a, E, F);
    fe x, b;
    fe_mul(&x, a, &u, F); /* a^((q+1)/2) */
    fe_mul(&b, &x, &u, F); /* a^q */
    fe z = FP_ROOT_2_32;
    int v = 32;
    while (!fe_eq(&b, &F->one)) {
        int k = 0;
        fe t = b;
        while (!fe_eq(&t, &F->one)) {
            fe_sqr(&t, &t, F);
            k++;
            if (k == v) {
                return 0;
            }
        }
        fe w = z;
        for (int i = 0; i < v - k - 1; i++) {
            fe_sqr(&w, &w, F);
        }
        fe_sqr(&z, &w, F);
        fe_mul(&b, &b, &z, F);
        fe_mul(&x, &x, &w, F);
        v = k;
    }
    *o = x;
    return 1;
}

int fp_lex_largest(const fe *y)
{
    /* (p - 1) / 2 */
    static const uint64_t H[4] = {0x7fffffff80000000ULL, 0xa9ded2017fff2dffULL,
                                  0x199cec0404d0ec02ULL, 0x39f6d3a994cebea4ULL};
    uint64_t raw[4];
    fe_to_raw(raw, y, &VK_FP);
    for (int i = 3; i >= 0; i--) {
        if (raw[i] != H[i]) {
            return raw[i] > H[i];
        }
    }
    return 0;
}
