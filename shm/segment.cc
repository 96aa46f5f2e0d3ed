// shm/segment.cc: see segment.h.
#include "shm/segment.h"

#include <sys/mman.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cstring>
#include <new>

namespace bip = boost::interprocess;

namespace fusebox::shm {
namespace {

constexpr uint64_t kHeaderBytes = 64;

uint64_t fnv1a(std::string_view s) noexcept {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

bool name_is(const char* stored, std::string_view name) noexcept {
  return std::strncmp(stored, name.data(), name.size()) == 0 && stored[name.size()] == '\0';
}

void store_name(char* to, std::string_view name) noexcept {
  std::memcpy(to, name.data(), name.size());
  to[name.size()] = '\0';
}

uint32_t series_for(uint32_t max_breakers) noexcept { return 2 * max_breakers; }
uint32_t endpoints_for(uint32_t max_breakers) noexcept { return 4 * max_breakers; }

uint64_t round_up(uint64_t n) noexcept { return (n + 63) / 64 * 64; }

uint64_t block_bytes_for(uint32_t max_breakers) noexcept {
  return sizeof(WorkerHead) + uint64_t{series_for(max_breakers)} * sizeof(SeriesStats) +
         uint64_t{max_breakers} * sizeof(ClusterStats);
}

uint64_t series_offset(uint32_t max_breakers) noexcept {
  return kHeaderBytes + uint64_t{max_breakers} * sizeof(BreakerSlot);
}

uint64_t endpoints_offset(uint32_t max_breakers) noexcept {
  return round_up(series_offset(max_breakers) + uint64_t{series_for(max_breakers)} * sizeof(SeriesName));
}

uint64_t blocks_offset(uint32_t max_breakers) noexcept {
  return round_up(endpoints_offset(max_breakers) + uint64_t{endpoints_for(max_breakers)} * sizeof(EndpointHealth));
}

// Open addressing over a table of `cap` entries whose claim word is `in_use(i)`: 0 free, 1 being
// claimed, 2 ready (the name is written before 2 is published). Returns the index of the entry
// `matches` accepts, claiming a free one with `write` if there is none; -1 when the table is full.
template <typename InUse, typename Matches, typename Write>
int64_t find_or_claim(uint64_t hash, uint32_t cap, InUse in_use, Matches matches, Write write) noexcept {
  for (uint32_t probe = 0; probe < cap; ++probe) {
    const uint32_t i = static_cast<uint32_t>((hash + probe) % cap);
    std::atomic<uint32_t>& word = in_use(i);
    uint32_t use = word.load(std::memory_order_acquire);
    if (use == 0 && word.compare_exchange_strong(use, 1, std::memory_order_acq_rel)) {
      write(i);
      word.store(2, std::memory_order_release);
      return i;
    }
    // Another process is claiming this entry: its name is a few instructions away. If it never
    // comes, that process died mid-claim (at most once per entry): the entry is taken over.
    for (int spins = 0; use == 1 && spins < 1'000'000; ++spins) use = word.load(std::memory_order_acquire);
    if (use == 1 && word.compare_exchange_strong(use, 1, std::memory_order_acq_rel)) {
      write(i);
      word.store(2, std::memory_order_release);
      return i;
    }
    if (matches(i)) return i;
  }
  return -1;
}

}  // namespace

uint64_t Segment::bytes_for(uint32_t max_breakers) noexcept {
  return blocks_offset(max_breakers) + uint64_t{kWorkerBlocks} * block_bytes_for(max_breakers);
}

void Segment::layout(void* base, uint32_t max_breakers, bool initialize) {
  header_ = static_cast<SegmentHeader*>(base);
  slots_ = reinterpret_cast<BreakerSlot*>(static_cast<char*>(base) + kHeaderBytes);
  series_ = reinterpret_cast<SeriesName*>(static_cast<char*>(base) + series_offset(max_breakers));
  endpoints_ = reinterpret_cast<EndpointHealth*>(static_cast<char*>(base) + endpoints_offset(max_breakers));
  blocks_ = static_cast<char*>(base) + blocks_offset(max_breakers);
  if (!initialize) return;
  // The series table and the stats blocks are all zeros, as the kernel hands new pages over:
  // left untouched, a block costs no memory until its worker counts something.
  for (uint32_t i = 0; i < max_breakers; ++i) new (&slots_[i]) BreakerSlot();
  header_->max_breakers = max_breakers;
  header_->slot_bytes = sizeof(BreakerSlot);
  header_->total_bytes = bytes_for(max_breakers);
  header_->max_series = series_for(max_breakers);
  header_->worker_blocks = kWorkerBlocks;
  header_->block_bytes = block_bytes_for(max_breakers);
  header_->max_endpoints = endpoints_for(max_breakers);
  header_->endpoint_bytes = sizeof(EndpointHealth);
  header_->layout_version = kLayoutVersion;
  std::atomic_thread_fence(std::memory_order_release);
  header_->magic = kMagic;  // last: a half-initialized segment never looks valid
}

Result<std::unique_ptr<Segment>> Segment::open(const std::string& name, uint32_t max_breakers,
                                               bool recreate_incompatible) {
  std::unique_ptr<Segment> seg(new Segment());
  seg->name_ = name;
  const uint64_t bytes = bytes_for(max_breakers);
  try {
    bool created = false;
    std::unique_ptr<bip::shared_memory_object> shm;
    try {
      shm = std::make_unique<bip::shared_memory_object>(bip::create_only, name.c_str(), bip::read_write);
      shm->truncate(static_cast<bip::offset_t>(bytes));
      created = true;
    } catch (const bip::interprocess_exception&) {
      shm = std::make_unique<bip::shared_memory_object>(bip::open_only, name.c_str(), bip::read_write);
    }
    bip::offset_t size = 0;
    shm->get_size(size);
    std::string problem;
    if (!created) {
      if (static_cast<uint64_t>(size) < sizeof(SegmentHeader)) {
        problem = "it is " + std::to_string(size) + " bytes, too small for a header";
      } else {
        bip::mapped_region probe(*shm, bip::read_only, 0, sizeof(SegmentHeader));
        const auto* h = static_cast<const SegmentHeader*>(probe.get_address());
        if (h->magic != kMagic) {
          problem = "it is not a fusebox segment (or was never finished)";
        } else if (h->layout_version != kLayoutVersion || h->slot_bytes != sizeof(BreakerSlot) ||
                   h->block_bytes != block_bytes_for(h->max_breakers) || h->worker_blocks != kWorkerBlocks ||
                   h->endpoint_bytes != sizeof(EndpointHealth)) {
          problem = "layout version " + std::to_string(h->layout_version) + ", this binary expects " +
                    std::to_string(kLayoutVersion);
        } else if (h->max_breakers != max_breakers) {
          problem = "it holds " + std::to_string(h->max_breakers) + " breakers, the config asks for " +
                    std::to_string(max_breakers);
        } else if (static_cast<uint64_t>(size) < h->total_bytes) {
          problem = "it is shorter than its header says";
        }
      }
    }
    if (!problem.empty()) {
      const std::string message = "attach shared memory \"" + name + "\": " + problem +
                                  "; stop the processes that use it or change shm.name";
      if (!recreate_incompatible) return Error{message};
      shm.reset();
      bip::shared_memory_object::remove(name.c_str());
      auto again = open(name, max_breakers, false);
      if (!again) return again.error();
      again.value()->opened_ = Opened::Recreated;
      again.value()->incompatibility_ = message;
      return std::move(again).value();
    }
    seg->region_ = std::make_unique<bip::mapped_region>(*shm, bip::read_write, 0, bytes);
    seg->layout(seg->region_->get_address(), max_breakers, created);
    seg->opened_ = created ? Opened::Created : Opened::Attached;
  } catch (const bip::interprocess_exception& e) {
    return Error{"open shared memory \"" + name + "\": " + e.what() +
                 " (is /dev/shm mounted and writable? in Kubernetes, mount a memory emptyDir there)"};
  }
  return seg;
}

std::unique_ptr<Segment> Segment::anonymous(uint32_t max_breakers) {
  std::unique_ptr<Segment> seg(new Segment());
  seg->name_ = "<anonymous>";
  seg->anonymous_bytes_ = bytes_for(max_breakers);
  seg->anonymous_base_ = mmap(nullptr, seg->anonymous_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (seg->anonymous_base_ == MAP_FAILED) throw std::bad_alloc();
  seg->layout(seg->anonymous_base_, max_breakers, true);
  return seg;
}

bool Segment::remove(const std::string& name) noexcept {
  return bip::shared_memory_object::remove(name.c_str());
}

Segment::~Segment() {
  if (anonymous_base_ != nullptr) munmap(anonymous_base_, anonymous_bytes_);
}

int64_t Segment::find(std::string_view name) const noexcept {
  const uint32_t cap = header_->max_breakers;
  if (cap == 0 || name.size() >= sizeof(BreakerSlot::name)) return -1;
  const uint64_t start = fnv1a(name) % cap;
  for (uint32_t probe = 0; probe < cap; ++probe) {
    const uint32_t i = static_cast<uint32_t>((start + probe) % cap);
    const uint32_t use = slots_[i].in_use.load(std::memory_order_acquire);
    if (use == 0) return -1;
    if (use == 2 && name_is(slots_[i].name, name)) return i;
  }
  return -1;
}

Result<uint32_t> Segment::find_or_add(std::string_view name) {
  if (name.empty() || name.size() >= sizeof(BreakerSlot::name))
    return Error{"breaker name \"" + std::string(name) + "\" must be 1 to 63 characters"};
  const uint32_t cap = header_->max_breakers;
  const int64_t i = find_or_claim(
      fnv1a(name), cap, [&](uint32_t j) -> std::atomic<uint32_t>& { return slots_[j].in_use; },
      [&](uint32_t j) { return name_is(slots_[j].name, name); },
      [&](uint32_t j) { store_name(slots_[j].name, name); });
  if (i < 0)
    return Error{"breaker table full: " + std::to_string(used()) + " of " + std::to_string(cap) +
                 " slots used; raise shm.max_breakers"};
  return static_cast<uint32_t>(i);
}

std::string_view Segment::slot_name(uint32_t index) const noexcept {
  if (index >= header_->max_breakers || slots_[index].in_use.load(std::memory_order_acquire) != 2) return {};
  return slots_[index].name;
}

namespace {

// An entry of a table keyed by two names (its members `first` and `second`), found or claimed.
template <typename Entry, size_t N1, size_t N2>
int64_t find_or_claim_pair(Entry* table, uint32_t cap, char (Entry::*first)[N1], char (Entry::*second)[N2],
                           std::string_view a, std::string_view b) noexcept {
  return find_or_claim(
      fnv1a(a) * 31 + fnv1a(b), cap, [&](uint32_t j) -> std::atomic<uint32_t>& { return table[j].in_use; },
      [&](uint32_t j) { return name_is(table[j].*first, a) && name_is(table[j].*second, b); },
      [&](uint32_t j) {
        store_name(table[j].*first, a);
        store_name(table[j].*second, b);
      });
}

}  // namespace

Result<uint32_t> Segment::find_or_add_series(std::string_view listener, std::string_view cluster) {
  if (listener.empty() || listener.size() >= sizeof(SeriesName::listener) ||
      cluster.size() >= sizeof(SeriesName::cluster))
    return Error{"series \"" + std::string(listener) + "/" + std::string(cluster) +
                 "\": listener and cluster names must be under 64 characters"};
  const uint32_t cap = header_->max_series;
  const int64_t i = find_or_claim_pair(series_, cap, &SeriesName::listener, &SeriesName::cluster, listener, cluster);
  if (i < 0)
    return Error{"metric series table full: " + std::to_string(cap) +
                 " listener-cluster pairs; raise shm.max_breakers (the table holds twice as many)"};
  return static_cast<uint32_t>(i);
}

Result<uint32_t> Segment::find_or_add_endpoint(std::string_view cluster, std::string_view endpoint) {
  if (cluster.empty() || cluster.size() >= sizeof(EndpointHealth::cluster) || endpoint.empty() ||
      endpoint.size() >= sizeof(EndpointHealth::endpoint))
    return Error{"endpoint \"" + std::string(endpoint) + "\" of cluster \"" + std::string(cluster) +
                 "\": the name is too long for the segment (127 characters at most)"};
  const uint32_t cap = header_->max_endpoints;
  const int64_t i =
      find_or_claim_pair(endpoints_, cap, &EndpointHealth::cluster, &EndpointHealth::endpoint, cluster, endpoint);
  if (i < 0)
    return Error{"endpoint table full: " + std::to_string(cap) +
                 " checked endpoints; raise shm.max_breakers (the table holds four times as many)"};
  return static_cast<uint32_t>(i);
}

WorkerBlock Segment::worker(uint32_t index) noexcept {
  char* base = blocks_ + uint64_t{index} * header_->block_bytes;
  WorkerBlock b;
  b.head = reinterpret_cast<WorkerHead*>(base);
  b.series = reinterpret_cast<SeriesStats*>(base + sizeof(WorkerHead));
  b.clusters = reinterpret_cast<ClusterStats*>(base + sizeof(WorkerHead) +
                                               uint64_t{header_->max_series} * sizeof(SeriesStats));
  return b;
}

uint32_t Segment::used() const noexcept {
  uint32_t n = 0;
  for (uint32_t i = 0; i < header_->max_breakers; ++i)
    if (slots_[i].in_use.load(std::memory_order_relaxed) == 2) ++n;
  return n;
}

}  // namespace fusebox::shm
