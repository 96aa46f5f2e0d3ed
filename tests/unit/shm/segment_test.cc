// tests/unit/shm/segment_test.cc: the breaker table (found by name, open addressing) and the
// named segment's life: created, attached, refused or recreated when its layout differs.
#include "shm/segment.h"

#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <doctest/doctest.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "shm/breaker.h"
#include "shm/clock.h"

using namespace fusebox::shm;
namespace bip = boost::interprocess;

namespace {

// A segment name no other test run uses, removed before and after the test.
struct NamedSegment {
  explicit NamedSegment(const char* what)
      : name("fusebox-test-" + std::string(what) + "-" + std::to_string(getpid())) {
    Segment::remove(name);
  }
  ~NamedSegment() { Segment::remove(name); }
  std::string name;
};

// Writes into the header of an existing segment through a mapping of our own, as another binary
// (or a corrupted one) would have left it.
void overwrite_header(const std::string& name, void (*edit)(SegmentHeader&)) {
  bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_write);
  bip::mapped_region region(shm, bip::read_write, 0, sizeof(SegmentHeader));
  edit(*static_cast<SegmentHeader*>(region.get_address()));
}

}  // namespace

// ---- the table -------------------------------------------------------------------------------

TEST_CASE("find_or_add returns the same slot for the same name, and another for another name") {
  auto seg = Segment::anonymous(16);
  CHECK(seg->capacity() == 16u);
  CHECK(seg->used() == 0u);
  const auto a = seg->find_or_add("payments");
  const auto b = seg->find_or_add("inventory");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a.value() != b.value());
  CHECK(a.value() < 16u);
  CHECK(b.value() < 16u);
  const auto again = seg->find_or_add("payments");
  REQUIRE(again.ok());
  CHECK(again.value() == a.value());
  CHECK(seg->used() == 2u);
  CHECK(seg->find("payments") == a.value());
  CHECK(seg->find("inventory") == b.value());
  CHECK(seg->find("nobody") == -1);
  CHECK(std::strcmp(seg->slot(a.value()).name, "payments") == 0);
  CHECK(seg->slot(a.value()).in_use.load() == 2u);
}

TEST_CASE("a new slot starts closed, generation 0, with an empty window and ring") {
  auto seg = Segment::anonymous(4);
  BreakerSlot& slot = seg->slot(seg->find_or_add("payments").value());
  const StateWord w(slot.state_word.load());
  CHECK(w.state() == State::Closed);
  CHECK(w.generation() == 0u);
  CHECK(slot.transitions.read().empty());
  CHECK(slot.count_calls.load() == 0);
}

TEST_CASE("names that share a home slot all find their own slot, until the table is full") {
  // A name's home slot is where it lands in an empty table. Four names with the same home fill a
  // table of four by probing past each other.
  const auto home = [](const std::string& name) { return Segment::anonymous(4)->find_or_add(name).value(); };
  std::vector<std::string> names;
  const uint32_t shared_home = home("n0");
  for (int i = 0; names.size() < 4 && i < 1000; ++i) {
    std::string name = std::to_string(i);
    name.insert(name.begin(), 'n');  // not "n" + ...: GCC 12 warns falsely (-Wrestrict) on that
    if (home(name) == shared_home) names.push_back(name);
  }
  REQUIRE(names.size() == 4);

  auto seg = Segment::anonymous(4);
  std::set<uint32_t> slots;
  for (const std::string& n : names) {
    const auto r = seg->find_or_add(n);
    REQUIRE_MESSAGE(r.ok(), n);
    slots.insert(r.value());
  }
  CHECK(slots.size() == 4);
  CHECK(seg->used() == 4u);
  for (const std::string& n : names) {
    CAPTURE(n);
    const auto r = seg->find_or_add(n);  // found again, even with the table full
    REQUIRE(r.ok());
    CHECK(seg->find(n) == r.value());
    CHECK(seg->slot(r.value()).name == n);
  }
  const auto full = seg->find_or_add("another");
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().message == "breaker table full: 4 of 4 slots used; raise shm.max_breakers");
  CHECK(seg->find("another") == -1);
}

TEST_CASE("a name that is a prefix of another is a different breaker") {
  auto seg = Segment::anonymous(8);
  const uint32_t pay = seg->find_or_add("pay").value();
  const uint32_t payments = seg->find_or_add("payments").value();
  CHECK(pay != payments);
  CHECK(seg->find("pay") == pay);
  CHECK(seg->find("paym") == -1);
}

TEST_CASE("breaker names are 1 to 63 characters") {
  auto seg = Segment::anonymous(4);
  const auto empty = seg->find_or_add("");
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().message == "breaker name \"\" must be 1 to 63 characters");
  const std::string longest(63, 'x');
  CHECK(seg->find_or_add(longest).ok());
  CHECK(seg->find(longest) >= 0);
  const std::string too_long(64, 'x');
  const auto r = seg->find_or_add(too_long);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "breaker name \"" + too_long + "\" must be 1 to 63 characters");
  CHECK(seg->find(too_long) == -1);
}

TEST_CASE("slots do not share cache lines") {
  CHECK(alignof(BreakerSlot) == 64);
  CHECK(sizeof(BreakerSlot) % 64 == 0);
  auto seg = Segment::anonymous(2);
  const auto a = reinterpret_cast<uintptr_t>(&seg->slot(0));
  const auto b = reinterpret_cast<uintptr_t>(&seg->slot(1));
  CHECK(a % 64 == 0);
  CHECK(b - a == sizeof(BreakerSlot));
  CHECK(Segment::bytes_for(2) >= 64 + 2 * sizeof(BreakerSlot));
}

// ---- a named segment -------------------------------------------------------------------------

TEST_CASE("a named segment is created, then attached with every breaker where it was") {
  NamedSegment n("attach");
  const ManualClock clock;
  BreakerPolicy policy;
  policy.consecutive_failures = 1;

  auto first = Segment::open(n.name, 4, false);
  REQUIRE_MESSAGE(first.ok(), (first.ok() ? "" : first.error().message));
  CHECK(first.value()->opened() == Segment::Opened::Created);
  CHECK(first.value()->name() == n.name);
  CHECK(first.value()->incompatibility().empty());
  const uint32_t index = first.value()->find_or_add("payments").value();

  auto second = Segment::open(n.name, 4, false);
  REQUIRE_MESSAGE(second.ok(), (second.ok() ? "" : second.error().message));
  CHECK(second.value()->opened() == Segment::Opened::Attached);
  CHECK(second.value()->find("payments") == index);
  CHECK(second.value()->find_or_add("payments").value() == index);

  // Tripped through one mapping, open in the other.
  Breaker one(first.value()->slot(index), policy);
  Breaker other(second.value()->slot(index), policy);
  const Admission a = one.admit(clock.now_ns());
  one.record(a, {true, 0}, clock.now_ns(), 0);
  REQUIRE(one.state() == State::Open);
  CHECK(other.state() == State::Open);
  CHECK(other.admit(clock.now_ns()).kind == Admission::Rejected);
  CHECK(second.value()->slot(index).transitions.read().size() == 1);

  // And it outlives both mappings.
  first.value().reset();
  second.value().reset();
  auto third = Segment::open(n.name, 4, false);
  REQUIRE(third.ok());
  CHECK(third.value()->opened() == Segment::Opened::Attached);
  CHECK(Breaker(third.value()->slot(index), policy).state() == State::Open);
}

TEST_CASE("a segment made for another number of breakers is refused, or recreated if asked") {
  NamedSegment n("size");
  {
    auto seg = Segment::open(n.name, 4, false);
    REQUIRE(seg.ok());
    (void)seg.value()->find_or_add("payments");
  }
  const std::string message = "attach shared memory \"" + n.name +
                              "\": it holds 4 breakers, the config asks for 8; stop the processes that use "
                              "it or change shm.name";
  auto refused = Segment::open(n.name, 8, false);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message == message);

  auto recreated = Segment::open(n.name, 8, true);
  REQUIRE_MESSAGE(recreated.ok(), (recreated.ok() ? "" : recreated.error().message));
  CHECK(recreated.value()->opened() == Segment::Opened::Recreated);
  CHECK(recreated.value()->incompatibility() == message);
  CHECK(recreated.value()->capacity() == 8u);
  CHECK(recreated.value()->used() == 0u);
  CHECK(recreated.value()->find("payments") == -1);

  auto attached = Segment::open(n.name, 8, false);
  REQUIRE(attached.ok());
  CHECK(attached.value()->opened() == Segment::Opened::Attached);
}

TEST_CASE("a segment of another layout version is refused, or recreated if asked") {
  NamedSegment n("layout");
  { REQUIRE(Segment::open(n.name, 4, false).ok()); }
  overwrite_header(n.name, [](SegmentHeader& h) { h.layout_version = kLayoutVersion + 98; });
  const std::string message = "attach shared memory \"" + n.name + "\": layout version " +
                              std::to_string(kLayoutVersion + 98) + ", this binary expects " +
                              std::to_string(kLayoutVersion) +
                              "; stop the processes that use it or change shm.name";
  auto refused = Segment::open(n.name, 4, false);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message == message);

  auto recreated = Segment::open(n.name, 4, true);
  REQUIRE(recreated.ok());
  CHECK(recreated.value()->opened() == Segment::Opened::Recreated);
  CHECK(recreated.value()->incompatibility() == message);
  CHECK(recreated.value()->find_or_add("payments").ok());
}

TEST_CASE("a segment whose slots are another size is refused as another layout") {
  NamedSegment n("slot-size");
  { REQUIRE(Segment::open(n.name, 4, false).ok()); }
  overwrite_header(n.name, [](SegmentHeader& h) { h.slot_bytes += 64; });
  auto refused = Segment::open(n.name, 4, false);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message.find("layout version") != std::string::npos);
}

TEST_CASE("shared memory that is not a fusebox segment is refused") {
  NamedSegment n("foreign");
  SUBCASE("no magic") {
    {
      bip::shared_memory_object shm(bip::create_only, n.name.c_str(), bip::read_write);
      shm.truncate(static_cast<bip::offset_t>(Segment::bytes_for(4)));  // zeros
    }
    auto refused = Segment::open(n.name, 4, false);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message == "attach shared memory \"" + n.name +
                                         "\": it is not a fusebox segment (or was never finished); stop the "
                                         "processes that use it or change shm.name");
    auto recreated = Segment::open(n.name, 4, true);
    REQUIRE(recreated.ok());
    CHECK(recreated.value()->opened() == Segment::Opened::Recreated);
  }
  SUBCASE("too small for a header") {
    {
      bip::shared_memory_object shm(bip::create_only, n.name.c_str(), bip::read_write);
      shm.truncate(8);
    }
    auto refused = Segment::open(n.name, 4, false);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message == "attach shared memory \"" + n.name +
                                         "\": it is 8 bytes, too small for a header; stop the processes that "
                                         "use it or change shm.name");
  }
}

TEST_CASE("remove() says whether there was a segment to remove") {
  NamedSegment n("remove");
  CHECK_FALSE(Segment::remove(n.name));
  { REQUIRE(Segment::open(n.name, 2, false).ok()); }
  CHECK(Segment::remove(n.name));
  auto again = Segment::open(n.name, 2, false);
  REQUIRE(again.ok());
  CHECK(again.value()->opened() == Segment::Opened::Created);
}
