/*
 * spr_internal.h - helpers shared by the native sources; not part of the public interface.
 */
#ifndef SPR_INTERNAL_H
#define SPR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "spr.h"

/* Hidden even in a build without -fvisibility=hidden: not part of the interface (spr.h). */
#pragma GCC visibility push(hidden)

/* keccak-256 without argument checks (data may be NULL only when len == 0). */
void spr_keccak256_unchecked(const uint8_t *data, size_t len, uint8_t out[32]);

/* out[i] = keccak256(in[i][0..len)) for eight messages of the same length; eight lanes of
   AVX-512 when spr_keccak_x8_available(), eight scalar calls otherwise. */
void spr_keccak256_x8(const uint8_t *const in[8], size_t len, uint8_t *const out[8]);

/* As spr_keccak256_x8 for eight messages of any lengths len[i]; costs as many eight-lane
   permutations as the longest message needs (lengths in the same 136-byte block count waste
   nothing). */
void spr_keccak256_x8v(const uint8_t *const in[8], const size_t len[8], uint8_t *const out[8]);

/* 1 when this CPU runs spr_keccak256_x8 with AVX-512, else 0. */
int spr_keccak_x8_available(void);

/* The header of one RLP item (Yellow Paper, appendix B). The item occupies [start, end);
   its payload is [off, off + len). */
typedef struct {
    size_t start;
    size_t off;
    size_t len;
    size_t end;
    int is_list;
} spr_rlp_head;

/* Parse the header of the item at d[pos], which must lie entirely inside d[0..limit)
   (pos <= limit). Strict: rejects a single byte < 0x80 encoded as a string, the long form for
   payloads shorter than 56 bytes, and length-of-length fields with leading zero bytes. */
static inline int spr_rlp_head_parse(const uint8_t *d, size_t pos, size_t limit, spr_rlp_head *h)
{
    if (pos >= limit) {
        return SPR_ERR_RLP_TRUNCATED;
    }
    const uint8_t b = d[pos];
    size_t avail = limit - pos - 1; /* bytes after the prefix byte */
    h->start = pos;
    if (b < 0x80) {
        h->off = pos;
        h->len = 1;
        h->end = pos + 1;
        h->is_list = 0;
        return SPR_OK;
    }
    const int is_list = b >= 0xc0;
    const unsigned small = (unsigned)b - (is_list ? 0xc0u : 0x80u);
    size_t hdr = 1;
    size_t len;
    if (small <= 55) {
        len = small;
        if (len > avail) {
            return SPR_ERR_RLP_TRUNCATED;
        }
        if (!is_list && len == 1 && d[pos + 1] < 0x80) {
            return SPR_ERR_RLP_NONCANONICAL;
        }
    } else {
        const size_t ll = small - 55; /* 1..8 length bytes */
        if (ll > avail) {
            return SPR_ERR_RLP_TRUNCATED;
        }
        if (d[pos + 1] == 0) {
            return SPR_ERR_RLP_NONCANONICAL;
        }
        uint64_t big = 0;
        for (size_t i = 0; i < ll; i++) {
            big = (big << 8) | d[pos + 1 + i];
        }
        if (big < 56) {
            return SPR_ERR_RLP_NONCANONICAL;
        }
        avail -= ll;
        hdr += ll;
        if (big > (uint64_t)avail) {
            return SPR_ERR_RLP_TRUNCATED;
        }
        len = (size_t)big;
    }
    h->off = pos + hdr;
    h->len = len;
    h->end = h->off + len;
    h->is_list = is_list;
    return SPR_OK;
}

/* Maximum list nesting accepted inside a trie node (an embedded node is < 32 bytes, so 32
   levels is more than any canonical node can have). */
#define SPR_NODE_MAX_NEST 32

/* Strictly validate the sequence of items exactly covering d[start..end), descending into lists
   up to SPR_NODE_MAX_NEST levels (deeper: SPR_ERR_MALFORMED_NODE). Iterative. */
int spr_rlp_check_seq(const uint8_t *d, size_t start, size_t end);

/* ---- verified-node cache (batch verification, batch.c) ------------------------------------ */
/* One node whose keccak was computed and found equal to `hash`. `node` points into the
   caller's proof buffer (valid for the duration of one call); node == NULL marks a free entry. */
typedef struct {
    uint8_t hash[32];
    const uint8_t *node;
    size_t len; /* the node's length, plus SPR_CACHE_VALID_BRANCH once it was parsed and
                   checked as a canonical branch node (a later hit then skips those checks) */
} spr_cache_entry;

#define SPR_CACHE_VALID_BRANCH ((size_t)1 << (sizeof(size_t) * 8 - 1))

/* An open-addressing table (linear probing, indexed by the first 8 bytes of the hash) over
   caller-supplied memory. A hit needs the full 32-byte hash and the node bytes to be equal, so
   a node is accepted from the cache only if byte-identical to one already hashed. When
   `used` reaches `limit`, nothing more is inserted (nodes are then simply hashed again). */
typedef struct {
    spr_cache_entry *entries; /* capacity = mask + 1 (a power of two), or NULL: no cache */
    const uint8_t *const *reps; /* NULL, or for each node of the proof being walked the first
                                   byte-identical node of the call (an entry whose `node` is
                                   that pointer holds these very bytes: no memcmp needed) */
    size_t mask;
    size_t used;
    size_t limit;
    uint64_t hashed_nodes; /* keccak calls made on proof nodes */
    uint64_t hashed_bytes; /* bytes those calls hashed */
    uint64_t cached_nodes; /* references satisfied by a cache hit */
} spr_hash_cache;

/* Insert a node (len bytes) whose keccak-256 is `hash`; its entry, or NULL when the table is
   full (`used` reached `limit`). */
spr_cache_entry *spr_cache_insert(spr_hash_cache *c, const uint8_t hash[32], const uint8_t *node,
                                  size_t len);

/* spr_mpt_verify with an optional cache (NULL: hash every node, as spr_mpt_verify does). */
int spr_mpt_walk(const uint8_t root[32], const uint8_t *key, size_t key_len,
                 const uint8_t *nodes, size_t nodes_len, const size_t *node_lens, size_t n_nodes,
                 size_t *value_off, size_t *value_len, spr_hash_cache *cache);

/* Decode a proven account value rlp([nonce, balance, storageRoot, codeHash]) into *account
   (zeroed on error): SPR_OK or SPR_ERR_BAD_VALUE. */
int spr_account_from_value(const uint8_t *v, size_t vl, spr_account *account);

/* Decode a proven storage leaf value rlp(non-zero uint256) into a 32-byte word (zeroed on
   error): SPR_OK or SPR_ERR_BAD_VALUE. */
int spr_storage_from_value(const uint8_t *v, size_t vl, uint8_t out[32]);

#pragma GCC visibility pop

#endif /* SPR_INTERNAL_H */
