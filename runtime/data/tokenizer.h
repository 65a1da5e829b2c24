/* tokenizer.h: text <-> token ids.
 *
 * Two tokenizers, chosen by a spec string:
 *   "bytes"     vocab 256, id = byte value; every byte string round-trips.
 *   "gpt2:DIR"  OpenAI's GPT-2 byte-level BPE from DIR/encoder.json and
 *               DIR/vocab.bpe; vocab 50257. Encodes exactly like OpenAI's
 *               encoder.py (gpt-2/src/encoder.py):
 *                 1. pre-tokenize with the GPT-2 pattern
 *                    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *                    (PCRE2, UTF + UCP, JIT when available; \s is spelled out
 *                    as the Unicode White_Space set, which is what Python's
 *                    `regex` module matches, not PCRE2's own \s);
 *                 2. BPE-merge each piece's bytes by rank (vocab.bpe);
 *                 3. look the merged symbols up in encoder.json.
 *               "<|endoftext|>" in the text is NOT special: like encoder.py it
 *               encodes as ordinary text (7 tokens). Its id (50256) is still
 *               decodable.
 *               Results per piece are cached in a hash map.
 *
 * Unicode: \p{L} and \p{N} come from PCRE2's tables (Unicode 14 in PCRE2
 * 10.42). A character assigned in a later Unicode version counts as
 * unassigned here and may be split differently than a newer Python `regex`
 * would; everything else matches encoder.py (checked against it on the whole
 * KJV and on randomized text).
 *
 * Threads: tok_encode updates the piece cache, so one Tokenizer must not
 * encode on two threads at once; decoding only reads.
 *
 * Invalid UTF-8 (gpt2): the input is matched with PCRE2_MATCH_INVALID_UTF, so
 * invalid sequences never match the pattern; each maximal run of bytes that
 * the pattern leaves uncovered becomes its own piece and is BPE-encoded
 * byte-level like any other piece. Nothing crashes, nothing is dropped, and
 * decode(encode(x)) == x for every byte string x.
 *
 * Decoding returns raw bytes (not necessarily valid UTF-8: one id can hold
 * part of a multi-byte character). An id the vocabulary does not have
 * (negative, >= vocab size, or a gap in encoder.json) decodes to U+FFFD
 * (the 3 bytes EF BF BD) instead of failing.
 */
#ifndef KANC_TOKENIZER_H
#define KANC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

/* spec: "bytes" or "gpt2:DIR". NULL on failure with a message in err naming
 * the file and the problem. */
Tokenizer *tok_open(const char *spec, char *err, size_t errlen);
void tok_close(Tokenizer *tok);

/* Number of ids (256 for bytes, 50257 for gpt2): every id the encoder can
 * emit is below it. */
int tok_vocab_size(const Tokenizer *tok);
/* Canonical spec, for checkpoints and cache sidecars: "bytes" or
 * "gpt2:<absolute DIR>". Owned by the tokenizer. */
const char *tok_spec(const Tokenizer *tok);
/* A hash of the vocabulary files' contents (0 for bytes): tells whether a
 * cache made under the same spec still matches. */
uint64_t tok_fingerprint(const Tokenizer *tok);
/* The fingerprint as written to the token cache's tokens.json and to
 * checkpoints: 16 lowercase hex digits and a NUL. */
#define TOK_FINGERPRINT_HEX 17
void tok_fingerprint_hex(const Tokenizer *tok, char hex[TOK_FINGERPRINT_HEX]);
/* Short kind name: "bytes" or "gpt2". */
const char *tok_kind(const Tokenizer *tok);

/* Encode len bytes of text (NULs allowed). On success returns 0 and sets
 * *ids to a fresh xmalloc'd array (free() it; never NULL, even when *n == 0)
 * of *n ids. On failure returns -1 (*ids = NULL, *n = 0) and tok_error()
 * says why (only possible with a vocabulary that lacks a merged symbol, or a
 * PCRE2 matching failure). */
int tok_encode(Tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n);
/* Message of the last failed tok_encode ("" if none). */
const char *tok_error(const Tokenizer *tok);

/* The bytes of n ids, concatenated, as a fresh NUL-terminated xmalloc'd
 * buffer (free() it); *len (may be NULL) gets the byte count. Unknown ids
 * give U+FFFD. */
char *tok_decode(Tokenizer *tok, const int32_t *ids, size_t n, size_t *len);
/* The bytes of one id, for streaming sampled output: a pointer owned by the
 * tokenizer (valid until tok_close), NUL-terminated, *len bytes long
 * (may contain NULs for the bytes tokenizer's id 0). Unknown id gives U+FFFD. */
const char *tok_decode_one(const Tokenizer *tok, int32_t id, size_t *len);

/* Whether id is one of the vocabulary's (gpt2: encoder.json may have gaps). */
int tok_has_id(const Tokenizer *tok, int32_t id);
/* The bytes of id for a message, in double quotes, non-printable bytes and
 * '"' as \xNN (GPT-2's id 262 gives the 6 characters "<space>the" with its
 * quotes), into buf; returns buf. */
char *tok_describe_id(const Tokenizer *tok, int32_t id, char *buf, size_t n);

/* Testing hook: 1 forces the simple O(n^2) reference BPE loop (a literal port
 * of encoder.py's), 0 restores the default heap-based loop (the same result,
 * whatever the order of vocab.bpe's lines, in O(n log n)). Clears the piece
 * cache. */
void tok_set_reference_bpe(Tokenizer *tok, int on);

#endif
