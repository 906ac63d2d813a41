/*
 * verkle_witness.h - the types and helpers of the execution witness check (verkle_witness.c,
 * verkle_witness_queries.c, verkle_witness_order.c), internal to native/src.
 */
#ifndef SPR_VERKLE_WITNESS_H
#define SPR_VERKLE_WITNESS_H

#include "spr.h"
#include "verkle_internal.h"

/* Hidden even in a build without -fvisibility=hidden: not part of the interface (spr.h). */
#pragma GCC visibility push(hidden)

#define KEY_LEN SPR_VERKLE_KEY_RECORD_LEN

/* One opening (path, z, y) the multiproof must check; y is implied by the path when not
   explicit_y. */
typedef struct {
    uint8_t path[32];
    uint8_t plen;
    uint8_t z;
    uint8_t explicit_y;
    fe y;
} vk_item;

/* A key record of the witness and its index in the stateDiff. */
typedef struct {
    const uint8_t *rec;
    uint32_t index;
} key_ref;

typedef struct {
    const uint8_t *stem; /* 31 bytes */
    uint8_t depth;
    uint8_t ext; /* 0 empty, 1 other stem, 2 present */
} stem_info;

/* Byte-lexicographic order of paths, a prefix first: <0, 0, >0. */
int cmp_path(const uint8_t *a, size_t la, const uint8_t *b, size_t lb);
/* qsort comparators: vk_item by (path, z); key_ref by its 32-byte key; 31-byte stems. */
int cmp_item(const void *pa, const void *pb);
int cmp_key(const void *pa, const void *pb);
int cmp_stem31(const void *pa, const void *pb);
/* First index of the sorted stems whose first `len` bytes are >= key's. */
size_t prefix_lower_bound(const stem_info *stems, size_t n, const uint8_t *key, size_t len);
/* The same over the sorted other stems (31 bytes each, back to back). */
size_t other_lower_bound(const uint8_t *others, size_t n, const uint8_t *key, size_t len);
/* Append the opening (stem[0..plen] || tail if tail >= 0, z, y or implied when y is NULL). */
void push_item(vk_item *items, size_t *n, const uint8_t *stem, size_t plen, int tail, uint8_t z,
               const fe *y);
/* Index of the distinct path equal to (p, len) in the sorted path list, or -1. */
long find_path(uint8_t (*paths)[33], size_t n, const uint8_t *p, size_t len);

/* The buffers of one witness check (freed together). */
typedef struct {
    key_ref *keys;
    stem_info *stems;
    uint8_t *others_sorted;
    uint8_t *other_used;
    vk_item *items;
    uint8_t (*path_list)[33]; /* path bytes || length */
    vk_affine *comms;
    uint8_t (*enc)[32]; /* the root and the commitments, encoded */
    fe *xs, *yn, *yd, *tmp, *maps;
    uint32_t *qc;
    uint8_t *qz;
    fe *qy;
} wk_mem;

/* A witness's parts (pointers into it) and the counts derived from them. */
typedef struct {
    size_t n_keys, n_hints, n_other, n_comms;
    const uint8_t *keys;   /* n_keys records of KEY_LEN bytes */
    const uint8_t *hints;  /* one byte per distinct stem: depth << 3 | extension status */
    const uint8_t *others; /* n_other stems of 31 bytes */
    const uint8_t *comms_enc;
    const uint8_t *proof;
    size_t n_stems;  /* distinct stems of the keys */
    size_t n_items;  /* openings, then sorted */
    size_t n_q;      /* distinct (path, z) queries */
    size_t n_paths;  /* distinct paths = commitments, the root's first */
    fe two128;       /* 2^128 in Fr: marks a present value's low half */
} wk_witness;

/* The openings of the witness x into m->items (x->n_items), sorted by (path, z); every other
   stem must be used: SPR_OK, SPR_ERR_VERKLE_INCONSISTENT or SPR_ERR_VERKLE_NOMEM. */
int wk_build_openings(wk_witness *x, wk_mem *m);
/* The distinct (path, z) of the sorted openings as queries m->qc, qz, qy (x->n_q) over the
   distinct paths m->path_list (x->n_paths); items[q].explicit_y whether query q's y is given. */
int wk_distinct_queries(wk_witness *x, wk_mem *m);

#pragma GCC visibility pop

#endif
