/*
 * mpt.c - Merkle-Patricia trie proof verification (Yellow Paper, appendix D "Modified
 * Merkle Patricia Tree", appendix C "Hex-Prefix Encoding"; proofs as returned by EIP-1186
 * eth_getProof).
 *
 * The proof is walked in order: node 0 must hash to the root, and each following node must
 * hash to the reference its predecessor holds on the key's path. Nodes whose RLP is shorter
 * than 32 bytes are embedded in their parent and are walked in place. The walk is a loop
 * bounded by the key's 64 nibbles; nothing is allocated.
 *
 * Canonical form is enforced, so that each (root, key) has exactly one accepted proof shape:
 * branch nodes have 17 items and at least two non-empty ones, references are empty, a 32-byte
 * hash, or an embedded list shorter than 32 bytes; a node referenced by hash is at least 32
 * bytes long; extensions have a non-empty path and lead to a branch; leaves hold a non-empty
 * value; hex-prefix flags are 0..3 with a zero pad nibble for even paths. Two shapes some dev
 * nodes produce are accepted because they are unambiguous: the empty trie's root node 0x80 as
 * a one-node proof against the empty root, and a storage leaf holding rlp(0) = 0x80.
 */
#include "spr_internal.h"

/* keccak256(rlp("")) = keccak256(0x80): the root of the empty trie. */
static const uint8_t EMPTY_TRIE_ROOT[32] = {
    0x56, 0xe8, 0x1f, 0x17, 0x1b, 0xcc, 0x55, 0xa6, 0xff, 0x83, 0x45, 0xe6, 0x92, 0xc0, 0xf8, 0x6e,
    0x5b, 0x48, 0xe0, 0x1b, 0x99, 0x6c, 0xad, 0xc0, 0x01, 0x62, 0x2f, 0xb5, 0xe3, 0x63, 0xb4, 0x21,
};

static inline unsigned nibble_at(const uint8_t *bytes, size_t i)
{
    return (i & 1) ? (bytes[i >> 1] & 0x0fu) : (unsigned)(bytes[i >> 1] >> 4);
}

typedef struct {
    size_t count;
    spr_rlp_head item[17];
} node_items;

/* Decode one trie node spanning d[0..len): a list of 2 or 17 strictly encoded items. */
static int parse_node(const uint8_t *d, size_t len, node_items *nd)
{
    spr_rlp_head top;
    int rc = spr_rlp_head_parse(d, 0, len, &top);
    if (rc != SPR_OK) {
        return rc;
    }
    if (!top.is_list) {
        return SPR_ERR_MALFORMED_NODE;
    }
    if (top.end != len) {
        return SPR_ERR_RLP_TRAILING;
    }
    rc = spr_rlp_check_seq(d, top.off, top.end);
    if (rc != SPR_OK) {
        return rc;
    }
    size_t pos = top.off;
    nd->count = 0;
    while (pos < top.end) {
        if (nd->count == 17) {
            return SPR_ERR_MALFORMED_NODE;
        }
        rc = spr_rlp_head_parse(d, pos, top.end, &nd->item[nd->count]);
        if (rc != SPR_OK) {
            return rc;
        }
        pos = nd->item[nd->count].end;
        nd->count++;
    }
    if (nd->count != 2 && nd->count != 17) {
        return SPR_ERR_MALFORMED_NODE;
    }
    return SPR_OK;
}

/* A non-empty child reference: a 32-byte hash or an embedded node shorter than 32 bytes. */
static inline int is_child_ref(const spr_rlp_head *c)
{
    return c->is_list ? (c->end - c->start < 32) : (c->len == 32);
}

/* The entry of a node byte-identical to `node` (len bytes) already hashed to `want`, or NULL.
   `rep` (may be NULL) is a node known to be byte-identical to `node`. */
static spr_cache_entry *cache_hit(const spr_hash_cache *c, const uint8_t want[32],
                                  const uint8_t *node, const uint8_t *rep, size_t len)
{
    uint64_t h;
    memcpy(&h, want, sizeof h);
    for (size_t i = (size_t)h & c->mask;; i = (i + 1) & c->mask) {
        spr_cache_entry *e = &c->entries[i];
        if (e->node == NULL) {
            return NULL;
        }
        if ((e->len & ~SPR_CACHE_VALID_BRANCH) == len && memcmp(e->hash, want, 32) == 0 &&
            (e->node == node || e->node == rep || memcmp(e->node, node, len) == 0)) {
            return e;
        }
    }
}

spr_cache_entry *spr_cache_insert(spr_hash_cache *c, const uint8_t hash[32], const uint8_t *node,
                                  size_t len)
{
    if (c->used >= c->limit) {
        return NULL; /* full: later nodes are hashed again, never wrongly accepted */
    }
    uint64_t h;
    memcpy(&h, hash, sizeof h);
    size_t i = (size_t)h & c->mask;
    while (c->entries[i].node != NULL) {
        i = (i + 1) & c->mask;
    }
    memcpy(c->entries[i].hash, hash, 32);
    c->entries[i].node = node;
    c->entries[i].len = len;
    c->used++;
    return &c->entries[i];
}

/* Item `index` (0..16) of a branch node d[0..len) already checked by parse_node and the
   branch rules (so its headers parse): only the headers before it are read. */
static int branch_item(const uint8_t *d, size_t len, unsigned index, spr_rlp_head *item)
{
    spr_rlp_head top;
    int rc = spr_rlp_head_parse(d, 0, len, &top);
    size_t pos = top.off;
    for (unsigned k = 0; rc == SPR_OK; k++) {
        rc = spr_rlp_head_parse(d, pos, top.end, item);
        if (k == index) {
            break;
        }
        pos = item->end;
    }
    return rc;
}

int spr_mpt_verify(const uint8_t root[32], const uint8_t *key, size_t key_len,
                   const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                   size_t n_nodes, size_t *value_off, size_t *value_len)
{
    return spr_mpt_walk(root, key, key_len, nodes, nodes_len, node_lens, n_nodes, value_off,
                        value_len, NULL);
}

int spr_mpt_walk(const uint8_t root[32], const uint8_t *key, size_t key_len,
                 const uint8_t *nodes, size_t nodes_len, const size_t *node_lens, size_t n_nodes,
                 size_t *value_off, size_t *value_len, spr_hash_cache *cache)
{
    if (root == NULL || value_off == NULL || value_len == NULL || (key == NULL && key_len != 0) ||
        (nodes == NULL && nodes_len != 0) || (node_lens == NULL && n_nodes != 0) ||
        key_len > SPR_MPT_MAX_KEY_LEN) {
        return SPR_ERR_ARG;
    }
    *value_off = 0;
    *value_len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_nodes; i++) {
        if (node_lens[i] > nodes_len - total) {
            return SPR_ERR_ARG;
        }
        total += node_lens[i];
    }
    if (total != nodes_len) {
        return SPR_ERR_ARG;
    }
    if (n_nodes > SPR_MPT_MAX_DEPTH + 1) {
        return SPR_ERR_TOO_DEEP; /* longer than any path of a 64-nibble key */
    }
    if (memcmp(root, EMPTY_TRIE_ROOT, 32) == 0) {
        /* the empty trie: no node (geth, ganache), or its root node rlp("") = 0x80 alone
           (anvil, Hardhat), which hashes to the empty root; anything else is left over */
        if (n_nodes == 0 || (n_nodes == 1 && node_lens[0] == 1 && nodes[0] == 0x80)) {
            return SPR_ABSENT;
        }
        return SPR_ERR_TRAILING_NODES;
    }

    const uint8_t *want = root; /* hash the next proof node must have */
    const size_t total_nib = 2 * key_len;
    size_t next = 0;     /* index of the next unused proof node */
    size_t next_off = 0; /* its offset in `nodes` */
    size_t base = 0;     /* offset of the current node in `nodes` */
    size_t nlen = 0;     /* its length */
    size_t nib = 0;      /* key nibbles consumed */
    size_t vo = 0;
    size_t vl = 0;
    int hashed = 1;    /* the current node is the next proof node, referenced by `want` */
    int after_ext = 0; /* the current node is an extension's child */
    int result;
    for (size_t depth = 0;; depth++) {
        if (depth > SPR_MPT_MAX_DEPTH) {
            return SPR_ERR_TOO_DEEP;
        }
        spr_cache_entry *entry = NULL; /* the cache entry of the current node, if any */
        if (hashed) {
            if (next == n_nodes) {
                return SPR_ERR_MISSING_NODE;
            }
            base = next_off;
            nlen = node_lens[next];
            if (cache == NULL) {
                uint8_t h[32];
                spr_keccak256_unchecked(nodes + base, nlen, h);
                if (memcmp(h, want, 32) != 0) {
                    return SPR_ERR_HASH_MISMATCH;
                }
            } else if (cache->entries != NULL &&
                       (entry = cache_hit(cache, want, nodes + base,
                                          cache->reps != NULL ? cache->reps[next] : NULL, nlen)) !=
                           NULL) {
                cache->cached_nodes++;
            } else {
                uint8_t h[32];
                spr_keccak256_unchecked(nodes + base, nlen, h);
                cache->hashed_nodes++;
                cache->hashed_bytes += nlen;
                if (memcmp(h, want, 32) != 0) {
                    return SPR_ERR_HASH_MISMATCH;
                }
                if (cache->entries != NULL) {
                    entry = spr_cache_insert(cache, h, nodes + base, nlen);
                }
            }
            if (next > 0 && nlen < 32) {
                return SPR_ERR_MALFORMED_NODE; /* must have been embedded in its parent */
            }
            next_off += nlen;
            next++;
        }
        const uint8_t *d = nodes + base;
        spr_rlp_head it;
        if (entry != NULL && (entry->len & SPR_CACHE_VALID_BRANCH) != 0 &&
            branch_item(d, nlen, nib == total_nib ? 16u : nibble_at(key, nib), &it) == SPR_OK) {
            /* a branch already checked in this call: the same steps as below, without
               re-validating its encoding and its other children */
            if (nib == total_nib) {
                if (it.len == 0) {
                    result = SPR_ABSENT;
                } else {
                    vo = base + it.off;
                    vl = it.len;
                    result = SPR_OK;
                }
                break;
            }
            nib++;
            after_ext = 0;
            if (!it.is_list && it.len == 0) {
                result = SPR_ABSENT;
                break;
            }
            if (it.is_list) {
                base += it.start;
                nlen = it.end - it.start;
                hashed = 0;
            } else {
                want = d + it.off;
                hashed = 1;
            }
            continue;
        }
        node_items nd;
        int rc = parse_node(d, nlen, &nd);
        if (rc != SPR_OK) {
            return rc;
        }

        if (nd.count == 17) { /* branch: 16 children and a value */
            size_t nonempty = 0;
            for (int i = 0; i < 16; i++) {
                const spr_rlp_head *c = &nd.item[i];
                if (is_child_ref(c)) {
                    nonempty++;
                } else if (c->is_list || c->len != 0) {
                    return SPR_ERR_MALFORMED_NODE;
                }
            }
            const spr_rlp_head *bv = &nd.item[16];
            if (bv->is_list) {
                return SPR_ERR_MALFORMED_NODE;
            }
            nonempty += bv->len != 0;
            if (nonempty < 2) {
                return SPR_ERR_MALFORMED_NODE; /* would have been a leaf or an extension */
            }
            if (entry != NULL) {
                entry->len |= SPR_CACHE_VALID_BRANCH;
            }
            if (nib == total_nib) { /* key ends here: the branch's own value */
                if (bv->len == 0) {
                    result = SPR_ABSENT;
                } else {
                    vo = base + bv->off;
                    vl = bv->len;
                    result = SPR_OK;
                }
                break;
            }
            const spr_rlp_head *c = &nd.item[nibble_at(key, nib)];
            nib++;
            after_ext = 0;
            if (!c->is_list && c->len == 0) {
                result = SPR_ABSENT; /* empty slot on the path */
                break;
            }
            if (c->is_list) {
                base += c->start;
                nlen = c->end - c->start;
                hashed = 0;
            } else {
                want = d + c->off;
                hashed = 1;
            }
            continue;
        }

        /* two items: leaf or extension with a hex-prefix encoded path (appendix C) */
        if (after_ext) {
            return SPR_ERR_MALFORMED_NODE; /* an extension always leads to a branch */
        }
        const spr_rlp_head *p = &nd.item[0];
        const spr_rlp_head *v = &nd.item[1];
        if (p->is_list || p->len == 0) {
            return SPR_ERR_MALFORMED_NODE;
        }
        const uint8_t *hp = d + p->off;
        const unsigned flag = hp[0] >> 4;
        if (flag > 3) {
            return SPR_ERR_MALFORMED_NODE;
        }
        const size_t odd = flag & 1u;
        const int leaf = (flag & 2u) != 0;
        if (!odd && (hp[0] & 0x0f) != 0) {
            return SPR_ERR_MALFORMED_NODE;
        }
        const size_t plen = 2 * (p->len - 1) + odd;
        const size_t first = odd ? 1 : 2; /* nibble index in hp where the path starts */
        if (leaf) {
            if (v->is_list || v->len == 0) {
                return SPR_ERR_MALFORMED_NODE;
            }
        } else if (plen == 0 || !is_child_ref(v)) {
            return SPR_ERR_MALFORMED_NODE;
        }
        const size_t rest = total_nib - nib;
        int match = leaf ? (rest == plen) : (rest >= plen);
        for (size_t j = 0; match && j < plen; j++) {
            match = nibble_at(hp, first + j) == nibble_at(key, nib + j);
        }
        if (!match) {
            result = SPR_ABSENT; /* the path diverges from the key */
            break;
        }
        if (leaf) {
            vo = base + v->off;
            vl = v->len;
            result = SPR_OK;
            break;
        }
        nib += plen;
        after_ext = 1;
        if (v->is_list) {
            base += v->start;
            nlen = v->end - v->start;
            hashed = 0;
        } else {
            want = d + v->off;
            hashed = 1;
        }
    }
    if (next != n_nodes) {
        return SPR_ERR_TRAILING_NODES;
    }
    if (result == SPR_OK) {
        *value_off = vo;
        *value_len = vl;
    }
    return result;
}

/* A canonical RLP integer (no leading zero byte) of at most 32 bytes, as a 32-byte word. */
static int canonical_uint(const uint8_t *d, const spr_rlp_head *h, uint8_t out[32])
{
    if (h->is_list || h->len > 32 || (h->len > 0 && d[h->off] == 0)) {
        return SPR_ERR_BAD_VALUE;
    }
    memset(out, 0, 32);
    memcpy(out + 32 - h->len, d + h->off, h->len);
    return SPR_OK;
}

int spr_verify_account(const uint8_t state_root[32], const uint8_t address[20],
                       const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                       size_t n_nodes, spr_account *account)
{
    if (state_root == NULL || address == NULL || account == NULL) {
        return SPR_ERR_ARG;
    }
    memset(account, 0, sizeof *account);
    uint8_t path[32];
    spr_keccak256_unchecked(address, 20, path);
    size_t vo;
    size_t vl;
    int rc = spr_mpt_verify(state_root, path, 32, nodes, nodes_len, node_lens, n_nodes, &vo, &vl);
    if (rc != SPR_OK) {
        return rc;
    }
    return spr_account_from_value(nodes + vo, vl, account);
}

int spr_account_from_value(const uint8_t *v, size_t vl, spr_account *account)
{
    /* rlp([nonce, balance, storageRoot, codeHash]) (Yellow Paper 4.1) */
    memset(account, 0, sizeof *account);
    spr_rlp_head top;
    spr_rlp_head f[4];
    if (spr_rlp_head_parse(v, 0, vl, &top) != SPR_OK || !top.is_list || top.end != vl) {
        return SPR_ERR_BAD_VALUE;
    }
    size_t pos = top.off;
    for (int i = 0; i < 4; i++) {
        if (spr_rlp_head_parse(v, pos, top.end, &f[i]) != SPR_OK) {
            return SPR_ERR_BAD_VALUE;
        }
        pos = f[i].end;
    }
    if (pos != top.end) {
        return SPR_ERR_BAD_VALUE;
    }
    if (canonical_uint(v, &f[0], account->nonce) != SPR_OK ||
        canonical_uint(v, &f[1], account->balance) != SPR_OK) {
        memset(account, 0, sizeof *account);
        return SPR_ERR_BAD_VALUE;
    }
    if (f[2].is_list || f[2].len != 32 || f[3].is_list || f[3].len != 32) {
        memset(account, 0, sizeof *account);
        return SPR_ERR_BAD_VALUE;
    }
    memcpy(account->storage_hash, v + f[2].off, 32);
    memcpy(account->code_hash, v + f[3].off, 32);
    return SPR_OK;
}

int spr_verify_storage(const uint8_t storage_hash[32], const uint8_t slot[32],
                       const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                       size_t n_nodes, uint8_t value_out[32])
{
    if (storage_hash == NULL || slot == NULL || value_out == NULL) {
        return SPR_ERR_ARG;
    }
    memset(value_out, 0, 32);
    uint8_t path[32];
    spr_keccak256_unchecked(slot, 32, path);
    size_t vo;
    size_t vl;
    int rc =
        spr_mpt_verify(storage_hash, path, 32, nodes, nodes_len, node_lens, n_nodes, &vo, &vl);
    if (rc != SPR_OK) {
        return rc;
    }
    return spr_storage_from_value(nodes + vo, vl, value_out);
}

int spr_storage_from_value(const uint8_t *v, size_t vl, uint8_t value_out[32])
{
    /* the leaf holds rlp(value) with value a non-zero 256-bit word (zero slots are deleted),
       or rlp(0) = 0x80 alone: a slot set back to zero that the node kept as a leaf (anvil
       does), value 0 */
    memset(value_out, 0, 32);
    spr_rlp_head h;
    if (spr_rlp_head_parse(v, 0, vl, &h) != SPR_OK || h.end != vl ||
        canonical_uint(v, &h, value_out) != SPR_OK) {
        memset(value_out, 0, 32);
        return SPR_ERR_BAD_VALUE;
    }
    return SPR_OK;
}
