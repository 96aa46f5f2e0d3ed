// proxy/admin_api.h: what the admin listener's paths mean (docs/admin-api.md is the contract):
// probes, /metrics, the breakers as JSON and the operator's commands on them, the config. The
// master implements ControlPlane; this file decides who may do what and how answers look, and
// owns no socket (admin_server.cc does).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proxy/admin_server.h"
#include "proxy/config.h"
#include "proxy/segment_index.h"
#include "shm/result.h"
#include "shm/segment.h"

namespace fusebox::proxy {

struct Readiness {
  unsigned workers = 0;        // of the current config generation
  unsigned workers_ready = 0;  // ... whose loop runs
};

class ControlPlane {
 public:
  virtual ~ControlPlane() = default;
  virtual const Config& config() const = 0;
  virtual uint64_t config_generation() const = 0;
  virtual const SegmentIndex& segment_index() const = 0;
  virtual shm::Segment& segment() = 0;
  virtual Readiness readiness() const = 0;
  virtual std::string scrape() = 0;  // Prometheus text
  // Validates `text` (a whole config, YAML or JSON) and applies it as a reload; the new
  // generation, or every problem found in *errors.
  virtual Result<uint64_t> apply_config(const std::string& text, std::vector<std::string>* errors) = 0;
  // The bearer token that state-changing calls need; empty: none configured, changes refused.
  virtual const std::string& admin_token() const = 0;
};

AdminResponse handle_admin(ControlPlane& control, const AdminRequest& request);

}  // namespace fusebox::proxy
