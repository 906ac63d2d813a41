/*
 * keccak.c - Keccak-256 as used by Ethereum (Yellow Paper, appendix: "KEC"): the Keccak[r=1088,
 * c=512] sponge with the original multi-rate padding (first pad byte 0x01), which differs from
 * FIPS-202 SHA3-256 (0x06). Written from the Keccak reference specification (keccak-f[1600],
 * 24 rounds, 64-bit lanes, little-endian lane order).
 */
#include "spr_internal.h"

#define KECCAK_RATE 136 /* bytes: (1600 - 2 * 256) / 8 */
#define ROTL64(x, n) (((x) << (n)) | ((x) >> (64 - (n))))

static const uint64_t ROUND_CONSTANTS[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808AULL, 0x8000000080008000ULL,
    0x000000000000808BULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008AULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000AULL,
    0x000000008000808BULL, 0x800000000000008BULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800AULL, 0x800000008000000AULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

/* keccak-f[1600] on the state a[x + 5y]. */
static void keccak_f1600(uint64_t a[25])
{
    uint64_t b[25];
    uint64_t c[5];
    uint64_t d[5];
    for (int round = 0; round < 24; round++) {
        /* theta */
        c[0] = a[0] ^ a[5] ^ a[10] ^ a[15] ^ a[20];
        c[1] = a[1] ^ a[6] ^ a[11] ^ a[16] ^ a[21];
        c[2] = a[2] ^ a[7] ^ a[12] ^ a[17] ^ a[22];
        c[3] = a[3] ^ a[8] ^ a[13] ^ a[18] ^ a[23];
        c[4] = a[4] ^ a[9] ^ a[14] ^ a[19] ^ a[24];
        d[0] = c[4] ^ ROTL64(c[1], 1);
        d[1] = c[0] ^ ROTL64(c[2], 1);
        d[2] = c[1] ^ ROTL64(c[3], 1);
        d[3] = c[2] ^ ROTL64(c[4], 1);
        d[4] = c[3] ^ ROTL64(c[0], 1);
        /* rho and pi: b[y, 2x + 3y] = rot(a[x, y] ^ d[x], r[x, y]) */
        b[0] = a[0] ^ d[0];
        b[16] = ROTL64(a[5] ^ d[0], 36);
        b[7] = ROTL64(a[10] ^ d[0], 3);
        b[23] = ROTL64(a[15] ^ d[0], 41);
        b[14] = ROTL64(a[20] ^ d[0], 18);
        b[10] = ROTL64(a[1] ^ d[1], 1);
        b[1] = ROTL64(a[6] ^ d[1], 44);
        b[17] = ROTL64(a[11] ^ d[1], 10);
        b[8] = ROTL64(a[16] ^ d[1], 45);
        b[24] = ROTL64(a[21] ^ d[1], 2);
        b[20] = ROTL64(a[2] ^ d[2], 62);
        b[11] = ROTL64(a[7] ^ d[2], 6);
        b[2] = ROTL64(a[12] ^ d[2], 43);
        b[18] = ROTL64(a[17] ^ d[2], 15);
        b[9] = ROTL64(a[22] ^ d[2], 61);
        b[5] = ROTL64(a[3] ^ d[3], 28);
        b[21] = ROTL64(a[8] ^ d[3], 55);
        b[12] = ROTL64(a[13] ^ d[3], 25);
        b[3] = ROTL64(a[18] ^ d[3], 21);
        b[19] = ROTL64(a[23] ^ d[3], 56);
        b[15] = ROTL64(a[4] ^ d[4], 27);
        b[6] = ROTL64(a[9] ^ d[4], 20);
        b[22] = ROTL64(a[14] ^ d[4], 39);
        b[13] = ROTL64(a[19] ^ d[4], 8);
        b[4] = ROTL64(a[24] ^ d[4], 14);
        /* chi */
        for (int y = 0; y < 25; y += 5) {
            a[y + 0] = b[y + 0] ^ (~b[y + 1] & b[y + 2]);
            a[y + 1] = b[y + 1] ^ (~b[y + 2] & b[y + 3]);
            a[y + 2] = b[y + 2] ^ (~b[y + 3] & b[y + 4]);
            a[y + 3] = b[y + 3] ^ (~b[y + 4] & b[y + 0]);
            a[y + 4] = b[y + 4] ^ (~b[y + 0] & b[y + 1]);
        }
        /* iota */
        a[0] ^= ROUND_CONSTANTS[round];
    }
}

static inline uint64_t load64_le(const uint8_t *p)
{
    return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) |
           ((uint64_t)p[3] << 24) | ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) |
           ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
}

static inline void store64_le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

void spr_keccak256_unchecked(const uint8_t *data, size_t len, uint8_t out[32])
{
    uint64_t a[25] = {0};
    while (len >= KECCAK_RATE) {
        for (int i = 0; i < KECCAK_RATE / 8; i++) {
            a[i] ^= load64_le(data + 8 * i);
        }
        keccak_f1600(a);
        data += KECCAK_RATE;
        len -= KECCAK_RATE;
    }
    /* last (possibly empty) block with Keccak padding: 0x01 ... 0x80 */
    uint8_t block[KECCAK_RATE] = {0};
    if (len > 0) {
        memcpy(block, data, len);
    }
    block[len] ^= 0x01;
    block[KECCAK_RATE - 1] ^= 0x80;
    for (int i = 0; i < KECCAK_RATE / 8; i++) {
        a[i] ^= load64_le(block + 8 * i);
    }
    keccak_f1600(a);
    for (int i = 0; i < 4; i++) {
        store64_le(out + 8 * i, a[i]);
    }
}

int spr_keccak256(const uint8_t *data, size_t len, uint8_t out[32])
{
    if (out == NULL || (data == NULL && len != 0)) {
        return SPR_ERR_ARG;
    }
    spr_keccak256_unchecked(data, len, out);
    return SPR_OK;
}

/* ---- eight equal-length messages at once (AVX-512, when the CPU has it) ------------------ */
/* Lane i of each 512-bit word is message i's state: the 24 rounds run on eight states in
   the same instructions (rotations by vprolq, chi by one ternary-logic op). */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define SPR_HAVE_X8 1

__attribute__((target("avx512f"))) static void keccak_f1600_x8(__m512i a[25])
{
    __m512i b[25];
    __m512i c[5];
    __m512i d[5];
    for (int round = 0; round < 24; round++) {
        for (int x = 0; x < 5; x++) {
            c[x] = _mm512_ternarylogic_epi64(
                _mm512_ternarylogic_epi64(a[x], a[x + 5], a[x + 10], 0x96), a[x + 15], a[x + 20],
                0x96);
        }
        for (int x = 0; x < 5; x++) {
            d[x] = _mm512_xor_si512(c[(x + 4) % 5], _mm512_rol_epi64(c[(x + 1) % 5], 1));
        }
        b[0] = _mm512_xor_si512(a[0], d[0]);
        b[16] = _mm512_rol_epi64(_mm512_xor_si512(a[5], d[0]), 36);
        b[7] = _mm512_rol_epi64(_mm512_xor_si512(a[10], d[0]), 3);
        b[23] = _mm512_rol_epi64(_mm512_xor_si512(a[15], d[0]), 41);
        b[14] = _mm512_rol_epi64(_mm512_xor_si512(a[20], d[0]), 18);
        b[10] = _mm512_rol_epi64(_mm512_xor_si512(a[1], d[1]), 1);
        b[1] = _mm512_rol_epi64(_mm512_xor_si512(a[6], d[1]), 44);
        b[17] = _mm512_rol_epi64(_mm512_xor_si512(a[11], d[1]), 10);
        b[8] = _mm512_rol_epi64(_mm512_xor_si512(a[16], d[1]), 45);
        b[24] = _mm512_rol_epi64(_mm512_xor_si512(a[21], d[1]), 2);
        b[20] = _mm512_rol_epi64(_mm512_xor_si512(a[2], d[2]), 62);
        b[11] = _mm512_rol_epi64(_mm512_xor_si512(a[7], d[2]), 6);
        b[2] = _mm512_rol_epi64(_mm512_xor_si512(a[12], d[2]), 43);
        b[18] = _mm512_rol_epi64(_mm512_xor_si512(a[17], d[2]), 15);
        b[9] = _mm512_rol_epi64(_mm512_xor_si512(a[22], d[2]), 61);
        b[5] = _mm512_rol_epi64(_mm512_xor_si512(a[3], d[3]), 28);
        b[21] = _mm512_rol_epi64(_mm512_xor_si512(a[8], d[3]), 55);
        b[12] = _mm512_rol_epi64(_mm512_xor_si512(a[13], d[3]), 25);
        b[3] = _mm512_rol_epi64(_mm512_xor_si512(a[18], d[3]), 21);
        b[19] = _mm512_rol_epi64(_mm512_xor_si512(a[23], d[3]), 56);
        b[15] = _mm512_rol_epi64(_mm512_xor_si512(a[4], d[4]), 27);
        b[6] = _mm512_rol_epi64(_mm512_xor_si512(a[9], d[4]), 20);
        b[22] = _mm512_rol_epi64(_mm512_xor_si512(a[14], d[4]), 39);
        b[13] = _mm512_rol_epi64(_mm512_xor_si512(a[19], d[4]), 8);
        b[4] = _mm512_rol_epi64(_mm512_xor_si512(a[24], d[4]), 14);
        for (int y = 0; y < 25; y += 5) { /* chi: a = b0 ^ (~b1 & b2) */
            a[y + 0] = _mm512_ternarylogic_epi64(b[y + 0], b[y + 1], b[y + 2], 0xD2);
            a[y + 1] = _mm512_ternarylogic_epi64(b[y + 1], b[y + 2], b[y + 3], 0xD2);
            a[y + 2] = _mm512_ternarylogic_epi64(b[y + 2], b[y + 3], b[y + 4], 0xD2);
            a[y + 3] = _mm512_ternarylogic_epi64(b[y + 3], b[y + 4], b[y + 0], 0xD2);
            a[y + 4] = _mm512_ternarylogic_epi64(b[y + 4], b[y + 0], b[y + 1], 0xD2);
        }
        a[0] = _mm512_xor_si512(a[0], _mm512_set1_epi64((long long)ROUND_CONSTANTS[round]));
    }
}

/* Word w (8 bytes, little-endian) of eight blocks, one per lane. */
__attribute__((target("avx512f"))) static inline __m512i load_x8(const uint8_t *const p[8],
                                                                size_t off)
{
    return _mm512_set_epi64((long long)load64_le(p[7] + off), (long long)load64_le(p[6] + off),
                            (long long)load64_le(p[5] + off), (long long)load64_le(p[4] + off),
                            (long long)load64_le(p[3] + off), (long long)load64_le(p[2] + off),
                            (long long)load64_le(p[1] + off), (long long)load64_le(p[0] + off));
}

/* Eight messages of any lengths: block k of every lane is absorbed in the k-th permutation
   (full blocks straight from the input, the padded last block from a copy, zeros once a lane
   is done); a lane's digest is read right after the permutation of its last block. */
__attribute__((target("avx512f"))) static void keccak256_x8v_avx512(const uint8_t *const in[8],
                                                                    const size_t len[8],
                                                                    uint8_t *const out[8])
{
    static const uint8_t zero_block[KECCAK_RATE];
    uint8_t lastblk[8][KECCAK_RATE];
    size_t full[8]; /* full blocks of each lane; its last (padded) block is block full[i] */
    size_t rounds = 0;
    for (int i = 0; i < 8; i++) {
        full[i] = len[i] / KECCAK_RATE;
        const size_t rest = len[i] - full[i] * KECCAK_RATE;
        memset(lastblk[i], 0, KECCAK_RATE);
        if (rest > 0) {
            memcpy(lastblk[i], in[i] + full[i] * KECCAK_RATE, rest);
        }
        lastblk[i][rest] ^= 0x01;
        lastblk[i][KECCAK_RATE - 1] ^= 0x80;
        if (full[i] + 1 > rounds) {
            rounds = full[i] + 1;
        }
    }
    __m512i a[25];
    for (int i = 0; i < 25; i++) {
        a[i] = _mm512_setzero_si512();
    }
    for (size_t k = 0; k < rounds; k++) {
        const uint8_t *blk[8];
        int done = 0;
        for (int i = 0; i < 8; i++) {
            if (k < full[i]) {
                blk[i] = in[i] + k * KECCAK_RATE;
            } else if (k == full[i]) {
                blk[i] = lastblk[i];
                done = 1;
            } else {
                blk[i] = zero_block;
            }
        }
        for (int w = 0; w < KECCAK_RATE / 8; w++) {
            a[w] = _mm512_xor_si512(a[w], load_x8(blk, 8 * (size_t)w));
        }
        keccak_f1600_x8(a);
        if (done) {
            uint64_t lanes[4][8];
            for (int w = 0; w < 4; w++) {
                _mm512_storeu_si512((void *)lanes[w], a[w]);
            }
            for (int i = 0; i < 8; i++) {
                if (k == full[i]) {
                    for (int w = 0; w < 4; w++) {
                        store64_le(out[i] + 8 * w, lanes[w][i]);
                    }
                }
            }
        }
    }
}
#endif

int spr_keccak_x8_available(void)
{
#ifdef SPR_HAVE_X8
    __builtin_cpu_init(); /* idempotent; fills libgcc's CPU model once */
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
    return 0;
#endif
}

void spr_keccak256_x8v(const uint8_t *const in[8], const size_t len[8], uint8_t *const out[8])
{
#ifdef SPR_HAVE_X8
    if (spr_keccak_x8_available()) {
        keccak256_x8v_avx512(in, len, out);
        return;
    }
#endif
    for (int i = 0; i < 8; i++) {
        spr_keccak256_unchecked(in[i], len[i], out[i]);
    }
}

void spr_keccak256_x8(const uint8_t *const in[8], size_t len, uint8_t *const out[8])
{
    const size_t lens[8] = {len, len, len, len, len, len, len, len};
    spr_keccak256_x8v(in, lens, out);
}

int spr_keccak256_many(const uint8_t *data, const size_t *lens, size_t n, uint8_t *out)
{
    if (out == NULL || (lens == NULL && n != 0)) {
        return SPR_ERR_ARG;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > SIZE_MAX - total) {
            return SPR_ERR_ARG;
        }
        total += lens[i];
    }
    if (data == NULL && total != 0) {
        return SPR_ERR_ARG;
    }
    size_t i = 0;
    size_t off = 0;
    if (spr_keccak_x8_available()) {
        for (; n - i >= 8; i += 8) {
            const uint8_t *in[8];
            uint8_t *dst[8];
            for (size_t k = 0; k < 8; k++) {
                in[k] = data + off;
                dst[k] = out + 32 * (i + k);
                off += lens[i + k];
            }
            spr_keccak256_x8v(in, lens + i, dst);
        }
    }
    for (; i < n; i++) {
        spr_keccak256_unchecked(data + off, lens[i], out + 32 * i);
        off += lens[i];
    }
    return SPR_OK;
}
