// The benchmark n-gram index: an open-addressing hash table from window hash to distinct n-gram id,
// with every candidate verified against the stored benchmark tokens, and an optional blocked Bloom
// prefilter over a rolling hash so that the common case (a corpus window that is in no benchmark)
// costs a few arithmetic operations and one cache-resident load.
// Not for: per-sample statistics or corpus I/O (scan.cpp, corpus.cpp).
#include <algorithm>
#include <bit>
#include <cstring>

#include <xxhash.h>

#include "common/error.h"
#include "ngram/contam.h"

namespace hrm::ngram {
namespace {

// Largest n accepted: far above the protocol's 13/20, small enough that windows stay cheap.
constexpr size_t kMaxN = 1024;
// Table load factor at most 1/2 while building (short probes for the many inserts), at most 2/3
// once built: lookups are rare behind the prefilter, and the table is most of the index's memory.
constexpr size_t kSlotsPerNgram = 2;
constexpr size_t kFinalSlotsNum = 3, kFinalSlotsDen = 2;
constexpr size_t kMinSlots = 16;
// Bloom sizing: 16 bits per distinct n-gram, 3 bits set per key inside one 64-bit word; a false
// positive rate well under 1% while a few million n-grams take a few MB (fits in L3).
constexpr size_t kBloomBitsPerNgram = 16;
constexpr size_t kBloomWordBits = 64;
constexpr int kBloomShift1 = 40, kBloomShift2 = 46, kBloomShift3 = 52;
constexpr uint64_t kBitIndexMask = kBloomWordBits - 1;
// Polynomial rolling hash base (odd, so multiplication mod 2^64 is invertible) and the
// murmur3 fmix64 constants used to spread its bits before the Bloom lookup.
constexpr uint64_t kRollBase = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMix1 = 0xFF51AFD7ED558CCDull;
constexpr uint64_t kMix2 = 0xC4CEB9FE1A85EC53ull;
constexpr int kMixShift = 33;
constexpr int kTagShift = 32;
// Windows whose Bloom words are prefetched together (see scan_span).
constexpr size_t kPrefetchBlock = 32;
constexpr uint64_t kIdMask = 0xFFFFFFFFull;

uint64_t mix(uint64_t h) {
  h ^= h >> kMixShift;
  h *= kMix1;
  h ^= h >> kMixShift;
  h *= kMix2;
  h ^= h >> kMixShift;
  return h;
}

uint64_t rolling_hash(const Token* w, size_t n) {
  uint64_t h = 0;
  for (size_t j = 0; j < n; ++j) h = h * kRollBase + w[j];
  return h;
}

uint64_t bloom_bits(uint64_t m) {
  return (1ull << ((m >> kBloomShift1) & kBitIndexMask)) | (1ull << ((m >> kBloomShift2) & kBitIndexMask)) |
         (1ull << ((m >> kBloomShift3) & kBitIndexMask));
}

}  // namespace

uint64_t xxh3_window(const Token* window, size_t n) { return XXH3_64bits(window, n * sizeof(Token)); }

NgramIndex::NgramIndex(std::vector<std::vector<Token>> samples, IndexOptions options)
    : n_(options.n), hash_(options.hash) {
  if (n_ == 0 || n_ > kMaxN) throw Error(cat("n-gram index: n = ", n_, ", expected 1..", kMaxN));
  if (hash_ == nullptr) throw Error("n-gram index: no window hash function given");
  size_t total = 0, positions = 0;
  for (const auto& s : samples) {
    total += s.size();
    if (s.size() >= n_) positions += s.size() - n_ + 1;
  }
  if (positions >= kNoNgram || total >= UINT32_MAX)
    throw Error(cat("n-gram index: ", total, " tokens / ", positions, " n-grams, more than 2^32-1"));
  tokens_.reserve(total);
  sample_begin_.reserve(samples.size() + 1);
  ngram_begin_.reserve(samples.size() + 1);
  position_ids_.reserve(positions);
  for (auto& s : samples) {
    sample_begin_.push_back(tokens_.size());
    tokens_.insert(tokens_.end(), s.begin(), s.end());
    std::vector<Token>().swap(s);
  }
  sample_begin_.push_back(tokens_.size());

  // Sized for the worst case (every position distinct) while deduplicating ...
  size_t slots = std::bit_ceil(std::max(kMinSlots, positions * kSlotsPerNgram));
  slots_.assign(slots, 0);
  slot_mask_ = slots - 1;
  for (size_t s = 0; s + 1 < sample_begin_.size(); ++s) {
    ngram_begin_.push_back(position_ids_.size());
    const size_t b = sample_begin_[s], e = sample_begin_[s + 1];
    for (size_t p = b; p + n_ <= e; ++p) {
      const Token* w = tokens_.data() + p;
      const uint64_t h = hash_(w, n_);
      uint32_t id = find_hashed(w, h);
      if (id == kNoNgram) {
        id = static_cast<uint32_t>(rep_.size());
        rep_.push_back(static_cast<uint32_t>(p));
        insert_slot(h, id);
      }
      position_ids_.push_back(id);
    }
  }
  ngram_begin_.push_back(position_ids_.size());
  // ... then rebuilt for the distinct n-grams only (repeated n-grams are common in MCQ choices and
  // DROP passages); the table is most of the index's memory.
  slots = std::bit_ceil(std::max(kMinSlots, rep_.size() * kFinalSlotsNum / kFinalSlotsDen));
  if (slots < slots_.size()) {
    slots_.assign(slots, 0);
    slots_.shrink_to_fit();
    slot_mask_ = slots - 1;
    for (uint32_t id = 0; id < rep_.size(); ++id) insert_slot(hash_(tokens_.data() + rep_[id], n_), id);
  }

  for (size_t j = 1; j < n_; ++j) roll_pow_ *= kRollBase;
  if (options.prefilter) build_prefilter();

  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  const uint64_t n64 = n_;
  XXH3_64bits_update(st, &n64, sizeof n64);
  XXH3_64bits_update(st, sample_begin_.data(), sample_begin_.size() * sizeof(size_t));
  XXH3_64bits_update(st, tokens_.data(), tokens_.size() * sizeof(Token));
  fingerprint_ = XXH3_64bits_digest(st);
  XXH3_freeState(st);
}

void NgramIndex::insert_slot(uint64_t hash, uint32_t id) {
  uint64_t slot = hash & slot_mask_;
  while (slots_[slot] != 0) slot = (slot + 1) & slot_mask_;
  slots_[slot] = ((hash >> kTagShift) << kTagShift) | (uint64_t{id} + 1);
}

void NgramIndex::build_prefilter() {
  const size_t words = std::bit_ceil(std::max<size_t>(1, rep_.size() * kBloomBitsPerNgram / kBloomWordBits));
  bloom_.assign(words, 0);
  bloom_mask_ = words - 1;
  for (uint64_t off : rep_) {
    const uint64_t m = mix(rolling_hash(tokens_.data() + off, n_));
    bloom_[m & bloom_mask_] |= bloom_bits(m);
  }
}

uint32_t NgramIndex::find_hashed(const Token* window, uint64_t hash) const {
  const uint64_t tag = hash >> kTagShift;
  for (uint64_t slot = hash & slot_mask_;; slot = (slot + 1) & slot_mask_) {
    const uint64_t v = slots_[slot];
    if (v == 0) return kNoNgram;
    if ((v >> kTagShift) != tag) continue;
    const uint32_t id = static_cast<uint32_t>((v & kIdMask) - 1);
    if (std::memcmp(tokens_.data() + rep_[id], window, n_ * sizeof(Token)) == 0) return id;
  }
}

uint32_t NgramIndex::find(const Token* window) const {
  if (rep_.empty()) return kNoNgram;
  return find_hashed(window, hash_(window, n_));
}

void NgramIndex::scan_span(std::span<const Token> tokens, std::vector<uint32_t>& out) const {
  const size_t len = tokens.size();
  if (len < n_ || rep_.empty()) return;
  const Token* p = tokens.data();
  if (bloom_.empty()) {
    for (size_t i = 0; i + n_ <= len; ++i) {
      const uint32_t id = find_hashed(p + i, hash_(p + i, n_));
      if (id != kNoNgram) out.push_back(id);
    }
    return;
  }
  // Blocks of windows: first every rolling hash of the block, with a prefetch of its Bloom word,
  // then the tests. The loads of a block are independent, so their cache misses overlap instead of
  // queueing behind the rolling hash's dependency chain.
  const size_t windows = len - n_ + 1;
  uint64_t mixed[kPrefetchBlock];
  uint64_t h = rolling_hash(p, n_);
  for (size_t base = 0; base < windows; base += kPrefetchBlock) {
    const size_t count = std::min(kPrefetchBlock, windows - base);
    for (size_t j = 0; j < count; ++j) {
      const size_t i = base + j;
      mixed[j] = mix(h);
      __builtin_prefetch(&bloom_[mixed[j] & bloom_mask_]);
      if (i + n_ < len) h = (h - p[i] * roll_pow_) * kRollBase + p[i + n_];
    }
    for (size_t j = 0; j < count; ++j) {
      const uint64_t bits = bloom_bits(mixed[j]);
      if ((bloom_[mixed[j] & bloom_mask_] & bits) != bits) continue;
      const Token* w = p + base + j;
      const uint32_t id = find_hashed(w, hash_(w, n_));
      if (id != kNoNgram) out.push_back(id);
    }
  }
}

std::span<const Token> NgramIndex::sample_tokens(size_t sample) const {
  HRM_CHECK(sample + 1 < sample_begin_.size(), "sample out of range");
  return {tokens_.data() + sample_begin_[sample], sample_begin_[sample + 1] - sample_begin_[sample]};
}

std::span<const uint32_t> NgramIndex::sample_ngrams(size_t sample) const {
  HRM_CHECK(sample + 1 < ngram_begin_.size(), "sample out of range");
  return {position_ids_.data() + ngram_begin_[sample], ngram_begin_[sample + 1] - ngram_begin_[sample]};
}

size_t NgramIndex::sample_of(uint32_t id) const {
  HRM_CHECK(id < rep_.size(), "n-gram id out of range");
  // The sample whose token range holds the first occurrence.
  const auto it = std::upper_bound(sample_begin_.begin(), sample_begin_.end(), size_t{rep_[id]});
  return static_cast<size_t>(it - sample_begin_.begin()) - 1;
}

size_t NgramIndex::memory_bytes() const {
  return tokens_.capacity() * sizeof(Token) + (sample_begin_.capacity() + ngram_begin_.capacity()) * sizeof(size_t) +
         position_ids_.capacity() * sizeof(uint32_t) + rep_.capacity() * sizeof(uint32_t) +
         slots_.capacity() * sizeof(uint64_t) +
         bloom_.capacity() * sizeof(uint64_t);
}

}  // namespace hrm::ngram
