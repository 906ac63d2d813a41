/* verkle_witness.c - spr_verkle_verify_witness: the verification of an execution witness
 * (stateDiff + verkleProof) against a pre-state root (the other Verkle functions of spr.h are in
 * verkle_api.c; the orderings and searches used here in verkle_witness_order.c).
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

typedef struct {
    key_ref *keys;
    stem_info *stems;
    uint8_t *others_sorted;
    uint8_t *other_used;
    vk_item *items;
    uint8_t (*path_list)[33]; /* path bytes || length */
    vk_affine *comms;
    fe *xs, *yn, *yd, *tmp, *maps;
    uint32_t *qc;
    uint8_t *qz;
    fe *qy;
} wk_mem;

static void wk_free(wk_mem *m)
{
    free(m->keys);
    free(m->stems);
    free(m->others_sorted);
    free(m->other_used);
    free(m->items);
    free(m->path_list);
    free(m->comms);
    free(m->xs);
    free(m->yn);
    free(m->yd);
    free(m->tmp);
    free(m->maps);
    free(m->qc);
    free(m->qz);
    free(m->qy);
}

static int verify_witness(const uint8_t root[32], const uint8_t *w, size_t len, uint8_t *out,
                          size_t out_len, spr_verkle_stats *stats, wk_mem *m)
{

    vk_timing timing = {0};
    /* -- layout -- */
    if (len < 4) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    size_t n_keys = rd32(w);
    if (n_keys > SPR_VERKLE_MAX_KEYS) {
        return SPR_ERR_VERKLE_LIMIT;
    }
    if (n_keys == 0) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    size_t off = 4;
    if (len - off < n_keys * KEY_LEN + 4) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    const uint8_t *keys = w + off;
    off += n_keys * KEY_LEN;
    size_t n_hints = rd32(w + off);
    off += 4;
    if (n_hints > n_keys || len - off < n_hints + 4) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    const uint8_t *hints = w + off;
    off += n_hints;
    size_t n_other = rd32(w + off);
    off += 4;
    if (n_other > n_keys || len - off < n_other * 31 + 4) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    const uint8_t *others = w + off;
    off += n_other * 31;
    size_t n_comms = rd32(w + off);
    off += 4;
    if (n_comms > SPR_VERKLE_MAX_COMMITMENTS) {
        return SPR_ERR_VERKLE_LIMIT;
    }
    if (n_comms > n_keys * 34 || len - off != n_comms * 32 + SPR_VERKLE_PROOF_LEN) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    const uint8_t *comms_enc = w + off;
    const uint8_t *proof = comms_enc + n_comms * 32;
    if (out != NULL && out_len < n_keys * 33) {
        return SPR_ERR_BUFFER;
    }

    /* -- keys: flags, duplicates, distinct stems -- */
    m->keys = malloc(n_keys * sizeof *m->keys);
    m->stems = malloc(n_keys * sizeof *m->stems);
    m->others_sorted = malloc(n_other ? n_other * 31 : 1);
    m->other_used = calloc(n_other ? n_other : 1, 1);
    if (!m->keys || !m->stems || !m->others_sorted || !m->other_used) {
        return SPR_ERR_VERKLE_NOMEM;
    }
    static const uint8_t ZERO32[32] = {0};
    for (size_t i = 0; i < n_keys; i++) {
        const uint8_t *k = keys + i * KEY_LEN;
        if (k[32] > 1 || (k[32] == 0 && memcmp(k + 33, ZERO32, 32) != 0)) {
            return SPR_ERR_VERKLE_ENCODING;
        }
        m->keys[i].rec = k;
        m->keys[i].index = (uint32_t)i;
    }
    qsort(m->keys, n_keys, sizeof *m->keys, cmp_key);
    size_t n_stems = 0;
    for (size_t i = 0; i < n_keys; i++) {
        if (i > 0 && memcmp(m->keys[i].rec, m->keys[i - 1].rec, 32) == 0) {
            return SPR_ERR_VERKLE_ENCODING; /* duplicate key */
        }
        if (i == 0 || memcmp(m->keys[i].rec, m->keys[i - 1].rec, 31) != 0) {
            m->stems[n_stems++].stem = m->keys[i].rec;
        }
    }
    if (n_hints != n_stems) {
        return SPR_ERR_VERKLE_ENCODING;
    }
    for (size_t s = 0; s < n_stems; s++) {
        uint8_t h = hints[s];
        stem_info *si = &m->stems[s];
        si->ext = h & 3;
        si->depth = h >> 3;
        if (si->ext == 3 || (h & 4) || si->depth == 0 || (si->ext == 1 && si->depth == 31)) {
            return SPR_ERR_VERKLE_ENCODING;
        }
    }
    if (n_other > 0) {
        memcpy(m->others_sorted, others, n_other * 31);
        qsort(m->others_sorted, n_other, 31, cmp_stem31);
        for (size_t i = 1; i < n_other; i++) {
            if (memcmp(m->others_sorted + 31 * i, m->others_sorted + 31 * (i - 1), 31) == 0) {
                return SPR_ERR_VERKLE_ENCODING;
            }
        }
    }

    /* -- openings -- */
    size_t max_items = n_stems * 33 + n_keys * 3;
    m->items = malloc(max_items * sizeof *m->items);
    if (!m->items) {
        return SPR_ERR_VERKLE_NOMEM;
    }
    size_t n_items = 0;
    fe one = VK_FR.one, zero = {{0, 0, 0, 0}};
    fe two128;
    {
        uint8_t b[32] = {0};
        b[16] = 1;
        fe_from_bytes_le(&two128, b, FR);
    }
    size_t key_pos = 0;
    for (size_t s = 0; s < n_stems; s++) {
        const stem_info *si = &m->stems[s];
        const uint8_t *stem = si->stem;
        size_t d = si->depth;
        for (size_t i = 0; i < d; i++) {
            int empty_here = si->ext == 0 && i == d - 1;
            push_item(m->items, &n_items, stem, i, -1, stem[i], empty_here ? &zero : NULL);
        }
        if (si->ext != 0) {
            push_item(m->items, &n_items, stem, d, -1, 0, &one);
        }
        if (si->ext == 2) {
            uint8_t b[32] = {0};
            memcpy(b, stem, 31);
            fe sv;
            fe_from_bytes_le(&sv, b, FR); /* < 2^248 < r */
            push_item(m->items, &n_items, stem, d, -1, 1, &sv);
        } else if (si->ext == 1) {
            /* the stem found at stem[0..d]: a present stem of the witness, else an other stem
               (both lists are sorted: the candidates sharing stem[0..d] are contiguous) */
            size_t found = 0;
            for (size_t t = prefix_lower_bound(m->stems, n_stems, stem, d);
                 t < n_stems && memcmp(m->stems[t].stem, stem, d) == 0 && found < 2; t++) {
                found += m->stems[t].ext == 2;
            }
            if (found > 1) {
                return SPR_ERR_VERKLE_INCONSISTENT;
            }
            if (found == 1) {
                push_item(m->items, &n_items, stem, d, -1, 1, NULL);
            } else {
                size_t o = other_lower_bound(m->others_sorted, n_other, stem, d);
                if (o >= n_other || memcmp(m->others_sorted + 31 * o, stem, d) != 0 ||
                    (o + 1 < n_other && memcmp(m->others_sorted + 31 * (o + 1), stem, d) == 0)) {
                    return SPR_ERR_VERKLE_INCONSISTENT; /* none, or more than one */
                }
                const uint8_t *os = m->others_sorted + 31 * o;
                size_t t = prefix_lower_bound(m->stems, n_stems, os, 31);
                if (t < n_stems && memcmp(m->stems[t].stem, os, 31) == 0) {
                    return SPR_ERR_VERKLE_INCONSISTENT; /* the "other" stem is one of ours */
                }
                m->other_used[o] = 1;
                uint8_t b[32] = {0};
                memcpy(b, os, 31);
                fe sv;
                fe_from_bytes_le(&sv, b, FR);
                push_item(m->items, &n_items, stem, d, -1, 1, &sv);
            }
        }
        /* keys of this stem */
        while (key_pos < n_keys && memcmp(m->keys[key_pos].rec, stem, 31) == 0) {
            const uint8_t *k = m->keys[key_pos].rec;
            key_pos++;
            int present = k[32];
            if (si->ext != 2) {
                if (present) {
                    return SPR_ERR_VERKLE_INCONSISTENT; /* a value for a key proven absent */
                }
                continue;
            }
            uint8_t suffix = k[31];
            uint8_t which = suffix < 128 ? 2 : 3;
            push_item(m->items, &n_items, stem, d, -1, which, NULL);
            fe lo = zero, hi = zero;
            if (present) {
                uint8_t b[32] = {0};
                memcpy(b, k + 33, 16);
                fe_from_bytes_le(&lo, b, FR);
                fe_add(&lo, &lo, &two128, FR);
                memcpy(b, k + 49, 16);
                fe_from_bytes_le(&hi, b, FR);
            }
            uint8_t zl = (uint8_t)(2 * (suffix % 128));
            push_item(m->items, &n_items, stem, d, which, zl, &lo);
            push_item(m->items, &n_items, stem, d, which, (uint8_t)(zl + 1), &hi);
        }
    }
    for (size_t o = 0; o < n_other; o++) {
        if (!m->other_used[o]) {
            return SPR_ERR_VERKLE_INCONSISTENT;
        }
    }
    qsort(m->items, n_items, sizeof *m->items, cmp_item);

    /* -- distinct (path, z) and distinct paths -- */
    size_t n_q = 0, n_paths = 0;
    m->path_list = malloc(n_items * sizeof *m->path_list);
    m->qc = malloc(n_items * sizeof *m->qc);
    m->qz = malloc(n_items);
    m->qy = malloc(n_items * sizeof *m->qy);
    if (!m->path_list || !m->qc || !m->qz || !m->qy) {
        return SPR_ERR_VERKLE_NOMEM;
    }
    for (size_t i = 0; i < n_items;) {
        size_t j = i;
        const vk_item *first = &m->items[i];
        int has = 0;
        fe y = zero;
        while (j < n_items && cmp_item(&m->items[j], first) == 0) {
            if (m->items[j].explicit_y) {
                if (has && !fe_eq(&y, &m->items[j].y)) {
                    return SPR_ERR_VERKLE_INCONSISTENT;
                }
                y = m->items[j].y;
                has = 1;
            }
            j++;
        }
        if (n_paths == 0 ||
            cmp_path(m->path_list[n_paths - 1], m->path_list[n_paths - 1][32], first->path,
                     first->plen) != 0) {
            memcpy(m->path_list[n_paths], first->path, 32);
            m->path_list[n_paths][32] = first->plen;
            n_paths++;
        }
        m->qc[n_q] = (uint32_t)(n_paths - 1);
        m->qz[n_q] = first->z;
        m->qy[n_q] = y;
        /* items[n_q] (already consumed: n_q <= i) now records whether y comes from a child */
        m->items[n_q].explicit_y = (uint8_t)has;
        m->items[n_q].z = first->z;
        n_q++;
        i = j;
    }
    if (n_paths != n_comms + 1 || m->path_list[0][32] != 0) {
        return SPR_ERR_VERKLE_ENCODING; /* commitments do not match the proof's paths */
    }

    /* -- decode the root and every commitment (batched inversions) -- */
    uint64_t t_dec = vk_now_ns();
    size_t nc = n_paths;
    m->comms = malloc(nc * sizeof *m->comms);
    m->xs = malloc(nc * sizeof *m->xs);
    m->yn = malloc(nc * sizeof *m->yn);
    m->yd = malloc(nc * sizeof *m->yd);
    m->tmp = malloc(nc * sizeof *m->tmp);
    m->maps = malloc(nc * sizeof *m->maps);
    if (!m->comms || !m->xs || !m->yn || !m->yd || !m->tmp || !m->maps) {
        return SPR_ERR_VERKLE_NOMEM;
    }
    uint8_t(*enc)[32] = malloc(nc * 32);
    if (!enc) {
        return SPR_ERR_VERKLE_NOMEM;
    }
    memcpy(enc[0], root, 32);
    memcpy(enc[1], comms_enc, n_comms * 32);
    int st = SPR_OK;
    for (size_t i = 0; i < nc && st == SPR_OK; i++) {
        st = vk_decode_partial(&m->xs[i], &m->yn[i], &m->yd[i], enc[i]);
    }
    vk_multiproof mp;
    if (st == SPR_OK) {
        st = vk_multiproof_decode(&mp, proof);
    }
    if (st != SPR_OK) {
        free(enc);
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
    uint64_t decode_ns = vk_now_ns() - t_dec;

    /* -- values that come from child commitments -- */
    for (size_t q = 0; q < n_q; q++) {
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
        long c = find_path(m->path_list, n_paths, child, pl + 1);
        m->qy[q] = c >= 0 ? m->maps[c] : zero;
    }

    vk_transcript tr;
    vk_tr_init(&tr, "vt", 2);
    st = vk_multiproof_verify(&tr, m->comms, (const uint8_t(*)[32])enc, nc, m->qc, m->qz, m->qy,
                              n_q, &mp, &timing);
    free(enc);
    if (stats != NULL) {
        stats->n_keys = n_keys;
        stats->n_commitments = nc;
        stats->n_queries = n_q;
        stats->msm_ns = timing.msm_ns;
        stats->decode_ns = decode_ns;
    }
    if (st != SPR_OK) {
        return st;
    }
    if (out != NULL) {
        for (size_t i = 0; i < n_keys; i++) {
            const uint8_t *k = keys + i * KEY_LEN;
            out[33 * i] = k[32];
            memcpy(out + 33 * i + 1, k + 33, 32);
        }
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
