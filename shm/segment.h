// shm/segment.h: the named shared-memory segment of one fusebox instance: a versioned header, a
// fixed table of breaker slots found by name (open addressing) or by an index resolved once at
// config load, a table of metric series named the same way, and one stats block per worker
// (see worker_stats.h), and the health of every checked endpoint (endpoint_health.h). Created by the master before it forks; the workers inherit the mapping. It
// outlives the processes: a respawned worker, or a restarted fusebox with the same name, finds
// every breaker where it was. A segment of another layout version is refused, and the caller may
// recreate it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "shm/breaker_slot.h"
#include "shm/endpoint_health.h"
#include "shm/result.h"
#include "shm/worker_stats.h"

namespace boost::interprocess {
class mapped_region;
}

namespace fusebox::shm {

constexpr uint64_t kMagic = 0x66757365626f7831;  // "fusebox1"
constexpr uint32_t kLayoutVersion = 3;
// Stats blocks: enough for 32 workers and the 32 of a reload's old generation still draining.
constexpr uint32_t kWorkerBlocks = 64;

struct SegmentHeader {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t max_breakers;
  uint64_t slot_bytes;  // sizeof(BreakerSlot) of the binary that created it
  uint64_t total_bytes;
  uint32_t max_series;
  uint32_t worker_blocks;
  uint64_t block_bytes;  // one worker's stats block
  uint32_t max_endpoints;
  uint32_t endpoint_bytes;  // sizeof(EndpointHealth)
};

class Segment {
 public:
  enum class Opened : uint8_t { Created, Attached, Recreated };

  // Opens the segment `name` (a POSIX shared-memory name, without the leading "/"), creating it
  // with room for max_breakers if it does not exist. An existing segment of another layout is an
  // error unless `recreate_incompatible`, in which case it is removed and created anew (and
  // opened() says Recreated, with the reason in incompatibility()).
  static Result<std::unique_ptr<Segment>> open(const std::string& name, uint32_t max_breakers,
                                               bool recreate_incompatible);
  // An anonymous mapping of the same layout, shared with children across fork: for tests.
  static std::unique_ptr<Segment> anonymous(uint32_t max_breakers);
  static bool remove(const std::string& name) noexcept;

  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  // The slot named `name`, claimed if new (its state then starts as `initial`). Error when the
  // table is full: "breaker table full: 256 of 256 slots used; raise shm.max_breakers".
  Result<uint32_t> find_or_add(std::string_view name);
  // -1 if there is none.
  int64_t find(std::string_view name) const noexcept;
  BreakerSlot& slot(uint32_t index) noexcept { return slots_[index]; }
  uint32_t capacity() const noexcept { return header_->max_breakers; }
  uint32_t used() const noexcept;
  // The claimed slot's name ("" if the slot is free).
  std::string_view slot_name(uint32_t index) const noexcept;

  // The series of `listener` and `cluster` ("" for the listener's own), claimed if new. Error when
  // the table (2 × max_breakers) is full.
  Result<uint32_t> find_or_add_series(std::string_view listener, std::string_view cluster);
  uint32_t series_capacity() const noexcept { return header_->max_series; }
  // The health entry of `endpoint` ("host:port") of `cluster`, claimed if new (then up). Error when
  // the table (4 × max_breakers) is full.
  Result<uint32_t> find_or_add_endpoint(std::string_view cluster, std::string_view endpoint);
  EndpointHealth& endpoint(uint32_t index) noexcept { return endpoints_[index]; }
  // Worker stats block i < kWorkerBlocks.
  WorkerBlock worker(uint32_t index) noexcept;
  Opened opened() const noexcept { return opened_; }
  const std::string& incompatibility() const noexcept { return incompatibility_; }
  const std::string& name() const noexcept { return name_; }

  static uint64_t bytes_for(uint32_t max_breakers) noexcept;

 private:
  Segment() = default;
  void layout(void* base, uint32_t max_breakers, bool initialize);

  std::unique_ptr<boost::interprocess::mapped_region> region_;
  void* anonymous_base_ = nullptr;
  uint64_t anonymous_bytes_ = 0;
  SegmentHeader* header_ = nullptr;
  BreakerSlot* slots_ = nullptr;
  SeriesName* series_ = nullptr;
  EndpointHealth* endpoints_ = nullptr;
  char* blocks_ = nullptr;
  std::string name_;
  Opened opened_ = Opened::Created;
  std::string incompatibility_;
};

}  // namespace fusebox::shm
