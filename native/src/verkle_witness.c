/* verkle_witness.c - spr_verkle_verify_witness: the verification of an execution witness
 * (stateDiff + verkleProof) against a pre-state root (the other Verkle functions of spr.h are in
 * verkle_api.c; the openings a witness implies are built in verkle_witness_queries.c, the
 * orderings and searches used there in verkle_witness_order.c).
 *
 * The queries a witness must open follow the Verkle spec as implemented by rust-verkle
 * (verkle-trie/src/proof/verifier.rs, create_verifier_queries): for a stem at depth d with
 * extension status s,
 *   internal node at stem[0..i], i < d:  (C, z = stem[i], y = map_to_field(child) or 0);
 *   s = present or other stem, leaf at P = stem[0..d]: (P, 0, 1), (P, 1, stem as LE scalar);
 *   s = present, key suffix k: (P, 2 + k/128, map_to_field(C1|C2)), and on P||(2 + k/128) the
 *       openings 2(k mod 128) -> low 16 value bytes (LE) + 2^128 and +1 -> high 16 bytes, or 0
 *       and 0 for an absent value;
 *   s = other stem: (P, 1, the stem found there), taken from a present stem of the witness
 *       sharing stem[0..d], else from otherStems;
 *   s = empty: (stem[0..d-1], stem[d-1], 0).
 * Openings are sorted by (path, z) (paths byte-lexicographic, a prefix first) and commitments
 * assigned to the sorted distinct paths, the pre-state root first; one multiproof under the
 * transcript label "vt" checks them all.
 *
 * Stricter than rust-verkle where it silently ignores or overwrites: duplicate keys, extra hint
 * bytes, extra or duplicate commitments / other stems, bit 2 of a hint byte, depth 0, two
 * different openings of one (path, z), and an other stem equal to a stem of the witness are
 * rejected. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "spr.h"
#include "verkle_witness.h"

#define FP (&VK_FP)
#define FR (&VK_FR)

/* ---- execution witness ------------------------------------------------------------------- */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wk_free(wk_mem *m)
{
    free(m->keys);
    free(m->stems);
    free(m->others_sorted);
    free(m->other_used);
    free(m->items);
    free(m->path_list);
    free(m->comms);
    free(m->enc);
    free(m->xs);
    free(m->yn);
    free(m->yd);
    free(m->tmp);
    free(m->maps);
    free(m->qc);
    free(m->qz);
    free(m->qy);
}

static const fe ZERO_FE = {{0, 0, 0, 0}};

/* The witness's layout: n_keys || keys || n_hints || hints || n_other || other stems ||
   n_comms || commitments || proof (counts little-endian u32), within the limits of spr.h. */
static int parse_layout(const uint8_t *w, size_t len, wk_witness *x)
{
    if (len < 4) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    x->n_keys = rd32(w);
    if (x->n_keys > SPR_VERKLE_MAX_KEYS) {
        return SPR_ERR_VERKLE_LIMIT;
    }
    if (x->n_keys == 0) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    size_t off = 4;
    if (len - off < x->n_keys * KEY_LEN + 4) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    x->keys = w + off;
    off += x->n_keys * KEY_LEN;
    x->n_hints = rd32(w + off);
    off += 4;
    if (x->n_hints > x->n_keys || len - off < x->n_hints + 4) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    x->hints = w + off;
    off += x->n_hints;
    x->n_other = rd32(w + off);
    off += 4;
    if (x->n_other > x->n_keys || len - off < x->n_other * 31 + 4) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    x->others = w + off;
    off += x->n_other * 31;
    x->n_comms = rd32(w + off);
    off += 4;
    if (x->n_comms > SPR_VERKLE_MAX_COMMITMENTS) {
        return SPR_ERR_VERKLE_LIMIT;
    }
    if (x->n_comms > x->n_keys * 34 || len - off != x->n_comms * 32 + SPR_VERKLE_PROOF_LEN) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    x->comms_enc = w + off;
    x->proof = x->comms_enc + x->n_comms * 32;
    return SPR_OK;
}

/* The keys' present flags (an absent key has a zero value), sorted without duplicates, and
   their distinct stems with each stem's hint (no status 3, no bit 2, depth 1..31, depth < 31 for
   an other-stem status). */
static int read_keys(wk_witness *x, wk_mem *m)
{
    static const uint8_t ZERO32[32] = {0};
    for (size_t i = 0; i < x->n_keys; i++) {
        const uint8_t *k = x->keys + i * KEY_LEN;
        if (k[32] > 1 || (k[32] == 0 && memcmp(k + 33, ZERO32, 32) != 0)) {
            return SPR_ERR_VERKLE_ENCODING;
        }
        m->keys[i].rec = k;
        m->keys[i].index = (uint32_t)i;
    }
    qsort(m->keys, x->n_keys, sizeof *m->keys, cmp_key);
    x->n_stems = 0;
    for (size_t i = 0; i < x->n_keys; i++) {
        if (i > 0 && memcmp(m->keys[i].rec, m->keys[i - 1].rec, 32) == 0) {
            return SPR_ERR_VERKLE_ENCODING; /* duplicate key */
        }
        if (i == 0 || memcmp(m->keys[i].rec, m->keys[i - 1].rec, 31) != 0) {
            m->stems[x->n_stems++].stem = m->keys[i].rec;
        }
    }
    if (x->n_hints != x->n_stems) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    for (size_t s = 0; s < x->n_stems; s++) {
        uint8_t h = x->hints[s];
        stem_info *si = &m->stems[s];
        si->ext = h & 3;
        si->depth = h >> 3;
        if (si->ext == 3 || (h & 4) || si->depth == 0 || (si->ext == 1 && si->depth == 31)) {
            return SPR_ERR_VERKLE_ENCODING;
        }
    }
    return SPR_OK;
}

/* The other stems, sorted, without duplicates. */
static int sort_other_stems(const wk_witness *x, wk_mem *m)
{
    if (x->n_other == 0) {
        return SPR_OK;
    }
    memcpy(m->others_sorted, x->others, x->n_other * 31);
    qsort(m->others_sorted, x->n_other, 31, cmp_stem31);
    for (size_t i = 1; i < x->n_other; i++) {
        if (memcmp(m->others_sorted + 31 * i, m->others_sorted + 31 * (i - 1), 31) == 0) {
            return SPR_ERR_VERKLE_ENCODING;
        }
    }
    return SPR_OK;
}

/* Decode the root and every commitment (batched inversions) into m->comms, and each one's
   map_to_field (x / y, as a scalar) into m->maps; the proof into *mp. */
static int decode_commitments(const uint8_t root[32], const wk_witness *x, wk_mem *m,
                              vk_multiproof *mp)
{
    const size_t nc = x->n_paths;
    m->comms = malloc(nc * sizeof *m->comms);
    m->enc = malloc(nc * 32);
    m->xs = malloc(nc * sizeof *m->xs);
    m->yn = malloc(nc * sizeof *m->yn);
    m->yd = malloc(nc * sizeof *m->yd);
    m->tmp = malloc(nc * sizeof *m->tmp);
    m->maps = malloc(nc * sizeof *m->maps);
    if (!m->comms || !m->enc || !m->xs || !m->yn || !m->yd || !m->tmp || !m->maps) {
        return SPR_ERR_VERKLE_NOMEM;
    }
    memcpy(m->enc[0], root, 32);
    memcpy(m->enc[1], x->comms_enc, x->n_comms * 32);
    int st = SPR_OK;
    for (size_t i = 0; i < nc && st == SPR_OK; i++) {
        st = vk_decode_partial(&m->xs[i], &m->yn[i], &m->yd[i], m->enc[i]);
    }
    if (st == SPR_OK) {
        st = vk_multiproof_decode(mp, x->proof);
    }
    if (st != SPR_OK) {
        return st;
    }
    fe_batch_inv(m->yd, nc, m->tmp, FP); /* denominators are non-zero squares */
    for (size_t i = 0; i < nc; i++) {
        vk_decode_finish(&m->comms[i], &m->xs[i], &m->yn[i], &m->yd[i]);
        m->maps[i] = m->comms[i].y;
    }
    fe_batch_inv(m->maps, nc, m->tmp, FP); /* y != 0: 1 + 5x^2 != 0 was checked */
    for (size_t i = 0; i < nc; i++) {
        fe q;
        uint64_t raw[4];
        fe_mul(&q, &m->comms[i].x, &m->maps[i], FP);
        fe_to_raw(raw, &q, FP);
        fe_from_raw(&m->maps[i], raw, FR);
    }
    return SPR_OK;
}

/* The y of each query not given explicitly: map_to_field of the child commitment at path || z,
   or 0 where there is none (below a 32-byte path, or not in the witness). */
static void child_values(const wk_witness *x, wk_mem *m)
{
    for (size_t q = 0; q < x->n_q; q++) {
        if (m->items[q].explicit_y) {
            continue;
        }
        const uint8_t *pp = m->path_list[m->qc[q]];
        size_t pl = pp[32];
        if (pl >= 32) {
            continue; /* no child below a 32-byte path: y = 0 */
        }
        uint8_t child[32];
        memcpy(child, pp, pl);
        child[pl] = m->qz[q];
        long c = find_path(m->path_list, x->n_paths, child, pl + 1);
        m->qy[q] = c >= 0 ? m->maps[c] : ZERO_FE;
    }
}

/* Everything before the multiproof: the layout, the keys and stems, the openings and queries,
   and the commitments they name (one per distinct path, the root's first). */
static int witness_queries(const uint8_t *w, size_t len, uint8_t *out, size_t out_len,
                           wk_witness *x, wk_mem *m)
{
    int st = parse_layout(w, len, x);
    if (st != SPR_OK) {
        return st;
    }
    if (out != NULL && out_len < x->n_keys * 33) {
        return SPR_ERR_BUFFER;
    }
    m->keys = malloc(x->n_keys * sizeof *m->keys);
    m->stems = malloc(x->n_keys * sizeof *m->stems);
    m->others_sorted = malloc(x->n_other ? x->n_other * 31 : 1);
    m->other_used = calloc(x->n_other ? x->n_other : 1, 1);
    if (!m->keys || !m->stems || !m->others_sorted || !m->other_used) {
        return SPR_ERR_VERKLE_NOMEM;
    }
    if ((st = read_keys(x, m)) != SPR_OK || (st = sort_other_stems(x, m)) != SPR_OK ||
        (st = wk_build_openings(x, m)) != SPR_OK || (st = wk_distinct_queries(x, m)) != SPR_OK) {
        return st;
    }
    if (x->n_paths != x->n_comms + 1 || m->path_list[0][32] != 0) {
        return SPR_ERR_VERKLE_ENCODING; /* commitments do not match the proof's paths */
    }
    return SPR_OK;
}

static int verify_witness(const uint8_t root[32], const uint8_t *w, size_t len, uint8_t *out,
                          size_t out_len, spr_verkle_stats *stats, wk_mem *m)
{
    vk_timing timing = {0};
    wk_witness x;
    memset(&x, 0, sizeof x);
    int st = witness_queries(w, len, out, out_len, &x, m);
    if (st != SPR_OK) {
        return st;
    }
    uint64_t t_dec = vk_now_ns();
    vk_multiproof mp;
    st = decode_commitments(root, &x, m, &mp);
    if (st != SPR_OK) {
        return st;
    }
    uint64_t decode_ns = vk_now_ns() - t_dec;
    child_values(&x, m);

    vk_transcript tr;
    vk_tr_init(&tr, "vt", 2);
    st = vk_multiproof_verify(&tr, m->comms, (const uint8_t(*)[32])m->enc, x.n_paths, m->qc,
                              m->qz, m->qy, x.n_q, &mp, &timing);
    if (stats != NULL) {
        stats->n_keys = x.n_keys;
        stats->n_commitments = x.n_paths;
        stats->n_queries = x.n_q;
        stats->msm_ns = timing.msm_ns;
        stats->decode_ns = decode_ns;
    }
    if (st != SPR_OK) {
        return st;
    }
    for (size_t i = 0; out != NULL && i < x.n_keys; i++) {
        const uint8_t *k = x.keys + i * KEY_LEN;
        out[33 * i] = k[32];
        memcpy(out + 33 * i + 1, k + 33, 32);
    }
    return SPR_OK;
}

int spr_verkle_verify_witness(const uint8_t pre_state_root[32], const uint8_t *witness,
                              size_t witness_len, uint8_t *out, size_t out_len,
                              spr_verkle_stats *stats)
{
    if (pre_state_root == NULL || (witness == NULL && witness_len > 0)) {
        return SPR_ERR_ARG;
    }
    uint64_t t0 = vk_now_ns();
    if (stats != NULL) {
        memset(stats, 0, sizeof *stats);
    }
    wk_mem m;
    memset(&m, 0, sizeof m);
    int st = verify_witness(pre_state_root, witness, witness_len, out, out_len, stats, &m);
    wk_free(&m);
    if (stats != NULL) {
        stats->total_ns = vk_now_ns() - t0;
    }
    return st;
}
