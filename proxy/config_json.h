// proxy/config_json.h: the running configuration as JSON, in the config file's own keys and
// shapes, so that an operator reading it (GET /admin/config) sees what runs, and so that it can
// be fed back as a config: JSON is YAML, and parse_config() loads the dump of this into an equal
// Config. Not here: the token itself (only admin.token_file is written), the config's source
// name, and the keys of features still to come (retry, redis, ...), which the loader accepts and
// ignores, so a Config holds nothing of them to write back.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "proxy/config.h"

namespace fusebox::proxy {

// Every key with its effective value, defaults included, in the order of the key reference at the
// top of config_loader.cc (hence ordered_json). Values are written in forms the parsers read
// back: durations in the largest exact unit ("250ms", "2m"; "0"), sizes in bytes or whole KiB,
// MiB or GiB, percentages as "50%", open.multiplier and open.jitter as decimals (1.5, 0.1).
// Optional sections appear only when they are on: breaker.slow_calls when its threshold is more
// than 0, a cluster's fallback when enabled, shm.name and admin.token_file when set, a route's
// host when it has one. Routes come out in the order the loader sorted them into.
//
// Expects a Config that parse_config() or command_line_config() produced (and apply_environment()
// may have changed): it writes values, it does not check them. Strings are written as held; a
// fallback body or header value read from a file holding bytes that are not UTF-8 makes dump()
// throw unless given nlohmann's error_handler_t::replace (which then loses those bytes).
nlohmann::ordered_json config_to_json(const Config& config);

}  // namespace fusebox::proxy
