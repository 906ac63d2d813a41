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

/* A walk's state: the key, the proof, and where the walk is on both. */
typedef struct {
    const uint8_t *key;
    size_t total_nib; /* 2 * key length */
    const uint8_t *nodes;
    const size_t *node_lens;
    size_t n_nodes;
    spr_hash_cache *cache;
    const uint8_t *want; /* hash the next proof node must have */
    size_t next;         /* index of the next unused proof node */
    size_t next_off;     /* its offset in `nodes` */
    size_t base;         /* offset of the current node in `nodes` */
    size_t nlen;         /* its length */
    size_t nib;          /* key nibbles consumed */
    size_t vo;           /* the proven value's offset and length in `nodes` (SPR_OK) */
    size_t vl;
    int hashed;    /* the current node is the next proof node, referenced by `want` */
    int after_ext; /* the current node is an extension's child */
} mpt_walk;

/* A step's outcome besides SPR_OK / SPR_ABSENT (the walk ends) and errors: go on to the child. */
#define MPT_DESCEND 2

/* The arguments of spr_mpt_walk: SPR_OK, or SPR_ERR_ARG / SPR_ERR_TOO_DEEP. */
static int check_walk_args(const uint8_t root[32], const uint8_t *key, size_t key_len,
                           const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                           size_t n_nodes, size_t *value_off, size_t *value_len)
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
    return SPR_OK;
}

/* Take the next proof node as the current one: it must hash to `want` (a cache hit, or keccak)
   and, below the root, be too long to embed. Sets *entry to its cache entry, if any. */
static int enter_proof_node(mpt_walk *w, spr_cache_entry **entry)
{
    if (w->next == w->n_nodes) {
        return SPR_ERR_MISSING_NODE;
    }
    w->base = w->next_off;
    w->nlen = w->node_lens[w->next];
    const uint8_t *node = w->nodes + w->base;
    spr_hash_cache *cache = w->cache;
    if (cache == NULL) {
        uint8_t h[32];
        spr_keccak256_unchecked(node, w->nlen, h);
        if (memcmp(h, w->want, 32) != 0) {
            return SPR_ERR_HASH_MISMATCH;
        }
    } else if (cache->entries != NULL &&
               (*entry = cache_hit(cache, w->want, node,
                                   cache->reps != NULL ? cache->reps[w->next] : NULL, w->nlen)) !=
                   NULL) {
        cache->cached_nodes++;
    } else {
        uint8_t h[32];
        spr_keccak256_unchecked(node, w->nlen, h);
        cache->hashed_nodes++;
        cache->hashed_bytes += w->nlen;
        if (memcmp(h, w->want, 32) != 0) {
            return SPR_ERR_HASH_MISMATCH;
        }
        if (cache->entries != NULL) {
            *entry = spr_cache_insert(cache, h, node, w->nlen);
        }
    }
    if (w->next > 0 && w->nlen < 32) {
        return SPR_ERR_MALFORMED_NODE; /* must have been embedded in its parent */
    }
    w->next_off += w->nlen;
    w->next++;
    return SPR_OK;
}

/* Follow the non-empty reference `ref` of the current node d: an embedded node is walked in
   place, a hash names the next proof node. */
static inline int descend(mpt_walk *w, const uint8_t *d, const spr_rlp_head *ref)
{
    if (ref->is_list) {
        w->base += ref->start;
        w->nlen = ref->end - ref->start;
        w->hashed = 0;
    } else {
        w->want = d + ref->off;
        w->hashed = 1;
    }
    return MPT_DESCEND;
}

/* The canonical branch rules: 16 empty or child references, a string value, at least two of
   the 17 non-empty (else it would have been a leaf or an extension). */
static int check_branch(const node_items *nd)
{
    size_t nonempty = 0;
    for (int i = 0; i < 16; i++) {
        const spr_rlp_head *c = &nd->item[i];
        if (is_child_ref(c)) {
            nonempty++;
        } else if (c->is_list || c->len != 0) {
            return SPR_ERR_MALFORMED_NODE;
        }
    }
    const spr_rlp_head *bv = &nd->item[16];
    if (bv->is_list) {
        return SPR_ERR_MALFORMED_NODE;
    }
    nonempty += bv->len != 0;
    return nonempty < 2 ? SPR_ERR_MALFORMED_NODE : SPR_OK;
}

/* One step through a checked branch node d, `it` its item on the key's path: item 16 (the
   branch's own value) where the key ends, else the child of the next nibble. */
static inline int branch_step(mpt_walk *w, const uint8_t *d, const spr_rlp_head *it)
{
    if (w->nib == w->total_nib) { /* key ends here: the branch's own value */
        if (it->len == 0) {
            return SPR_ABSENT;
        }
        w->vo = w->base + it->off;
        w->vl = it->len;
        return SPR_OK;
    }
    w->nib++;
    w->after_ext = 0;
    if (!it->is_list && it->len == 0) {
        return SPR_ABSENT; /* empty slot on the path */
    }
    return descend(w, d, it);
}

/* The hex-prefix path p of a leaf or extension d (appendix C): its first nibble's index in
   *hp (at d + p->off), its length in nibbles and whether the node is a leaf. */
static int hex_prefix(const uint8_t *d, const spr_rlp_head *p, const uint8_t **hp, size_t *first,
                      size_t *plen, int *leaf)
{
    if (p->is_list || p->len == 0) {
        return SPR_ERR_MALFORMED_NODE;
    }
    *hp = d + p->off;
    const unsigned flag = (*hp)[0] >> 4;
    if (flag > 3) {
        return SPR_ERR_MALFORMED_NODE;
    }
    const size_t odd = flag & 1u;
    if (!odd && ((*hp)[0] & 0x0f) != 0) {
        return SPR_ERR_MALFORMED_NODE;
    }
    *leaf = (flag & 2u) != 0;
    *plen = 2 * (p->len - 1) + odd;
    *first = odd ? 1 : 2; /* nibble index in hp where the path starts */
    return SPR_OK;
}

/* One step through a two-item node d (path p, value or child v): a leaf ends the walk, an
   extension leads to the branch it references. */
static int short_node_step(mpt_walk *w, const uint8_t *d, const spr_rlp_head *p,
                           const spr_rlp_head *v)
{
    if (w->after_ext) {
        return SPR_ERR_MALFORMED_NODE; /* an extension always leads to a branch */
    }
    const uint8_t *hp;
    size_t first;
    size_t plen;
    int leaf;
    int rc = hex_prefix(d, p, &hp, &first, &plen, &leaf);
    if (rc != SPR_OK) {
        return rc;
    }
    if (leaf ? (v->is_list || v->len == 0) : (plen == 0 || !is_child_ref(v))) {
        return SPR_ERR_MALFORMED_NODE;
    }
    const size_t rest = w->total_nib - w->nib;
    int match = leaf ? (rest == plen) : (rest >= plen);
    for (size_t j = 0; match && j < plen; j++) {
        match = nibble_at(hp, first + j) == nibble_at(w->key, w->nib + j);
    }
    if (!match) {
        return SPR_ABSENT; /* the path diverges from the key */
    }
    if (leaf) {
        w->vo = w->base + v->off;
        w->vl = v->len;
        return SPR_OK;
    }
    w->nib += plen;
    w->after_ext = 1;
    return descend(w, d, v);
}

/* One step of the walk from the current node (`entry`: its cache entry, or NULL). */
static inline int walk_step(mpt_walk *w, spr_cache_entry *entry)
{
    const uint8_t *d = w->nodes + w->base;
    const unsigned index = w->nib == w->total_nib ? 16u : nibble_at(w->key, w->nib);
    spr_rlp_head it;
    if (entry != NULL && (entry->len & SPR_CACHE_VALID_BRANCH) != 0 &&
        branch_item(d, w->nlen, index, &it) == SPR_OK) {
        /* a branch already checked in this call: without re-validating its encoding and its
           other children */
        return branch_step(w, d, &it);
    }
    node_items nd;
    int rc = parse_node(d, w->nlen, &nd);
    if (rc != SPR_OK) {
        return rc;
    }
    if (nd.count == 2) { /* leaf or extension with a hex-prefix encoded path */
        return short_node_step(w, d, &nd.item[0], &nd.item[1]);
    }
    rc = check_branch(&nd); /* branch: 16 children and a value */
    if (rc != SPR_OK) {
        return rc;
    }
    if (entry != NULL) {
        entry->len |= SPR_CACHE_VALID_BRANCH;
    }
    return branch_step(w, d, &nd.item[index]);
}

int spr_mpt_walk(const uint8_t root[32], const uint8_t *key, size_t key_len,
                 const uint8_t *nodes, size_t nodes_len, const size_t *node_lens, size_t n_nodes,
                 size_t *value_off, size_t *value_len, spr_hash_cache *cache)
{
    int rc = check_walk_args(root, key, key_len, nodes, nodes_len, node_lens, n_nodes, value_off,
                             value_len);
    if (rc != SPR_OK) {
        return rc;
    }
    if (memcmp(root, EMPTY_TRIE_ROOT, 32) == 0) {
        /* the empty trie: no node (geth, ganache), or its root node rlp("") = 0x80 alone
           (anvil, Hardhat), which hashes to the empty root; anything else is left over */
        if (n_nodes == 0 || (n_nodes == 1 && node_lens[0] == 1 && nodes[0] == 0x80)) {
            return SPR_ABSENT;
        }
        return SPR_ERR_TRAILING_NODES;
    }
    mpt_walk w = {.key = key, .total_nib = 2 * key_len, .nodes = nodes, .node_lens = node_lens,
                  .n_nodes = n_nodes, .cache = cache, .want = root, .hashed = 1};
    for (size_t depth = 0;; depth++) {
        if (depth > SPR_MPT_MAX_DEPTH) {
            return SPR_ERR_TOO_DEEP;
        }
        spr_cache_entry *entry = NULL; /* the cache entry of the current node, if any */
        if (w.hashed && (rc = enter_proof_node(&w, &entry)) != SPR_OK) {
            return rc;
        }
        rc = walk_step(&w, entry);
        if (rc != MPT_DESCEND) {
            break;
        }
    }
    if (rc != SPR_OK && rc != SPR_ABSENT) {
        return rc;
    }
    if (w.next != n_nodes) {
        return SPR_ERR_TRAILING_NODES;
    }
    if (rc == SPR_OK) {
        *value_off = w.vo;
        *value_len = w.vl;
    }
    return rc;
}
