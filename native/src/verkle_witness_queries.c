/* verkle_witness_queries.c - the openings (path, z, y) an execution witness implies, as
 * spr_verkle_verify_witness (verkle_witness.c, whose top comment lists them) checks them: built
 * per stem and per key, sorted by (path, z), then reduced to the distinct queries and paths the
 * multiproof opens. */
#include <stdlib.h>

#include "verkle_witness.h"

#define FR (&VK_FR)

static const fe ZERO_FE = {{0, 0, 0, 0}};

/* A stem as a little-endian scalar (< 2^248 < r). */
static void stem_scalar(fe *out, const uint8_t stem[31])
{
    uint8_t b[32] = {0};
    memcpy(b, stem, 31);
    fe_from_bytes_le(out, b, FR);
}

/* The opening (P, 1, the stem found there) of a stem with the other-stem status at depth d, P =
   stem[0..d]: a present stem of the witness sharing P (y implied), else the one other stem that
   does (marked used), which must not be a stem of the witness. */
static int push_other_stem(wk_witness *x, wk_mem *m, const uint8_t *stem, size_t d)
{
    /* both lists are sorted: the candidates sharing stem[0..d] are contiguous */
    size_t found = 0;
    for (size_t t = prefix_lower_bound(m->stems, x->n_stems, stem, d);
         t < x->n_stems && memcmp(m->stems[t].stem, stem, d) == 0 && found < 2; t++) {
        found += m->stems[t].ext == 2;
    }
    if (found > 1) {
        return SPR_ERR_VERKLE_INCONSISTENT;
    }
    if (found == 1) {
        push_item(m->items, &x->n_items, stem, d, -1, 1, NULL);
        return SPR_OK;
    }
    const size_t n_other = x->n_other;
    size_t o = other_lower_bound(m->others_sorted, n_other, stem, d);
    if (o >= n_other || memcmp(m->others_sorted + 31 * o, stem, d) != 0 ||
        (o + 1 < n_other && memcmp(m->others_sorted + 31 * (o + 1), stem, d) == 0)) {
        return SPR_ERR_VERKLE_INCONSISTENT; /* none, or more than one */
    }
    const uint8_t *os = m->others_sorted + 31 * o;
    size_t t = prefix_lower_bound(m->stems, x->n_stems, os, 31);
    if (t < x->n_stems && memcmp(m->stems[t].stem, os, 31) == 0) {
        return SPR_ERR_VERKLE_INCONSISTENT; /* the "other" stem is one of ours */
    }
    m->other_used[o] = 1;
    fe sv;
    stem_scalar(&sv, os);
    push_item(m->items, &x->n_items, stem, d, -1, 1, &sv);
    return SPR_OK;
}

/* The openings of one stem's leaf: (P, 0, 1) and (P, 1, ...) unless the stem is proven empty
   (then only its internal nodes are opened), the last internal one at 0 for an empty stem. */
static int push_stem_openings(wk_witness *x, wk_mem *m, const stem_info *si)
{
    const uint8_t *stem = si->stem;
    const size_t d = si->depth;
    for (size_t i = 0; i < d; i++) {
        int empty_here = si->ext == 0 && i == d - 1;
        push_item(m->items, &x->n_items, stem, i, -1, stem[i], empty_here ? &ZERO_FE : NULL);
    }
    if (si->ext != 0) {
        push_item(m->items, &x->n_items, stem, d, -1, 0, &VK_FR.one);
    }
    if (si->ext == 2) {
        fe sv;
        stem_scalar(&sv, stem);
        push_item(m->items, &x->n_items, stem, d, -1, 1, &sv);
    } else if (si->ext == 1) {
        return push_other_stem(x, m, stem, d);
    }
    return SPR_OK;
}

/* The openings of the keys of stem si from key_pos on (advanced past them): on a present stem,
   (P, 2 + k/128, implied) and on P||(2 + k/128) the value's low half + 2^128 and its high half
   (0 and 0 when absent); a key of a stem proven absent must have no value. */
static int push_key_openings(wk_witness *x, wk_mem *m, const stem_info *si, size_t *key_pos)
{
    const uint8_t *stem = si->stem;
    const size_t d = si->depth;
    for (; *key_pos < x->n_keys && memcmp(m->keys[*key_pos].rec, stem, 31) == 0; ++*key_pos) {
        const uint8_t *k = m->keys[*key_pos].rec;
        int present = k[32];
        if (si->ext != 2) {
            if (present) {
                return SPR_ERR_VERKLE_INCONSISTENT; /* a value for a key proven absent */
            }
            continue;
        }
        uint8_t suffix = k[31];
        uint8_t which = suffix < 128 ? 2 : 3;
        push_item(m->items, &x->n_items, stem, d, -1, which, NULL);
        fe lo = ZERO_FE, hi = ZERO_FE;
        if (present) {
            uint8_t b[32] = {0};
            memcpy(b, k + 33, 16);
            fe_from_bytes_le(&lo, b, FR);
            fe_add(&lo, &lo, &x->two128, FR);
            memcpy(b, k + 49, 16);
            fe_from_bytes_le(&hi, b, FR);
        }
        uint8_t zl = (uint8_t)(2 * (suffix % 128));
        push_item(m->items, &x->n_items, stem, d, which, zl, &lo);
        push_item(m->items, &x->n_items, stem, d, which, (uint8_t)(zl + 1), &hi);
    }
    return SPR_OK;
}

/* Every opening the witness implies (see the top of this file), sorted by (path, z); every
   other stem must have been used. */
int wk_build_openings(wk_witness *x, wk_mem *m)
{
    m->items = malloc((x->n_stems * 33 + x->n_keys * 3) * sizeof *m->items);
    if (!m->items) {
        return SPR_ERR_VERKLE_NOMEM;
    }
    x->n_items = 0;
    uint8_t b[32] = {0};
    b[16] = 1;
    fe_from_bytes_le(&x->two128, b, FR);
    size_t key_pos = 0;
    for (size_t s = 0; s < x->n_stems; s++) {
        int st = push_stem_openings(x, m, &m->stems[s]);
        if (st == SPR_OK) {
            st = push_key_openings(x, m, &m->stems[s], &key_pos);
        }
        if (st != SPR_OK) {
            return st;
        }
    }
    for (size_t o = 0; o < x->n_other; o++) {
        if (!m->other_used[o]) {
            return SPR_ERR_VERKLE_INCONSISTENT;
        }
    }
    qsort(m->items, x->n_items, sizeof *m->items, cmp_item);
    return SPR_OK;
}

/* The distinct (path, z) of the sorted openings as queries (qc: the path's index among the
   distinct paths, qz, qy), their explicit y all equal; items[q] then records whether query q's
   y is explicit (else it comes from a child commitment). */
int wk_distinct_queries(wk_witness *x, wk_mem *m)
{
    const size_t n_items = x->n_items;
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
        fe y = ZERO_FE;
        for (; j < n_items && cmp_item(&m->items[j], first) == 0; j++) {
            if (m->items[j].explicit_y) {
                if (has && !fe_eq(&y, &m->items[j].y)) {
                    return SPR_ERR_VERKLE_INCONSISTENT;
                }
                y = m->items[j].y;
                has = 1;
            }
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
    x->n_q = n_q;
    x->n_paths = n_paths;
    return SPR_OK;
}
