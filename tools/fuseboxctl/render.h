// tools/fuseboxctl/render.h: turns the admin API's JSON answers (docs/admin-api.md) into what
// fuseboxctl prints. Lenient inside a breaker, since fusebox may be older or newer than
// fuseboxctl: a missing or null field prints as "-". Strict about the shape of the answer as a
// whole (an object with a "breakers" list, say), which tells the admin API from another server.
//
// Not the place for --json: that prints the server's JSON as it came, through pretty().
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "shm/result.h"

namespace fusebox::fuseboxctl {

// Keeps the server's key order, so that --json and `show` list fields as the API documents them.
using Json = nlohmann::ordered_json;

// Two-space indentation and a final newline; invalid UTF-8 in a string is replaced, not thrown.
std::string pretty(const Json& json);

// GET /admin/breakers: CLUSTER, STATE, CALLS, FAILURES, SLOW, FAILURE%, NEXT TRIAL, REASON.
Result<std::string> status_table(const Json& answer);

// GET /admin/breakers/NAME: "key: value" lines for the breaker, then for its config (keys of
// nested objects joined with "."), then its transitions as a table (AT, FROM, TO, REASON).
Result<std::string> breaker_details(const Json& breaker);

// POST /admin/breakers/NAME/ACTION: "payments: forced_open (open)", the state after the action.
Result<std::string> action_line(const Json& breaker, std::string_view action);

// GET /admin/config: the running configuration alone, pretty.
Result<std::string> config_text(const Json& answer);

// The time until an open breaker's next trial call: "28.4s", "4m05s", "1h02m".
std::string duration_text(double ms);

}  // namespace fusebox::fuseboxctl
