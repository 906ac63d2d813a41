/* verkle_ipa.c - SHA-256, the Fiat-Shamir transcript, the IPA opening check and the multiproof
 * check of the Verkle spec (crate-crypto/verkle-spec; as go-ipa ipa/ipa.go, multiproof.go and
 * rust-verkle ipa-multipoint). Polynomials are in evaluation form over the domain 0..255 and
 * committed with the 256-point CRS (verkle_tables.c). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <time.h>

#include "spr.h"
#include "verkle_internal.h"

uint64_t vk_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------------------------------ */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               (uint32_t)p[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

void vk_sha256_init(vk_sha256 *s)
{
    static const uint32_t IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, IV, sizeof IV);
    s->len = 0;
    s->fill = 0;
}

void vk_sha256_update(vk_sha256 *s, const uint8_t *data, size_t len)
{
    s->len += len;
    while (len > 0) {
        size_t k = 64 - s->fill;
        if (k > len) {
            k = len;
        }
        memcpy(s->buf + s->fill, data, k);
        s->fill += k;
        data += k;
        len -= k;
        if (s->fill == 64) {
            sha256_block(s->h, s->buf);
            s->fill = 0;
        }
    }
}

void vk_sha256_final(vk_sha256 *s, uint8_t out[32])
{
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80;
    vk_sha256_update(s, &pad, 1);
    uint8_t zero = 0;
    while (s->fill != 56) {
        vk_sha256_update(s, &zero, 1);
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) {
        lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    }
    vk_sha256_update(s, lenb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

/* ---- transcript ------------------------------------------------------------------------------------ */

void vk_tr_init(vk_transcript *t, const char *label, size_t label_len)
{
    vk_sha256_init(&t->h);
    vk_sha256_update(&t->h, (const uint8_t *)label, label_len);
}

void vk_tr_domain(vk_transcript *t, const char *label)
{
    vk_sha256_update(&t->h, (const uint8_t *)label, strlen(label));
}

void vk_tr_append_bytes(vk_transcript *t, const char *label, const uint8_t bytes[32])
{
    vk_tr_domain(t, label);
    vk_sha256_update(&t->h, bytes, 32);
}

void vk_tr_append_scalar(vk_transcript *t, const char *label, const fe *s)
{
    uint8_t b[32];
    fe_to_bytes_le(b, s, &VK_FR);
    vk_tr_append_bytes(t, label, b);
}

void vk_tr_append_point(vk_transcript *t, const char *label, const vk_point *p)
{
    uint8_t b[32];
    vk_point_encode(b, p);
    vk_tr_append_bytes(t, label, b);
}

void vk_tr_challenge(vk_transcript *t, const char *label, fe *out)
{
    uint8_t h[32];
    vk_tr_domain(t, label);
    vk_sha256_final(&t->h, h);
    vk_sha256_init(&t->h);
    fe_from_bytes_le_reduce(out, h, &VK_FR);
    vk_tr_append_scalar(t, label, out);
}

/* ---- proofs -------------------------------------------------------------------------------------- */

int vk_multiproof_decode(vk_multiproof *mp, const uint8_t in[576])
{
    memcpy(mp->d, in, 32);
    for (int k = 0; k < 8; k++) {
        memcpy(mp->l[k], in + 32 + 32 * k, 32);
        memcpy(mp->r[k], in + 288 + 32 * k, 32);
    }
    if (!fe_from_bytes_le(&mp->a, in + 544, &VK_FR)) {
        return SPR_ERR_VERKLE_NONCANONICAL;
    }
    int st = vk_decode(&mp->D, mp->d);
    for (int k = 0; k < 8 && st == SPR_OK; k++) {
        st = vk_decode(&mp->L[k], mp->l[k]);
        if (st == SPR_OK) {
            st = vk_decode(&mp->R[k], mp->r[k]);
        }
    }
    return st;
}

/* b_i = L_i(z): Lagrange basis of the domain 0..255 evaluated at z (barycentric form). */
static void lagrange_at(fe b[VK_WIDTH], const fe *z)
{
    const fe_field *F = &VK_FR;
    fe tmp[VK_WIDTH];
    fe az = F->one;
    for (int i = 0; i < VK_WIDTH; i++) {
        fe fi;
        fe_from_u64(&fi, (uint64_t)i, F);
        fe_sub(&b[i], z, &fi, F);
        fe_mul(&az, &az, &b[i], F);
    }
    if (fe_is_zero(&az)) { /* z is a domain point: b = e_z */
        for (int i = 0; i < VK_WIDTH; i++) {
            int hit = fe_is_zero(&b[i]);
            b[i] = hit ? F->one : (fe){{0, 0, 0, 0}};
        }
        return;
    }
    fe_batch_inv(b, VK_WIDTH, tmp, F);
    for (int i = 0; i < VK_WIDTH; i++) {
        fe_mul(&b[i], &b[i], &VK_BARY_INV_WEIGHTS[i], F);
        fe_mul(&b[i], &b[i], &az, F);
    }
}

/* The transcript of the IPA: C, z, y, then the challenge w and a challenge x_k per round (after
   L_k and R_k), and their inverses; SPR_ERR_VERKLE_PROOF_MISMATCH if a challenge is 0. */
static int ipa_challenges(vk_transcript *tr, const vk_point *c, const fe *z, const fe *y,
                          const vk_multiproof *mp, fe *w, fe x[8], fe xinv[8])
{
    fe tmp[8];
    vk_tr_domain(tr, "ipa");
    vk_tr_append_point(tr, "C", c);
    vk_tr_append_scalar(tr, "input point", z);
    vk_tr_append_scalar(tr, "output point", y);
    vk_tr_challenge(tr, "w", w);
    for (int k = 0; k < 8; k++) {
        vk_tr_append_bytes(tr, "L", mp->l[k]);
        vk_tr_append_bytes(tr, "R", mp->r[k]);
        vk_tr_challenge(tr, "x", &x[k]);
        xinv[k] = x[k];
    }
    return fe_batch_inv(xinv, 8, tmp, &VK_FR) ? SPR_OK : SPR_ERR_VERKLE_PROOF_MISMATCH;
}

/* s_j = prod of xinv_k over the bits of j set, round k folding bit 7 - k; and b0 = sum_j
   s_j L_j(z), the folded evaluation vector. */
static void fold(fe s[VK_WIDTH], fe *b0, const fe xinv[8], const fe *z)
{
    const fe_field *F = &VK_FR;
    s[0] = F->one;
    size_t n = 1;
    for (int bit = 0; bit < 8; bit++) {
        for (size_t i = 0; i < n; i++) {
            fe_mul(&s[i + n], &s[i], &xinv[7 - bit], F);
        }
        n *= 2;
    }
    fe b[VK_WIDTH];
    lagrange_at(b, z);
    *b0 = (fe){{0, 0, 0, 0}};
    for (int i = 0; i < VK_WIDTH; i++) {
        fe t;
        fe_mul(&t, &b[i], &s[i], F);
        fe_add(b0, b0, &t, F);
    }
}

/* C + w*y*Q + sum x_k L_k + xinv_k R_k - a * sum s_j G_j - a*b0*w*Q == identity, as one MSM. */
static int ipa_final_check(const vk_point *c, const fe *y, const fe *w, const fe x[8],
                           const fe xinv[8], const fe s[VK_WIDTH], const fe *b0,
                           const vk_multiproof *mp, vk_timing *timing)
{
    const fe_field *F = &VK_FR;
    enum { NP = VK_WIDTH + 1 + 16 };
    vk_affine *pts = malloc(NP * sizeof *pts);
    fe *sc = malloc(NP * sizeof *sc);
    if (pts == NULL || sc == NULL) {
        free(pts);
        free(sc);
        return SPR_ERR_VERKLE_NOMEM;
    }
    fe na;
    fe_neg(&na, &mp->a, F);
    for (int i = 0; i < VK_WIDTH; i++) {
        pts[i] = VK_CRS_G[i];
        fe_mul(&sc[i], &s[i], &na, F);
    }
    pts[VK_WIDTH] = VK_CRS_Q;
    fe qs, t;
    fe_mul(&t, &mp->a, b0, F);
    fe_sub(&qs, y, &t, F);
    fe_mul(&sc[VK_WIDTH], &qs, w, F);
    for (int k = 0; k < 8; k++) {
        pts[VK_WIDTH + 1 + 2 * k] = mp->L[k];
        sc[VK_WIDTH + 1 + 2 * k] = x[k];
        pts[VK_WIDTH + 2 + 2 * k] = mp->R[k];
        sc[VK_WIDTH + 2 + 2 * k] = xinv[k];
    }
    vk_point acc;
    uint64_t t0 = timing ? vk_now_ns() : 0;
    int st = vk_msm(&acc, pts, sc, NP);
    if (timing) {
        timing->msm_ns += vk_now_ns() - t0;
    }
    free(pts);
    free(sc);
    if (st != SPR_OK) {
        return st;
    }
    vk_point_add(&acc, &acc, c);
    return vk_point_is_identity(&acc) ? SPR_OK : SPR_ERR_VERKLE_PROOF_MISMATCH;
}

int vk_ipa_verify(vk_transcript *tr, const vk_point *c, const fe *z, const fe *y,
                  const vk_multiproof *mp, vk_timing *timing)
{
    fe w, x[8], xinv[8];
    int st = ipa_challenges(tr, c, z, y, mp, &w, x, xinv);
    if (st != SPR_OK) {
        return st;
    }
    fe s[VK_WIDTH], b0;
    fold(s, &b0, xinv, z);
    return ipa_final_check(c, y, &w, x, xinv, s, &b0, mp, timing);
}

int vk_multiproof_verify(vk_transcript *tr, const vk_affine *comms, const uint8_t (*comm_enc)[32],
                         size_t n_comms, const uint32_t *q_comm, const uint8_t *q_z,
                         const fe *q_y, size_t n_queries, const vk_multiproof *mp,
                         vk_timing *timing)
{
    const fe_field *F = &VK_FR;
    fe small[VK_WIDTH];
    for (int i = 0; i < VK_WIDTH; i++) {
        fe_from_u64(&small[i], (uint64_t)i, F);
    }
    vk_tr_domain(tr, "multiproof");
    for (size_t i = 0; i < n_queries; i++) {
        vk_tr_append_bytes(tr, "C", comm_enc[q_comm[i]]);
        vk_tr_append_scalar(tr, "z", &small[q_z[i]]);
        vk_tr_append_scalar(tr, "y", &q_y[i]);
    }
    fe r, t;
    vk_tr_challenge(tr, "r", &r);
    vk_tr_append_bytes(tr, "D", mp->d);
    vk_tr_challenge(tr, "t", &t);

    fe inv_tmi[VK_WIDTH], tmp[VK_WIDTH];
    for (int i = 0; i < VK_WIDTH; i++) {
        fe_sub(&inv_tmi[i], &t, &small[i], F);
    }
    if (!fe_batch_inv(inv_tmi, VK_WIDTH, tmp, F)) {
        return SPR_ERR_VERKLE_PROOF_MISMATCH; /* t in the domain: never for a hash output */
    }
    fe *agg = calloc(n_comms ? n_comms : 1, sizeof *agg);
    if (agg == NULL) {
        return SPR_ERR_VERKLE_NOMEM;
    }
    fe g2 = {{0, 0, 0, 0}}, rp = F->one;
    for (size_t i = 0; i < n_queries; i++) {
        fe h, v;
        fe_mul(&h, &rp, &inv_tmi[q_z[i]], F);
        fe_mul(&v, &h, &q_y[i], F);
        fe_add(&g2, &g2, &v, F);
        fe_add(&agg[q_comm[i]], &agg[q_comm[i]], &h, F);
        fe_mul(&rp, &rp, &r, F);
    }
    vk_point e;
    uint64_t t0 = timing ? vk_now_ns() : 0;
    int st = vk_msm(&e, comms, agg, n_comms);
    if (timing) {
        timing->msm_ns += vk_now_ns() - t0;
    }
    free(agg);
    if (st != SPR_OK) {
        return st;
    }
    vk_tr_append_point(tr, "E", &e);
    vk_point c;
    vk_point_sub_affine(&c, &e, &mp->D);
    return vk_ipa_verify(tr, &c, &t, &g2, mp, timing);
}
