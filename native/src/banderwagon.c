/* banderwagon.c - Bandersnatch points in extended twisted Edwards coordinates (a = -5), strict
 * Banderwagon encoding and decoding, map_to_field and multi-scalar multiplication (the field
 * arithmetic under them is in verkle_field.c).
 * Sources: the Banderwagon note (crate-crypto, "Banderwagon: a prime-order group from
 * Bandersnatch"), go-ipa banderwagon/element.go semantics, Hisil-Wong-Carter-Dawson 2008
 * (add-2008-hwcd, dbl-2008-hwcd). */
#include <stdlib.h>

#include "spr.h"
#include "verkle_internal.h"

/* ---- points ---------------------------------------------------------------------------------- */

/* d = 0x6389c12633c267cbc66e3bf86be3b6d8cb66677177e54f92b369f2f5188d58e7, Montgomery form:
   filled by the generated tables (verkle_tables.c). */

#define FP (&VK_FP)

void vk_point_identity(vk_point *o)
{
    memset(o, 0, sizeof *o);
    o->Y = VK_FP.one;
    o->Z = VK_FP.one;
}

void vk_point_from_affine(vk_point *o, const vk_affine *a)
{
    o->X = a->x;
    o->Y = a->y;
    fe_mul(&o->T, &a->x, &a->y, FP);
    o->Z = VK_FP.one;
}

void vk_affine_from_xy(vk_affine *o, const fe *x, const fe *y)
{
    o->x = *x;
    o->y = *y;
    fe_mul(&o->td, x, y, FP);
    fe_mul(&o->td, &o->td, &VK_D, FP);
}

static inline void times5(fe *o, const fe *a)
{
    fe t;
    fe_add(&t, a, a, FP);
    fe_add(&t, &t, &t, FP);
    fe_add(o, &t, a, FP);
}

/* add-2008-hwcd with a = -5: H = B - aA = B + 5A. */
static inline void add_core(vk_point *o, const vk_point *p, const fe *x2, const fe *y2,
                            const fe *c, const fe *z2)
{
    fe A, B, D, E, F, G, H, t1, t2;
    fe_mul(&A, &p->X, x2, FP);
    fe_mul(&B, &p->Y, y2, FP);
    if (z2 != NULL) {
        fe_mul(&D, &p->Z, z2, FP);
    } else {
        D = p->Z;
    }
    fe_add(&t1, &p->X, &p->Y, FP);
    fe_add(&t2, x2, y2, FP);
    fe_mul(&E, &t1, &t2, FP);
    fe_sub(&E, &E, &A, FP);
    fe_sub(&E, &E, &B, FP);
    fe_sub(&F, &D, c, FP);
    fe_add(&G, &D, c, FP);
    times5(&H, &A);
    fe_add(&H, &H, &B, FP);
    fe_mul(&o->X, &E, &F, FP);
    fe_mul(&o->Y, &G, &H, FP);
    fe_mul(&o->T, &E, &H, FP);
    fe_mul(&o->Z, &F, &G, FP);
}

void vk_point_add(vk_point *o, const vk_point *a, const vk_point *b)
{
    fe c;
    fe_mul(&c, &a->T, &b->T, FP);
    fe_mul(&c, &c, &VK_D, FP);
    add_core(o, a, &b->X, &b->Y, &c, &b->Z);
}

void vk_point_add_affine(vk_point *o, const vk_point *a, const vk_affine *b)
{
    fe c;
    fe_mul(&c, &a->T, &b->td, FP);
    add_core(o, a, &b->x, &b->y, &c, NULL);
}

void vk_point_sub_affine(vk_point *o, const vk_point *a, const vk_affine *b)
{
    fe c, nx;
    fe_neg(&nx, &b->x, FP);
    fe_mul(&c, &a->T, &b->td, FP);
    fe_neg(&c, &c, FP);
    add_core(o, a, &nx, &b->y, &c, NULL);
}

/* dbl-2008-hwcd with a = -5. */
void vk_point_dbl(vk_point *o, const vk_point *p)
{
    fe A, B, C, D, E, F, G, H, t;
    fe_sqr(&A, &p->X, FP);
    fe_sqr(&B, &p->Y, FP);
    fe_sqr(&C, &p->Z, FP);
    fe_add(&C, &C, &C, FP);
    times5(&D, &A);
    fe_neg(&D, &D, FP);
    fe_add(&t, &p->X, &p->Y, FP);
    fe_sqr(&E, &t, FP);
    fe_sub(&E, &E, &A, FP);
    fe_sub(&E, &E, &B, FP);
    fe_add(&G, &D, &B, FP);
    fe_sub(&F, &G, &C, FP);
    fe_sub(&H, &D, &B, FP);
    fe_mul(&o->X, &E, &F, FP);
    fe_mul(&o->Y, &G, &H, FP);
    fe_mul(&o->T, &E, &H, FP);
    fe_mul(&o->Z, &F, &G, FP);
}

void vk_point_neg(vk_point *o, const vk_point *a)
{
    fe_neg(&o->X, &a->X, FP);
    o->Y = a->Y;
    fe_neg(&o->T, &a->T, FP);
    o->Z = a->Z;
}

int vk_point_is_identity(const vk_point *a)
{
    return fe_is_zero(&a->X);
}

void vk_point_to_xy(fe *x, fe *y, const vk_point *a)
{
    fe zi;
    fe_inv(&zi, &a->Z, FP);
    fe_mul(x, &a->X, &zi, FP);
    fe_mul(y, &a->Y, &zi, FP);
}

void vk_xy_encode(uint8_t out[32], const fe *x, const fe *y)
{
    fe ex = *x;
    if (!fp_lex_largest(y)) {
        fe_neg(&ex, x, FP);
    }
    fe_to_bytes_be(out, &ex, FP);
}

void vk_point_encode(uint8_t out[32], const vk_point *a)
{
    fe x, y;
    vk_point_to_xy(&x, &y, a);
    vk_xy_encode(out, &x, &y);
}

int vk_decode_partial(fe *x, fe *y_num, fe *y_den, const uint8_t in[32])
{
    if (!fe_from_bytes_be(x, in, FP)) {
        return SPR_ERR_VERKLE_NONCANONICAL;
    }
    fe x2, num, den;
    fe_sqr(&x2, x, FP);
    times5(&num, &x2);
    fe_add(&num, &num, &VK_FP.one, FP); /* 1 - a x^2 = 1 + 5 x^2 */
    fe_mul(&den, &x2, &VK_D, FP);
    fe_sub(&den, &VK_FP.one, &den, FP); /* 1 - d x^2 */
    /* subgroup check: 1 - a x^2 must be a non-zero square; then y^2 = num / den needs den square */
    if (fe_is_zero(&num) || !fp_sqrt(y_num, &num)) {
        return SPR_ERR_VERKLE_NOT_ON_CURVE;
    }
    if (fe_is_zero(&den) || !fp_sqrt(y_den, &den)) {
        return SPR_ERR_VERKLE_NOT_ON_CURVE;
    }
    return SPR_OK;
}

void vk_decode_finish(vk_affine *o, const fe *x, const fe *y_num, const fe *y_den_inv)
{
    fe y;
    fe_mul(&y, y_num, y_den_inv, FP);
    if (!fp_lex_largest(&y)) {
        fe_neg(&y, &y, FP);
    }
    vk_affine_from_xy(o, x, &y);
}

int vk_decode(vk_affine *o, const uint8_t in[32])
{
    fe x, yn, yd, ydi;
    int st = vk_decode_partial(&x, &yn, &yd, in);
    if (st != SPR_OK) {
        return st;
    }
    fe_inv(&ydi, &yd, FP);
    vk_decode_finish(o, &x, &yn, &ydi);
    return SPR_OK;
}

void vk_map_to_fr(fe *o, const fe *x, const fe *y)
{
    fe yi, q;
    uint64_t raw[4];
    fe_inv(&yi, y, FP);
    fe_mul(&q, x, &yi, FP);
    fe_to_raw(raw, &q, FP);
    fe_from_raw(o, raw, &VK_FR);
}

/* ---- multi-scalar multiplication --------------------------------------------------------------- */

static unsigned msm_window(size_t n)
{
    if (n < 4) {
        return 3;
    }
    if (n < 32) {
        return 5;
    }
    if (n < 128) {
        return 6;
    }
    if (n < 512) {
        return 7;
    }
    if (n < 2048) {
        return 8;
    }
    if (n < 8192) {
        return 10;
    }
    return 12;
}

/* The signed base-2^c digits of a scalar, in [-2^(c-1), 2^(c-1)], least significant first:
   digits[w] for w < n_windows. */
static void signed_digits(int16_t *digits, const fe *scalar, unsigned c, unsigned n_windows)
{
    const int64_t half = (int64_t)1 << (c - 1);
    uint64_t raw[4];
    fe_to_raw(raw, scalar, &VK_FR);
    int64_t carry = 0;
    for (unsigned w = 0; w < n_windows; w++) {
        unsigned bit = w * c;
        int64_t d = 0;
        if (bit < 256) {
            unsigned limb = bit / 64;
            unsigned off = bit % 64;
            uint64_t v = raw[limb] >> off;
            if (off + c > 64 && limb + 1 < 4) {
                v |= raw[limb + 1] << (64 - off);
            }
            d = (int64_t)(v & (((uint64_t)1 << c) - 1));
        }
        d += carry;
        if (d > half) {
            d -= (int64_t)1 << c;
            carry = 1;
        } else {
            carry = 0;
        }
        digits[w] = (int16_t)d;
    }
}

/* Window w's buckets: buckets[|d| - 1] = the sum of the points whose digit in w is d (negated
   for d < 0); used[b] whether bucket b holds any. */
static void fill_buckets(vk_point *buckets, uint8_t *used, size_t n_buckets,
                         const vk_affine *points, const int16_t *digits, size_t n,
                         unsigned n_windows, unsigned w)
{
    memset(used, 0, n_buckets);
    for (size_t i = 0; i < n; i++) {
        int d = digits[i * n_windows + w];
        if (d == 0) {
            continue;
        }
        size_t b = (size_t)(d > 0 ? d : -d) - 1;
        if (!used[b]) {
            vk_point_from_affine(&buckets[b], &points[i]);
            if (d < 0) {
                vk_point_neg(&buckets[b], &buckets[b]);
            }
            used[b] = 1;
        } else if (d > 0) {
            vk_point_add_affine(&buckets[b], &buckets[b], &points[i]);
        } else {
            vk_point_sub_affine(&buckets[b], &buckets[b], &points[i]);
        }
    }
}

/* sum over b of (b + 1) buckets[b], by running sums from the top bucket down. */
static void sum_buckets(vk_point *sum, const vk_point *buckets, const uint8_t *used,
                        size_t n_buckets)
{
    vk_point running;
    vk_point_identity(&running);
    vk_point_identity(sum);
    int any = 0;
    for (size_t b = n_buckets; b-- > 0;) {
        if (used[b]) {
            vk_point_add(&running, &running, &buckets[b]);
            any = 1;
        }
        if (any) {
            vk_point_add(sum, sum, &running);
        }
    }
}

int vk_msm(vk_point *o, const vk_affine *points, const fe *scalars, size_t n)
{
    vk_point_identity(o);
    if (n == 0) {
        return SPR_OK;
    }
    const unsigned c = msm_window(n);
    const size_t n_buckets = (size_t)1 << (c - 1);
    const unsigned n_windows = (253 + 1 + c - 1) / c + 1;
    int16_t *digits = malloc(n * n_windows * sizeof *digits); /* |digit| <= 2^11 */
    vk_point *buckets = malloc(n_buckets * sizeof *buckets);
    uint8_t *used = malloc(n_buckets);
    if (digits == NULL || buckets == NULL || used == NULL) {
        free(digits);
        free(buckets);
        free(used);
        return SPR_ERR_VERKLE_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        signed_digits(digits + i * n_windows, &scalars[i], c, n_windows);
    }
    vk_point acc;
    vk_point_identity(&acc);
    for (unsigned w = n_windows; w-- > 0;) {
        for (unsigned k = 0; k < c && w + 1 < n_windows; k++) {
            vk_point_dbl(&acc, &acc);
        }
        fill_buckets(buckets, used, n_buckets, points, digits, n, n_windows, w);
        vk_point sum;
        sum_buckets(&sum, buckets, used, n_buckets);
        vk_point_add(&acc, &acc, &sum);
    }
    free(digits);
    free(buckets);
    free(used);
    *o = acc;
    return SPR_OK;
}
