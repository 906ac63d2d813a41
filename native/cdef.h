/* cffi declarations of include/spr.h (parsed by cffi's cdef, no preprocessor: keep in sync).
   Constant values are read from the real header at build time (API mode, "..."). */

#define SPR_OK ...
#define SPR_ABSENT ...
#define SPR_ERR_ARG ...
#define SPR_ERR_BUFFER ...
#define SPR_ERR_RLP_TRUNCATED ...
#define SPR_ERR_RLP_NONCANONICAL ...
#define SPR_ERR_RLP_TRAILING ...
#define SPR_ERR_RLP_EMPTY ...
#define SPR_ERR_HASH_MISMATCH ...
#define SPR_ERR_MISSING_NODE ...
#define SPR_ERR_TRAILING_NODES ...
#define SPR_ERR_TOO_DEEP ...
#define SPR_ERR_MALFORMED_NODE ...
#define SPR_ERR_BAD_VALUE ...
#define SPR_ERR_MULTIPROOF ...

#define SPR_HASH_LEN ...
#define SPR_MPT_MAX_KEY_LEN ...
#define SPR_MPT_MAX_DEPTH ...
#define SPR_MERKLE_MAX_LEAVES ...

const char *spr_strerror(int status);

int spr_keccak256(const uint8_t *data, size_t len, uint8_t out[32]);
int spr_keccak256_many(const uint8_t *data, const size_t *lens, size_t n, uint8_t *out);

typedef struct {
    size_t offset;
    size_t length;
    size_t count;
    size_t parent;
    int is_list;
} spr_rlp_item;

int spr_rlp_decode(const uint8_t *data, size_t len, spr_rlp_item *items, size_t max_items,
                   size_t *n_items);

int spr_mpt_verify(const uint8_t root[32], const uint8_t *key, size_t key_len,
                   const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                   size_t n_nodes, size_t *value_off, size_t *value_len);

typedef struct {
    uint8_t nonce[32];
    uint8_t balance[32];
    uint8_t storage_hash[32];
    uint8_t code_hash[32];
} spr_account;

int spr_verify_account(const uint8_t state_root[32], const uint8_t address[20],
                       const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                       size_t n_nodes, spr_account *account);

int spr_verify_storage(const uint8_t storage_hash[32], const uint8_t slot[32],
                       const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                       size_t n_nodes, uint8_t value_out[32]);

typedef struct {
    uint64_t hashed_nodes;
    uint64_t hashed_bytes;
    uint64_t cached_nodes;
} spr_snapshot_stats;

size_t spr_snapshot_scratch_size(size_t n_nodes);

int spr_verify_snapshot(const uint8_t state_root[32], const uint8_t address[20],
                        const uint8_t *account_nodes, size_t account_nodes_len,
                        const size_t *account_node_lens, size_t account_n_nodes,
                        const uint8_t *slots, size_t n_slots, const uint8_t *storage_nodes,
                        size_t storage_nodes_len, const size_t *storage_node_lens,
                        size_t storage_n_nodes, const size_t *proof_n_nodes, void *scratch,
                        size_t scratch_len, spr_account *account, uint8_t *values,
                        int *statuses, spr_snapshot_stats *stats);

int spr_verify_snapshot_packed(const uint8_t state_root[32], const uint8_t address[20],
                               const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                               size_t n_nodes, size_t account_n_nodes, const uint8_t *slots,
                               size_t n_slots, const size_t *proof_n_nodes, void *scratch,
                               size_t scratch_len, uint8_t *out, int *statuses,
                               spr_snapshot_stats *stats);

int spr_merkle_leaf(const uint8_t *data, size_t len, uint8_t out[32]);

int spr_merkle_hash_pair(const uint8_t a[32], const uint8_t b[32], uint8_t out[32]);

size_t spr_merkle_proofs_size(size_t n_leaves);

int spr_merkle_build(const uint8_t *leaves, size_t n_leaves, uint8_t *tree, uint8_t *proofs,
                     size_t *proof_lens, size_t *scratch);

int spr_merkle_leaves(const uint8_t *encoded, size_t n_leaves, size_t stride, uint8_t *leaves);

size_t spr_merkle_flat_size(size_t n_leaves);

size_t spr_merkle_scratch_size(size_t n_leaves);

int spr_merkle_build_flat(const uint8_t *leaves, size_t n_leaves, uint8_t *out, size_t out_len,
                          size_t *proof_offsets, void *scratch, size_t scratch_len);

int spr_merkle_build_tree(const uint8_t *leaves, size_t n_leaves, uint8_t *tree, size_t tree_len,
                          size_t *positions, void *scratch, size_t scratch_len);
int spr_merkle_tree_proof(const uint8_t *tree, size_t n_leaves, size_t position, uint8_t *out,
                          size_t out_len);
int spr_merkle_claim_leaves(const uint8_t *accounts, const uint8_t *values, size_t n,
                            uint8_t *leaves);
int spr_merkle_multiproof(const uint8_t *tree, size_t n_leaves, const size_t *positions,
                          const size_t *indices, size_t n_indices, size_t *order,
                          uint8_t *proof, size_t proof_cap, size_t *n_proof, uint8_t *flags,
                          size_t flags_cap, size_t *n_flags, size_t *scratch);
int spr_merkle_process_multiproof(const uint8_t *leaves, size_t n_leaves, const uint8_t *proof,
                                  size_t n_proof, const uint8_t *flags, size_t n_flags,
                                  uint8_t *hashes, uint8_t root_out[32]);
int spr_merkle_process_proof(const uint8_t leaf[32], const uint8_t *proof, size_t n_proof,
                             uint8_t root_out[32]);
