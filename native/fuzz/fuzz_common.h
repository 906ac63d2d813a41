/*
 * fuzz_common.h - input splitting shared by the fuzz harnesses (native/fuzz/fuzz_*.c).
 *
 * A harness input is read front to back by a `fz_reader`; reads past the end yield zero bytes,
 * so every input, however short, maps to one well-formed call of the C API. Proof nodes are
 * length-prefixed: a little-endian u16 length, then that many bytes (clamped to what is left).
 * The layouts are documented in each harness and produced by native/fuzz/make_seeds.py.
 *
 * FZ_CHECK(cond) aborts on a violated invariant, which libFuzzer (and the replay driver under
 * valgrind) reports as a crash with the input saved.
 */
#ifndef SPR_FUZZ_COMMON_H
#define SPR_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spr.h"
#include "spr_internal.h"

#define FZ_CHECK(cond)                                                                       \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* Most proof nodes a harness input can carry: above SPR_MPT_MAX_DEPTH + 1 so that the
   SPR_ERR_TOO_DEEP limit is reachable. */
#define FZ_MAX_NODES 72

typedef struct {
    const uint8_t *p;
    size_t n;
} fz_reader;

/* Copy the next `len` input bytes into out, zero-filling past the end of the input. */
static inline void fz_take(fz_reader *r, uint8_t *out, size_t len)
{
    size_t k = len < r->n ? len : r->n;
    if (k > 0) {
        memcpy(out, r->p, k);
    }
    if (len > k) {
        memset(out + k, 0, len - k);
    }
    r->p += k;
    r->n -= k;
}

static inline unsigned fz_u8(fz_reader *r)
{
    uint8_t b;
    fz_take(r, &b, 1);
    return b;
}

static inline size_t fz_u16(fz_reader *r)
{
    uint8_t b[2];
    fz_take(r, b, 2);
    return (size_t)b[0] | ((size_t)b[1] << 8);
}

/* A proof: n nodes copied into one exact-size heap buffer (so ASan and valgrind see any read
   past its end) with their lengths. */
typedef struct {
    uint8_t *bytes;
    size_t len;
    size_t lens[FZ_MAX_NODES];
    size_t n;
} fz_proof;

/* Read `count` length-prefixed nodes (count = SIZE_MAX: until the input is exhausted, at most
   FZ_MAX_NODES). Returns 0, or -1 if out of memory. */
static inline int fz_read_proof(fz_reader *r, size_t count, fz_proof *pf)
{
    const uint8_t *starts[FZ_MAX_NODES];
    pf->n = 0;
    pf->len = 0;
    while (pf->n < FZ_MAX_NODES && (count == SIZE_MAX ? r->n > 0 : pf->n < count)) {
        size_t len = fz_u16(r);
        if (len > r->n) {
            len = r->n;
        }
        starts[pf->n] = r->p;
        pf->lens[pf->n] = len;
        pf->len += len;
        pf->n++;
        r->p += len;
        r->n -= len;
    }
    pf->bytes = malloc(pf->len ? pf->len : 1);
    if (pf->bytes == NULL) {
        return -1;
    }
    size_t off = 0;
    for (size_t i = 0; i < pf->n; i++) {
        if (pf->lens[i] > 0) {
            memcpy(pf->bytes + off, starts[i], pf->lens[i]);
        }
        off += pf->lens[i];
    }
    return 0;
}

/* Is `status` a value the proof functions may return for consistent arguments? */
static inline int fz_proof_status_ok(int status)
{
    switch (status) {
    case SPR_OK:
    case SPR_ABSENT:
    case SPR_ERR_RLP_TRUNCATED:
    case SPR_ERR_RLP_NONCANONICAL:
    case SPR_ERR_RLP_TRAILING:
    case SPR_ERR_RLP_EMPTY:
    case SPR_ERR_HASH_MISMATCH:
    case SPR_ERR_MISSING_NODE:
    case SPR_ERR_TRAILING_NODES:
    case SPR_ERR_TOO_DEEP:
    case SPR_ERR_MALFORMED_NODE:
    case SPR_ERR_BAD_VALUE:
        return 1;
    default:
        return 0;
    }
}

static inline int fz_is_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != 0) {
            return 0;
        }
    }
    return 1;
}

/* keccak256(rlp("")): the empty-trie root. */
static const uint8_t FZ_EMPTY_TRIE_ROOT[32] = {
    0x56, 0xe8, 0x1f, 0x17, 0x1b, 0xcc, 0x55, 0xa6, 0xff, 0x83, 0x45, 0xe6, 0x92, 0xc0, 0xf8, 0x6e,
    0x5b, 0x48, 0xe0, 0x1b, 0x99, 0x6c, 0xad, 0xc0, 0x01, 0x62, 0x2f, 0xb5, 0xe3, 0x63, 0xb4, 0x21,
};

#endif /* SPR_FUZZ_COMMON_H */
