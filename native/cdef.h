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

#define SPR_VERSION_MAJOR ...
#define SPR_VERSION_MINOR ...
#define SPR_VERSION_PATCH ...
#define SPR_VERSION ...

int spr_version(void);

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

int spr_merkle_leaves(const uint8_t *encoded, size_t n_leaves, size_t stride, uint8_t *leaves);

size_t spr_merkle_scratch_size(size_t n_leaves);

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

/* ---- Verkle (EIP-6800) ------------------------------------------------------------------- */
#define SPR_ERR_VERKLE_ENCODING ...
#define SPR_ERR_VERKLE_NONCANONICAL ...
#define SPR_ERR_VERKLE_NOT_ON_CURVE ...
#define SPR_ERR_VERKLE_INCONSISTENT ...
#define SPR_ERR_VERKLE_PROOF_MISMATCH ...
#define SPR_ERR_VERKLE_LIMIT ...
#define SPR_ERR_VERKLE_NOMEM ...
#define SPR_VERKLE_MAX_KEYS ...
#define SPR_VERKLE_MAX_COMMITMENTS ...
#define SPR_VERKLE_PROOF_LEN ...
#define SPR_VERKLE_KEY_RECORD_LEN ...

int spr_banderwagon_decode(const uint8_t in[32], uint8_t out[64]);
int spr_banderwagon_encode(const uint8_t in[64], uint8_t out[32]);
int spr_banderwagon_add(const uint8_t a[64], const uint8_t b[64], uint8_t out[64]);
int spr_banderwagon_mul(const uint8_t p[64], const uint8_t scalar[32], uint8_t out[64]);
int spr_banderwagon_map_to_field(const uint8_t p[64], uint8_t out[32]);
int spr_verkle_commit(const uint8_t *scalars, size_t n, uint8_t out[64]);
int spr_verkle_tree_key(const uint8_t address[32], const uint8_t tree_index[32],
                        uint8_t sub_index, uint8_t out[32]);
int spr_verkle_transcript(const uint8_t *ops, size_t ops_len, uint8_t out[32]);
int spr_verkle_ipa_verify(const uint8_t *label, size_t label_len, const uint8_t commitment[32],
                          const uint8_t input[32], const uint8_t output[32],
                          const uint8_t proof[544]);
int spr_verkle_multiproof_verify(const uint8_t *label, size_t label_len,
                                 const uint8_t *commitments, const uint8_t *zs, const uint8_t *ys,
                                 size_t n, const uint8_t proof[576]);

typedef struct {
    uint64_t n_keys;
    uint64_t n_commitments;
    uint64_t n_queries;
    uint64_t total_ns;
    uint64_t msm_ns;
    uint64_t decode_ns;
} spr_verkle_stats;

int spr_verkle_verify_witness(const uint8_t pre_state_root[32], const uint8_t *witness,
                              size_t witness_len, uint8_t *out, size_t out_len,
                              spr_verkle_stats *stats);
