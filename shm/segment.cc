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

bool name_is(const BreakerSlot& s, std::string_view name) noexcept {
  return std::strncmp(s.name, name.data(), name.size()) == 0 && s.name[name.size()] == '\0';
}

}  // namespace

uint64_t Segment::bytes_for(uint32_t max_breakers) noexcept {
  return kHeaderBytes + uint64_t{max_breakers} * sizeof(BreakerSlot);
}

void Segment::layout(void* base, uint32_t max_breakers, bool initialize) {
  header_ = static_cast<SegmentHeader*>(base);
  slots_ = reinterpret_cast<BreakerSlot*>(static_cast<char*>(base) + kHeaderBytes);
  if (!initialize) return;
  for (uint32_t i = 0; i < max_breakers; ++i) new (&slots_[i]) BreakerSlot();
  header_->max_breakers = max_breakers;
  header_->slot_bytes = sizeof(BreakerSlot);
  header_->total_bytes = bytes_for(max_breakers);
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
        } else if (h->layout_version != kLayoutVersion || h->slot_bytes != sizeof(BreakerSlot)) {
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
    if (use == 2 && name_is(slots_[i], name)) return i;
  }
  return -1;
}

Result<uint32_t> Segment::find_or_add(std::string_view name) {
  if (name.empty() || name.size() >= sizeof(BreakerSlot::name))
    return Error{"breaker name \"" + std::string(name) + "\" must be 1 to 63 characters"};
  const uint32_t cap = header_->max_breakers;
  const uint64_t start = fnv1a(name) % (cap == 0 ? 1 : cap);
  for (uint32_t probe = 0; probe < cap; ++probe) {
    const uint32_t i = static_cast<uint32_t>((start + probe) % cap);
    BreakerSlot& s = slots_[i];
    uint32_t use = s.in_use.load(std::memory_order_acquire);
    if (use == 0) {
      if (s.in_use.compare_exchange_strong(use, 1, std::memory_order_acq_rel)) {
        std::memcpy(s.name, name.data(), name.size());
        s.name[name.size()] = '\0';
        s.in_use.store(2, std::memory_order_release);
        return i;
      }
    }
    // Another process is claiming this slot: its name is a few instructions away. If it never
    // comes, that process died mid-claim (at most once per slot): the slot is taken over.
    for (int spins = 0; use == 1 && spins < 1'000'000; ++spins) use = s.in_use.load(std::memory_order_acquire);
    if (use == 1 && s.in_use.compare_exchange_strong(use, 1, std::memory_order_acq_rel)) {
      std::memcpy(s.name, name.data(), name.size());
      s.name[name.size()] = '\0';
      s.in_use.store(2, std::memory_order_release);
      return i;
    }
    if (name_is(s, name)) return i;
  }
  return Error{"breaker table full: " + std::to_string(used()) + " of " + std::to_string(cap) +
               " slots used; raise shm.max_breakers"};
}

uint32_t Segment::used() const noexcept {
  uint32_t n = 0;
  for (uint32_t i = 0; i < header_->max_breakers; ++i)
    if (slots_[i].in_use.load(std::memory_order_relaxed) == 2) ++n;
  return n;
}

}  // namespace fusebox::shm
