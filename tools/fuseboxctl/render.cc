// tools/fuseboxctl/render.cc: see render.h.
#include "tools/fuseboxctl/render.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <utility>
#include <vector>

#include "tools/fuseboxctl/table.h"

namespace fusebox::fuseboxctl {

namespace {

constexpr std::string_view kNone = "-";

// The value at obj.key1.key2..., or nullptr if any step is missing or not an object.
const Json* field(const Json& obj, std::initializer_list<const char*> path) {
  const Json* at = &obj;
  for (const char* key : path) {
    if (!at->is_object()) return nullptr;
    const auto it = at->find(key);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

// A scalar as a person reads it: strings without quotes, null as "-". Arrays of scalars are joined
// with ", " (["500-599", "429"] is "500-599, 429"); anything else is compact JSON.
std::string text(const Json* value) {
  if (value == nullptr || value->is_null()) return std::string(kNone);
  if (value->is_string()) return value->get<std::string>();
  const auto scalar = [](const Json& v) { return !v.is_structured(); };
  if (value->is_array() && std::all_of(value->begin(), value->end(), scalar)) {
    if (value->empty()) return std::string(kNone);
    std::string joined;
    for (const Json& item : *value) joined += (joined.empty() ? "" : ", ") + text(&item);
    return joined;
  }
  return value->dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string percent_text(const Json* value) {
  if (value == nullptr || !value->is_number()) return text(value);
  char out[32];
  std::snprintf(out, sizeof out, "%.1f", value->get<double>());
  return out;
}

// "key: value" lines, values aligned one space after the longest key.
class KeyValues {
 public:
  // Nested objects become dotted keys: {"open": {"base": "30s"}} is "open.base: 30s".
  void add(const std::string& prefix, const Json& object, std::initializer_list<std::string_view> skip = {}) {
    for (const auto& [key, value] : object.items()) {
      if (std::find(skip.begin(), skip.end(), key) != skip.end()) continue;
      if (value.is_object() && !value.empty())
        add(prefix + key + ".", value);
      else
        lines_.emplace_back(prefix + key, text(&value));
    }
  }

  std::string render() const {
    size_t width = 0;
    for (const auto& line : lines_) width = std::max(width, line.first.size());
    std::string out;
    for (const auto& [key, value] : lines_) {
      std::string clean = value;
      for (char& c : clean)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
      out += key + ":" + std::string(width - key.size() + 1, ' ') + clean + "\n";
    }
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> lines_;
};

Error not_a_breaker() { return Error{"the answer is not a breaker (a JSON object with \"cluster\" and \"state\")"}; }

bool is_breaker(const Json& b) { return b.is_object() && b.contains("cluster") && b.contains("state"); }

// "payments", or "payments/charges" for route charges' own breaker (`show charges` names it).
std::string breaker_label(const Json& b) {
  const Json* route = field(b, {"route"});
  return text(field(b, {"cluster"})) + (route != nullptr && route->is_string() ? "/" + text(route) : "");
}

}  // namespace

std::string pretty(const Json& json) { return json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n"; }

std::string duration_text(double ms) {
  char out[32];
  if (ms < 59'950) {  // rounds to at most "59.9s"
    std::snprintf(out, sizeof out, "%.1fs", std::max(ms, 0.0) / 1000);
    return out;
  }
  const long seconds = std::lround(ms / 1000);
  if (seconds < 3600) {
    std::snprintf(out, sizeof out, "%ldm%02lds", seconds / 60, seconds % 60);
  } else {
    const long minutes = std::lround(static_cast<double>(seconds) / 60);
    std::snprintf(out, sizeof out, "%ldh%02ldm", minutes / 60, minutes % 60);
  }
  return out;
}

Result<std::string> status_table(const Json& answer) {
  const Json* breakers = field(answer, {"breakers"});
  if (breakers == nullptr || !breakers->is_array())
    return Error{"the answer is not the admin API's breaker list (a JSON object with a \"breakers\" array)"};
  Table table({{"CLUSTER"},
               {"STATE"},
               {"CALLS", Align::Right},
               {"FAILURES", Align::Right},
               {"SLOW", Align::Right},
               {"FAILURE%", Align::Right},
               {"NEXT TRIAL", Align::Right},
               {"REASON"}});
  for (const Json& b : *breakers) {
    if (!is_breaker(b)) return not_a_breaker();
    const Json* next_trial = field(b, {"next_trial_in_ms"});
    table.add_row({breaker_label(b), text(field(b, {"state"})), text(field(b, {"window", "calls"})),
                   text(field(b, {"window", "failures"})), text(field(b, {"window", "slow"})),
                   percent_text(field(b, {"window", "failure_rate"})),
                   next_trial != nullptr && next_trial->is_number() ? duration_text(next_trial->get<double>())
                                                                     : text(next_trial),
                   text(field(b, {"last_reason"}))});
  }
  return table.render();
}

Result<std::string> breaker_details(const Json& breaker) {
  if (!is_breaker(breaker)) return not_a_breaker();
  KeyValues values;
  values.add("", breaker, {"config", "transitions"});
  std::string out = values.render();

  if (const Json* config = field(breaker, {"config"}); config != nullptr && config->is_object()) {
    KeyValues config_values;
    config_values.add("config.", *config);
    out.append("\n").append(config_values.render());  // not "\n" + ...: GCC 12's -Wrestrict, PR105651
  }

  const Json* transitions = field(breaker, {"transitions"});
  if (transitions == nullptr || !transitions->is_array() || transitions->empty()) {
    out += "\ntransitions: none\n";
    return out;
  }
  Table table({{"AT"}, {"FROM"}, {"TO"}, {"REASON"}});
  for (const Json& t : *transitions) {
    // The reason's text, else its code ("failure_rate"): a row never has an empty REASON.
    const Json* reason = field(t, {"reason"});
    if (reason == nullptr || reason->is_null()) reason = field(t, {"why"});
    table.add_row({text(field(t, {"at"})), text(field(t, {"from"})), text(field(t, {"to"})), text(reason)});
  }
  return out + "\n" + table.render();
}

Result<std::string> action_line(const Json& breaker, std::string_view action) {
  if (!is_breaker(breaker)) return not_a_breaker();
  const Json* done = field(breaker, {"action"});
  return breaker_label(breaker) + ": " + text(field(breaker, {"state"})) + " ("
         + (done != nullptr && done->is_string() ? text(done) : std::string(action)) + ")\n";
}

Result<std::string> config_text(const Json& answer) {
  const Json* config = field(answer, {"config"});
  if (config == nullptr)
    return Error{"the answer is not the admin API's configuration (a JSON object with \"config\")"};
  return pretty(*config);
}

}  // namespace fusebox::fuseboxctl
