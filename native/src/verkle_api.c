/* verkle_api.c - the public Verkle helpers of spr.h other than the witness check: Banderwagon
 * points (decode, encode, add, mul, map_to_field) in the 64-byte uncompressed form, Pedersen
 * commitments over the CRS, EIP-6800 tree keys, the Fiat-Shamir transcript, IPA and multiproof
 * verification; and the messages of the SPR_ERR_VERKLE_* statuses. The execution witness check
 * is in verkle_witness.c. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "spr.h"
#include "verkle_internal.h"

#define FP (&VK_FP)
#define FR (&VK_FR)

/* ---- uncompressed points ------------------------------------------------------------------ */

static int parse_uncompressed(vk_affine *o, const uint8_t in[64])
{
    fe x, y;
    if (!fe_from_bytes_le(&x, in, FP) || !fe_from_bytes_le(&y, in + 32, FP)) {
        return SPR_ERR_VERKLE_NONCANONICAL;
    }
    fe x2, y2, l, r, t;
    fe_sqr(&x2, &x, FP);
    fe_sqr(&y2, &y, FP);
    /* -5 x^2 + y^2 == 1 + d x^2 y^2 */
    fe_add(&t, &x2, &x2, FP);
    fe_add(&t, &t, &t, FP);
    fe_add(&t, &t, &x2, FP);
    fe_sub(&l, &y2, &t, FP);
    fe_mul(&r, &x2, &y2, FP);
    fe_mul(&r, &r, &VK_D, FP);
    fe_add(&r, &r, &VK_FP.one, FP);
    if (!fe_eq(&l, &r)) {
        return SPR_ERR_VERKLE_NOT_ON_CURVE;
    }
    fe num, s;
    fe_add(&num, &t, &VK_FP.one, FP); /* 1 + 5 x^2 */
    if (fe_is_zero(&num) || !fp_sqrt(&s, &num)) {
        return SPR_ERR_VERKLE_NOT_ON_CURVE;
    }
    vk_affine_from_xy(o, &x, &y);
    return SPR_OK;
}

static void write_uncompressed(uint8_t out[64], const vk_point *p)
{
    fe x, y;
    vk_point_to_xy(&x, &y, p);
    fe_to_bytes_le(out, &x, FP);
    fe_to_bytes_le(out + 32, &y, FP);
}

int spr_banderwagon_decode(const uint8_t in[32], uint8_t out[64])
{
    if (in == NULL || out == NULL) {
        return SPR_ERR_ARG;
    }
    vk_affine a;
    int st = vk_decode(&a, in);
    if (st != SPR_OK) {
        return st;
    }
    fe_to_bytes_le(out, &a.x, FP);
    fe_to_bytes_le(out + 32, &a.y, FP);
    return SPR_OK;
}

int spr_banderwagon_encode(const uint8_t in[64], uint8_t out[32])
{
    if (in == NULL || out == NULL) {
        return SPR_ERR_ARG;
    }
    vk_affine a;
    int st = parse_uncompressed(&a, in);
    if (st == SPR_OK) {
        vk_xy_encode(out, &a.x, &a.y);
    }
    return st;
}

int spr_banderwagon_add(const uint8_t a[64], const uint8_t b[64], uint8_t out[64])
{
    if (a == NULL || b == NULL || out == NULL) {
        return SPR_ERR_ARG;
    }
    vk_affine pa, pb;
    int st = parse_uncompressed(&pa, a);
    if (st == SPR_OK) {
        st = parse_uncompressed(&pb, b);
    }
    if (st != SPR_OK) {
        return st;
    }
    vk_point p;
    vk_point_from_affine(&p, &pa);
    vk_point_add_affine(&p, &p, &pb);
    write_uncompressed(out, &p);
    return SPR_OK;
}

int spr_banderwagon_mul(const uint8_t p[64], const uint8_t scalar[32], uint8_t out[64])
{
    if (p == NULL || scalar == NULL || out == NULL) {
        return SPR_ERR_ARG;
    }
    vk_affine pa;
    fe s;
    int st = parse_uncompressed(&pa, p);
    if (st != SPR_OK) {
        return st;
    }
    if (!fe_from_bytes_le(&s, scalar, FR)) {
        return SPR_ERR_VERKLE_NONCANONICAL;
    }
    vk_point r;
    st = vk_msm(&r, &pa, &s, 1);
    if (st == SPR_OK) {
        write_uncompressed(out, &r);
    }
    return st;
}

int spr_banderwagon_map_to_field(const uint8_t p[64], uint8_t out[32])
{
    if (p == NULL || out == NULL) {
        return SPR_ERR_ARG;
    }
    vk_affine pa;
    int st = parse_uncompressed(&pa, p);
    if (st != SPR_OK) {
        return st;
    }
    fe m;
    vk_map_to_fr(&m, &pa.x, &pa.y);
    fe_to_bytes_le(out, &m, FR);
    return SPR_OK;
}

static int commit_fe(vk_point *o, const fe *scalars, size_t n)
{
    return vk_msm(o, VK_CRS_G, scalars, n);
}

int spr_verkle_commit(const uint8_t *scalars, size_t n, uint8_t out[64])
{
    if ((scalars == NULL && n > 0) || out == NULL || n > VK_WIDTH) {
        return SPR_ERR_ARG;
    }
    fe s[VK_WIDTH];
    for (size_t i = 0; i < n; i++) {
        if (!fe_from_bytes_le(&s[i], scalars + 32 * i, FR)) {
            return SPR_ERR_VERKLE_NONCANONICAL;
        }
    }
    vk_point p;
    int st = commit_fe(&p, s, n);
    if (st == SPR_OK) {
        write_uncompressed(out, &p);
    }
    return st;
}

int spr_verkle_tree_key(const uint8_t address[32], const uint8_t tree_index[32],
                        uint8_t sub_index, uint8_t out[32])
{
    if (address == NULL || tree_index == NULL || out == NULL) {
        return SPR_ERR_ARG;
    }
    fe s[5];
    uint8_t half[32];
    fe_from_u64(&s[0], 2 + 256 * 64, FR);
    const uint8_t *src[4] = {address, address + 16, tree_index, tree_index + 16};
    for (int i = 0; i < 4; i++) {
        memset(half, 0, sizeof half);
        memcpy(half, src[i], 16);
        fe_from_bytes_le(&s[1 + i], half, FR); /* < 2^128 < r */
    }
    vk_point p;
    int st = commit_fe(&p, s, 5);
    if (st != SPR_OK) {
        return st;
    }
    fe x, y, m;
    vk_point_to_xy(&x, &y, &p);
    vk_map_to_fr(&m, &x, &y);
    fe_to_bytes_le(out, &m, FR);
    out[31] = sub_index;
    return SPR_OK;
}

int spr_verkle_transcript(const uint8_t *ops, size_t ops_len, uint8_t out[32])
{
    if ((ops == NULL && ops_len > 0) || out == NULL) {
        return SPR_ERR_ARG;
    }
    vk_transcript tr;
    int started = 0, challenged = 0;
    size_t i = 0;
    char label[256];
    while (i < ops_len) {
        if (ops_len - i < 2) {
            return SPR_ERR_VERKLE_ENCODING;
        }
        unsigned kind = ops[i], ll = ops[i + 1];
        i += 2;
        if (ops_len - i < ll) {
            return SPR_ERR_VERKLE_ENCODING;
        }
        memcpy(label, ops + i, ll);
        label[ll] = 0;
        i += ll;
        if ((kind == 1) == (started != 0) || kind < 1 || kind > 5 || memchr(label, 0, ll) != NULL) {
            return SPR_ERR_VERKLE_ENCODING;
        }
        if (kind == 3 || kind == 4) {
            if (ops_len - i < 32) {
                return SPR_ERR_VERKLE_ENCODING;
            }
            if (kind == 3) {
                fe s;
                if (!fe_from_bytes_le(&s, ops + i, FR)) {
                    return SPR_ERR_VERKLE_NONCANONICAL;
                }
                vk_tr_append_scalar(&tr, label, &s);
            } else {
                vk_affine a;
                int st = vk_decode(&a, ops + i);
                if (st != SPR_OK) {
                    return st;
                }
                vk_tr_append_bytes(&tr, label, ops + i);
            }
            i += 32;
        } else if (kind == 1) {
            vk_tr_init(&tr, label, ll);
            started = 1;
        } else if (kind == 2) {
            vk_tr_domain(&tr, label);
        } else {
            fe c;
            vk_tr_challenge(&tr, label, &c);
            fe_to_bytes_le(out, &c, FR);
            challenged = 1;
        }
    }
    return challenged ? SPR_OK : SPR_ERR_VERKLE_ENCODING;
}

int spr_verkle_ipa_verify(const uint8_t *label, size_t label_len, const uint8_t commitment[32],
                          const uint8_t input[32], const uint8_t output[32],
                          const uint8_t proof[544])
{
    if ((label == NULL && label_len > 0) || commitment == NULL || input == NULL ||
        output == NULL || proof == NULL) {
        return SPR_ERR_ARG;
    }
    uint8_t buf[576];
    vk_multiproof mp;
    /* reuse the multiproof decoder with the commitment in D's place */
    memcpy(buf, commitment, 32);
    memcpy(buf + 32, proof, 544);
    int st = vk_multiproof_decode(&mp, buf);
    if (st != SPR_OK) {
        return st;
    }
    fe z, y;
    if (!fe_from_bytes_le(&z, input, FR) || !fe_from_bytes_le(&y, output, FR)) {
        return SPR_ERR_VERKLE_NONCANONICAL;
    }
    vk_point c;
    vk_point_from_affine(&c, &mp.D);
    vk_transcript tr;
    vk_tr_init(&tr, (const char *)label, label_len);
    return vk_ipa_verify(&tr, &c, &z, &y, &mp, NULL);
}

int spr_verkle_multiproof_verify(const uint8_t *label, size_t label_len,
                                 const uint8_t *commitments, const uint8_t *zs, const uint8_t *ys,
                                 size_t n, const uint8_t proof[576])
{
    if ((label == NULL && label_len > 0) || proof == NULL ||
        (n > 0 && (commitments == NULL || zs == NULL || ys == NULL)) || n > SPR_VERKLE_MAX_KEYS * 36) {
        return SPR_ERR_ARG;
    }
    vk_multiproof mp;
    int st = vk_multiproof_decode(&mp, proof);
    if (st != SPR_OK) {
        return st;
    }
    size_t m = n ? n : 1;
    vk_affine *comms = malloc(m * sizeof *comms);
    uint32_t *qc = malloc(m * sizeof *qc);
    fe *qy = malloc(m * sizeof *qy);
    if (comms == NULL || qc == NULL || qy == NULL) {
        st = SPR_ERR_VERKLE_NOMEM;
    }
    for (size_t i = 0; i < n && st == SPR_OK; i++) {
        st = vk_decode(&comms[i], commitments + 32 * i);
        qc[i] = (uint32_t)i;
        if (st == SPR_OK && !fe_from_bytes_le(&qy[i], ys + 32 * i, FR)) {
            st = SPR_ERR_VERKLE_NONCANONICAL;
        }
    }
    if (st == SPR_OK) {
        vk_transcript tr;
        vk_tr_init(&tr, (const char *)label, label_len);
        st = vk_multiproof_verify(&tr, comms, (const uint8_t(*)[32])commitments, n, qc, zs, qy, n,
                                  &mp, NULL);
    }
    free(comms);
    free(qc);
    free(qy);
    return st;
}

const char *vk_strerror(int status)
{
    switch (status) {
    case SPR_ERR_VERKLE_ENCODING:
        return "Verkle: malformed witness or proof layout";
    case SPR_ERR_VERKLE_NONCANONICAL:
        return "Verkle: non-canonical field element or scalar";
    case SPR_ERR_VERKLE_NOT_ON_CURVE:
        return "Verkle: point not on the curve or not in the Banderwagon subgroup";
    case SPR_ERR_VERKLE_INCONSISTENT:
        return "Verkle: claims contradict the proof's extension hints";
    case SPR_ERR_VERKLE_PROOF_MISMATCH:
        return "Verkle: multiproof does not open the commitments under this root to the claimed values";
    case SPR_ERR_VERKLE_LIMIT:
        return "Verkle: witness exceeds the verifier's limits";
    case SPR_ERR_VERKLE_NOMEM:
        return "Verkle: out of memory";
    default:
        return "unknown status";
    }
}
