/*
 * verkle_internal.h - Banderwagon and the Verkle multiproof (EIP-6800), internal to native/src.
 *
 * Field elements are 4 x 64-bit limbs in Montgomery form, over one of two prime fields:
 *   VK_FP: Bandersnatch's base field = the BLS12-381 scalar field,
 *          p = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001;
 *   VK_FR: the Banderwagon (prime-order subgroup) scalar field,
 *          r = 0x1cfb69d4ca675f520cce760202687600ff8f87007419047174fd06b52876e7e1.
 * Constant-size arithmetic on public values (no secret data is handled here).
 * Points: twisted Edwards a = -5, d = 0x6389...58e7, in extended coordinates (X:Y:T:Z), x = X/Z,
 * y = Y/Z, T = XY/Z. Banderwagon is the quotient by {(0,1), (0,-1)}: two points are equal when
 * X1*Y2 == X2*Y1, and the identity test is X == 0.
 */
#ifndef SPR_VERKLE_INTERNAL_H
#define SPR_VERKLE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Hidden even in a build without -fvisibility=hidden: not part of the interface (spr.h). */
#pragma GCC visibility push(hidden)

typedef unsigned __int128 vk_u128;

typedef struct {
    uint64_t v[4];
} fe;

typedef struct {
    uint64_t m[4];
    uint64_t inv; /* -m^-1 mod 2^64 */
    fe one;       /* R mod m */
    fe r2;        /* R^2 mod m */
} fe_field;

extern const fe_field VK_FP;
extern const fe_field VK_FR;

static inline int fe_raw_geq(const uint64_t a[4], const uint64_t m[4])
{
    for (int i = 3; i >= 0; i--) {
        if (a[i] != m[i]) {
            return a[i] > m[i];
        }
    }
    return 1;
}

static inline void fe_raw_sub(uint64_t o[4], const uint64_t a[4], const uint64_t b[4])
{
    uint64_t borrow = 0;
    for (int i = 0; i < 4; i++) {
        vk_u128 d = (vk_u128)a[i] - b[i] - borrow;
        o[i] = (uint64_t)d;
        borrow = (uint64_t)(d >> 64) & 1;
    }
}

static inline void fe_add(fe *o, const fe *a, const fe *b, const fe_field *F)
{
    uint64_t t[4];
    vk_u128 c = 0;
    for (int i = 0; i < 4; i++) {
        c += (vk_u128)a->v[i] + b->v[i];
        t[i] = (uint64_t)c;
        c >>= 64;
    }
    if (fe_raw_geq(t, F->m)) {
        fe_raw_sub(t, t, F->m);
    }
    memcpy(o->v, t, sizeof t);
}

static inline void fe_sub(fe *o, const fe *a, const fe *b, const fe_field *F)
{
    uint64_t t[4];
    uint64_t borrow = 0;
    for (int i = 0; i < 4; i++) {
        vk_u128 d = (vk_u128)a->v[i] - b->v[i] - borrow;
        t[i] = (uint64_t)d;
        borrow = (uint64_t)(d >> 64) & 1;
    }
    if (borrow) {
        vk_u128 c = 0;
        for (int i = 0; i < 4; i++) {
            c += (vk_u128)t[i] + F->m[i];
            t[i] = (uint64_t)c;
            c >>= 64;
        }
    }
    memcpy(o->v, t, sizeof t);
}

static inline int fe_is_zero(const fe *a)
{
    return (a->v[0] | a->v[1] | a->v[2] | a->v[3]) == 0;
}

static inline int fe_eq(const fe *a, const fe *b)
{
    return ((a->v[0] ^ b->v[0]) | (a->v[1] ^ b->v[1]) | (a->v[2] ^ b->v[2]) | (a->v[3] ^ b->v[3])) == 0;
}

static inline void fe_neg(fe *o, const fe *a, const fe_field *F)
{
    if (fe_is_zero(a)) {
        *o = *a;
    } else {
        fe_raw_sub(o->v, F->m, a->v);
    }
}

/* Montgomery product a * b / R mod m: CIOS without the extra carry word ("no-carry"
   optimisation, valid because both moduli's top limb is below 2^63 - 1), unrolled. Both
   operands must be below m (fe_from_raw reduces an arbitrary 256-bit integer first); the result
   is fully reduced. */
#define VK_MUL_ROUND(bi, FIRST)                                                                \
    do {                                                                                       \
        vk_u128 c_ = (vk_u128)a0 * (bi) + (FIRST ? 0 : t0);                                    \
        uint64_t A_ = (uint64_t)(c_ >> 64);                                                    \
        uint64_t lo_ = (uint64_t)c_;                                                           \
        uint64_t q_ = lo_ * inv;                                                               \
        c_ = (vk_u128)q_ * m0 + lo_;                                                           \
        uint64_t C_ = (uint64_t)(c_ >> 64);                                                    \
        c_ = (vk_u128)a1 * (bi) + A_ + (FIRST ? 0 : t1);                                       \
        A_ = (uint64_t)(c_ >> 64);                                                             \
        c_ = (vk_u128)q_ * m1 + (uint64_t)c_ + C_;                                             \
        C_ = (uint64_t)(c_ >> 64);                                                             \
        t0 = (uint64_t)c_;                                                                     \
        c_ = (vk_u128)a2 * (bi) + A_ + (FIRST ? 0 : t2);                                       \
        A_ = (uint64_t)(c_ >> 64);                                                             \
        c_ = (vk_u128)q_ * m2 + (uint64_t)c_ + C_;                                             \
        C_ = (uint64_t)(c_ >> 64);                                                             \
        t1 = (uint64_t)c_;                                                                     \
        c_ = (vk_u128)a3 * (bi) + A_ + (FIRST ? 0 : t3);                                       \
        A_ = (uint64_t)(c_ >> 64);                                                             \
        c_ = (vk_u128)q_ * m3 + (uint64_t)c_ + C_;                                             \
        C_ = (uint64_t)(c_ >> 64);                                                             \
        t2 = (uint64_t)c_;                                                                     \
        t3 = A_ + C_;                                                                          \
    } while (0)

static inline void fe_mul(fe *o, const fe *a, const fe *b, const fe_field *F)
{
    const uint64_t m0 = F->m[0], m1 = F->m[1], m2 = F->m[2], m3 = F->m[3], inv = F->inv;
    const uint64_t a0 = a->v[0], a1 = a->v[1], a2 = a->v[2], a3 = a->v[3];
    uint64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0;
    VK_MUL_ROUND(b->v[0], 1);
    VK_MUL_ROUND(b->v[1], 0);
    VK_MUL_ROUND(b->v[2], 0);
    VK_MUL_ROUND(b->v[3], 0);
    uint64_t t[4] = {t0, t1, t2, t3};
    if (fe_raw_geq(t, F->m)) {
        fe_raw_sub(t, t, F->m);
    }
    memcpy(o->v, t, sizeof t);
}

static inline void fe_sqr(fe *o, const fe *a, const fe_field *F)
{
    fe_mul(o, a, a, F);
}

/* verkle_field.c */
void fe_from_u64(fe *o, uint64_t x, const fe_field *F);
/* Any 256-bit integer (limbs little-endian), reduced mod m, into Montgomery form. */
void fe_from_raw(fe *o, const uint64_t raw[4], const fe_field *F);
/* Any 256-bit little-endian integer, reduced mod m, into Montgomery form. */
void fe_from_bytes_le_reduce(fe *o, const uint8_t in[32], const fe_field *F);
/* Canonical decoding: 0 when the integer is not below the modulus (nothing written). */
int fe_from_bytes_le(fe *o, const uint8_t in[32], const fe_field *F);
int fe_from_bytes_be(fe *o, const uint8_t in[32], const fe_field *F);
void fe_to_bytes_le(uint8_t out[32], const fe *a, const fe_field *F);
void fe_to_bytes_be(uint8_t out[32], const fe *a, const fe_field *F);
void fe_to_raw(uint64_t out[4], const fe *a, const fe_field *F);
void fe_inv(fe *o, const fe *a, const fe_field *F); /* 0 -> 0 */
/* In-place inverses of n non-zero elements (Montgomery's trick); tmp holds n elements.
   Returns 0 (and leaves a unchanged) when one of them is zero. */
int fe_batch_inv(fe *a, size_t n, fe *tmp, const fe_field *F);
/* Square root in Fp: 1 and *o set when a is a square, 0 otherwise. */
int fp_sqrt(fe *o, const fe *a);
/* y > (p - 1) / 2 as integers (Banderwagon's "lexicographically largest"). */
int fp_lex_largest(const fe *y);

/* ---- points ------------------------------------------------------------------------------ */
typedef struct {
    fe X, Y, T, Z;
} vk_point;

typedef struct {
    fe x, y, td; /* affine, td = d*x*y */
} vk_affine;

extern const fe VK_D;

void vk_point_identity(vk_point *o);
void vk_point_from_affine(vk_point *o, const vk_affine *a);
void vk_affine_from_xy(vk_affine *o, const fe *x, const fe *y);
void vk_point_add(vk_point *o, const vk_point *a, const vk_point *b);
void vk_point_add_affine(vk_point *o, const vk_point *a, const vk_affine *b);
void vk_point_sub_affine(vk_point *o, const vk_point *a, const vk_affine *b);
void vk_point_dbl(vk_point *o, const vk_point *a);
void vk_point_neg(vk_point *o, const vk_point *a);
int vk_point_is_identity(const vk_point *a); /* Banderwagon: X == 0 */
/* Affine x, y of a point (one inversion). */
void vk_point_to_xy(fe *x, fe *y, const vk_point *a);
/* Compressed Banderwagon encoding: x (or -x when y is not lexicographically largest), 32 bytes
   big-endian. */
void vk_point_encode(uint8_t out[32], const vk_point *a);
void vk_xy_encode(uint8_t out[32], const fe *x, const fe *y);
/* Strict decoding of a compressed point (x < p, on the curve, in the subgroup: 1 + 5x^2 a
   square), y chosen lexicographically largest. Status: SPR_OK, SPR_ERR_VERKLE_NONCANONICAL or
   SPR_ERR_VERKLE_NOT_ON_CURVE. Without y_den_inv (NULL), *o is complete; with it, the square
   root t of the denominator is returned in *y_den and o->y holds the numerator's root: the caller
   batch-inverts the denominators and finishes with vk_decode_finish. */
int vk_decode(vk_affine *o, const uint8_t in[32]);
int vk_decode_partial(fe *x, fe *y_num, fe *y_den, const uint8_t in[32]);
void vk_decode_finish(vk_affine *o, const fe *x, const fe *y_num, const fe *y_den_inv);
/* map_to_field: x / y in Fp, reduced into Fr (Montgomery form). */
void vk_map_to_fr(fe *o, const fe *x, const fe *y);

/* Multi-scalar multiplication sum s_i * P_i over affine points, scalars in Fr Montgomery form
   (signed-window Pippenger; allocates its buckets). Returns SPR_OK or SPR_ERR_VERKLE_NOMEM. */
int vk_msm(vk_point *o, const vk_affine *points, const fe *scalars, size_t n);

/* ---- CRS and precomputed tables (verkle_tables.c, generated by native/verkle_tables.py) ---- */
#define VK_WIDTH 256
extern const vk_affine VK_CRS_G[VK_WIDTH];
extern const vk_affine VK_CRS_Q;
/* 1 / A'(i) in Fr, A(X) = prod_{j<256} (X - j): barycentric weights of the domain 0..255. */
extern const fe VK_BARY_INV_WEIGHTS[VK_WIDTH];

/* ---- SHA-256 and the Fiat-Shamir transcript ---------------------------------------------- */
typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
} vk_sha256;

void vk_sha256_init(vk_sha256 *s);
void vk_sha256_update(vk_sha256 *s, const uint8_t *data, size_t len);
void vk_sha256_final(vk_sha256 *s, uint8_t out[32]);

typedef struct {
    vk_sha256 h;
} vk_transcript;

void vk_tr_init(vk_transcript *t, const char *label, size_t label_len);
void vk_tr_domain(vk_transcript *t, const char *label);
void vk_tr_append_scalar(vk_transcript *t, const char *label, const fe *s);
void vk_tr_append_bytes(vk_transcript *t, const char *label, const uint8_t bytes[32]);
void vk_tr_append_point(vk_transcript *t, const char *label, const vk_point *p);
void vk_tr_challenge(vk_transcript *t, const char *label, fe *out);

/* ---- IPA and multiproof (verkle_ipa.c) ------------------------------------------------------ */
typedef struct {
    uint8_t d[32];
    uint8_t l[8][32];
    uint8_t r[8][32];
    fe a;
    vk_affine D, L[8], R[8];
} vk_multiproof;

/* Decode a 576-byte multiproof D || L[8] || R[8] || a (a little-endian); strict. */
int vk_multiproof_decode(vk_multiproof *mp, const uint8_t in[576]);

/* Timing counters of one verification (nanoseconds; may be NULL). */
typedef struct {
    uint64_t msm_ns;
} vk_timing;

/* Verify an IPA opening of `commitment` (point C, encoding c_enc) at input point z with output
   y, the transcript already holding whatever precedes "ipa". SPR_OK or
   SPR_ERR_VERKLE_PROOF_MISMATCH (or NOMEM). The caller passes E and D for the multiproof case,
   so that C = E - D. */
int vk_ipa_verify(vk_transcript *tr, const vk_point *c, const fe *z, const fe *y,
                  const vk_multiproof *mp, vk_timing *timing);

/* Multiproof check over n queries (commitment index per query into comms, point z in
   0..255, value y). comm_enc: compressed encodings of the commitments (for the transcript). */
int vk_multiproof_verify(vk_transcript *tr, const vk_affine *comms, const uint8_t (*comm_enc)[32],
                         size_t n_comms, const uint32_t *q_comm, const uint8_t *q_z,
                         const fe *q_y, size_t n_queries, const vk_multiproof *mp,
                         vk_timing *timing);

uint64_t vk_now_ns(void);
/* Messages of the SPR_ERR_VERKLE_* statuses (status.c falls back to it). */
const char *vk_strerror(int status);

#pragma GCC visibility pop

#endif
