// proxy/config_loader.cc: turns YAML text, the --listen/--upstream shorthand and FUSEBOX_*
// environment variables into a validated Config, or into every problem found, each a sentence
// with its file, line and path: "fusebox.yaml:12: clusters[0] (payments).connect_timeout: "fast"
// is not a duration (write 250ms, 5s or 2m)". Not here: the value parsers (durations, sizes,
// host:port and log levels in config.cc; every other scalar, the breaker's among them, in
// config_values.cc), and acting on the config (reload, binding) which belongs to the master.
//
// The file, key by key (defaults are the member initializers in config.h and shm/breaker_policy.h):
//
//   workers: auto | 1..32              # auto: the CPUs this process may use
//   admin:
//     address: 127.0.0.1:9901          # admin API and metrics
//     token_file: /run/secrets/fusebox # the bearer token for changes (its first line; read at
//                                      #   start and reload); FUSEBOX_ADMIN_TOKEN wins if set
//   log_level: debug | info | warn | error
//   access_log: off | stdout | stderr | PATH
//   drain_timeout: 15s                 # SIGTERM: how long in-flight requests get
//   shm:
//     name: fusebox-payments           # the shared memory segment: 1 to 200 of [A-Za-z0-9_.-];
//                                      #   default "fusebox-" + admin host + "-" + admin port
//     max_breakers: 256                # 1..65536 slots; must be at least the number of clusters
//   listeners:                         # at least one
//     - name: payments                 # required, unique, [A-Za-z0-9_.-]+
//       address: 0.0.0.0:15001         # required; port 0 lets the OS pick (tests)
//       routes:                        # required, at least one; host-specific first, then the
//         - prefix: /                  #   longest prefix ("/" if not given; starts with "/")
//           host: api.example.com      #   optional, case-insensitive, without a port
//           cluster: payments          #   required: the name of a cluster below
//           name: charges              #   optional, [A-Za-z0-9_.-]+, unique, not a cluster's name
//           breaker: {...}             #   optional: a breaker of this route's own (needs name), the
//                                      #   cluster's breaker settings with these on top
//       idle_timeout: 60s
//       header_timeout: 10s            # the whole request head, or 408
//       max_header_bytes: 16KiB        # 1KiB..1MiB, or 431
//       max_body_bytes: 0              # 0 = unlimited, or 413
//   clusters:
//     - name: payments                 # required, unique, [A-Za-z0-9_.-]+
//       endpoints: [10.0.0.7:8080]     # at least one host:port (not port 0)
//       connect_timeout: 1s
//       response_header_timeout: 15s
//       request_timeout: 30s
//       idle_timeout: 60s              # pooled upstream connections
//       dns_refresh: 30s
//       max_connections: 1024          # 1..1000000, per worker
//       max_idle: 256                  # 0..1000000, per worker
//       breaker:                       # every cluster has one; every key is optional
//         consecutive_failures: 5      # trip after this many failures in a row; 0 = off
//         failure_rate:
//           threshold: 50%             # trip when this share of the window's calls failed; 0 = off
//           minimum_calls: 20          # 1..1000000: fewer calls in the window never trip a rate
//           window: 10s                # a duration, or a count of the last calls: "100 calls"
//                                      #   (1..1000); at least minimum_calls if a count
//         slow_calls:                  # off unless given
//           threshold: 80%             # required: trip when this share of the window's calls was slow
//           duration: 2s               # a call that takes this long or longer is slow
//         failure_statuses: [500-599]  # statuses (503) and ranges (500-599), 100..599, that count as
//                                      #   failures; [] for none. Connect errors, resets and timeouts
//                                      #   always count.
//         open:                        # open for base × multiplier^(trips in a row - 1), at most max
//           base: 30s
//           multiplier: 2              # a number from 1 to 100, to two decimals (1.5)
//           max: 5m                    # at least base
//           jitter: 0.1                # a fraction from 0 to 1 (or 10%): the open time ± 10%
//         half_open:
//           permits: 3                 # 1..1000 trial calls, across all workers
//           successes: 3               # 1..permits successful trials close it; one failure reopens
//         mode: normal                 # normal | forced_open (reject every call) | disabled (pass
//                                      #   every call, never trip) | metrics_only (count and
//                                      #   evaluate, never reject)
//       fallback:                      # given at all: an open breaker answers with this, not a 503
//         status: 503                  # 200..599 (a 1xx is not a final response)
//         headers:                     # in this order; names are tokens, values have no CR, LF or
//           Content-Type: text/plain   #   NUL; not Content-Length or Transfer-Encoding, which
//                                      #   fusebox sets from the body
//         body: ""                     # a string; none with status 204, 205 or 304
//       health_check:                  # given at all: the master checks every endpoint
//         path: /health                # required: what to GET (an origin-form target)
//         host: api.internal           # the Host header; default: the endpoint's host
//         interval: 1s                 # between the end of one check and the next
//         timeout: 1s                  # connect and the status line, or the check fails
//         healthy_threshold: 2         # 1..100 passes in a row: the endpoint is up again (and an
//                                      #   open breaker half-opens at once)
//         unhealthy_threshold: 2       # 1..100 failures in a row: the endpoint is down
//         expected_statuses: [200-399] # statuses and ranges that pass
//       retry: / bulkhead: / cache: / dead_letter:
//                                      # accepted and ignored until those features land
//   redis:                             # likewise
//
// Durations are whole numbers of ms, s, m or h ("0" alone needs no unit); sizes are bytes or
// KiB/MiB/GiB; percentages are whole, with or without "%". Listener and cluster timeouts must be
// more than 0: a zero connect or header timeout would fail every request. Breaker durations are
// more than 0 and at most 24h. Every other key is an error, with a "did you mean" when a
// known key is close; so is a key given twice (yaml-cpp keeps both silently, so we look).
// yaml-cpp's marks are 0-based and a missing key has none: we print line + 1, and for a missing
// key the line of the mapping that lacks it.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string_view>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "proxy/config.h"
#include "proxy/config_values.h"

namespace fusebox::proxy {

const char* const kEmbeddedConfigYaml = R"yaml(# fusebox's built-in configuration, used when no config
# file is given: one listener on loopback that forwards everything to one
# upstream on this host. `fusebox --listen ADDR --upstream ADDR` is the same
# with other addresses; FUSEBOX_* environment variables override either.
workers: auto                 # one worker per CPU this process may use
admin:
  address: 127.0.0.1:9901     # admin API and /metrics: loopback only
listeners:
  - name: default
    address: 127.0.0.1:15001
    routes:
      - prefix: /
        cluster: default
clusters:
  - name: default
    endpoints:
      - 127.0.0.1:8080
    connect_timeout: 1s
    request_timeout: 30s
)yaml";

namespace {

using Keys = std::span<const std::string_view>;

constexpr std::string_view kTopKeys[] = {"workers",       "admin",     "log_level", "access_log",
                                         "drain_timeout", "listeners", "clusters",  "shm"};
constexpr std::string_view kTopLaterKeys[] = {"redis"};
constexpr std::string_view kAdminKeys[] = {"address", "token_file"};
constexpr std::string_view kShmKeys[] = {"name", "max_breakers"};
constexpr std::string_view kListenerKeys[] = {"name",           "address",          "routes",
                                              "idle_timeout",   "header_timeout",   "max_header_bytes",
                                              "max_body_bytes"};
constexpr std::string_view kRouteKeys[] = {"prefix", "host", "cluster", "name", "breaker"};
constexpr std::string_view kClusterKeys[] = {"name",           "endpoints",       "connect_timeout",
                                             "response_header_timeout",           "request_timeout",
                                             "idle_timeout",   "dns_refresh",     "max_connections",
                                             "max_idle",       "breaker",         "fallback",
                                             "health_check"};
constexpr std::string_view kHealthCheckKeys[] = {"path",              "host",
                                                 "interval",          "timeout",
                                                 "healthy_threshold", "unhealthy_threshold",
                                                 "expected_statuses"};
// Settings of features still to come: configs written for them must load today.
constexpr std::string_view kClusterLaterKeys[] = {"retry", "bulkhead", "cache", "dead_letter"};
constexpr std::string_view kBreakerKeys[] = {"consecutive_failures", "failure_rate", "slow_calls",
                                             "failure_statuses",     "open",         "half_open",
                                             "mode"};
constexpr std::string_view kFailureRateKeys[] = {"threshold", "minimum_calls", "window"};
constexpr std::string_view kSlowCallKeys[] = {"threshold", "duration"};
constexpr std::string_view kOpenKeys[] = {"base", "multiplier", "max", "jitter"};
constexpr std::string_view kHalfOpenKeys[] = {"permits", "successes"};
constexpr std::string_view kFallbackKeys[] = {"status", "headers", "body"};

std::string at(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string indexed(std::string_view list, size_t i) {
  return std::string(list) + "[" + std::to_string(i) + "]";
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions, so "tiemout" is 1
// away from "timeout", as a typo of it should be.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string found(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return quoted(node.Scalar());
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
  }
}

// 1-based line of a node, or `fallback` for a node with no mark (a missing key).
int line_of(const YAML::Node& node, int fallback) {
  const int line = node.Mark().line;
  return line >= 0 ? line + 1 : fallback;
}

// One key of a mapping: where it was written, and its value.
struct Entry {
  YAML::Node value;
  int line = 0;  // the key's line
  // Where to report a problem with the value: its own line, unless it is empty (a null value's
  // mark is the next token's, often the next line).
  int value_line() const { return value.IsNull() ? line : line_of(value, line); }
};

// A mapping's entries by key. Problems with the keys themselves (duplicates, keys that are not
// plain words) are kept until check_keys(), by which time the path can name the item.
struct Fields {
  int line = 1;      // the mapping's own line: where a missing key is reported
  std::string path;  // "clusters[0] (payments)"
  std::map<std::string, Entry, std::less<>> entries;
  struct Duplicate {
    std::string key;
    int line;
    int first_line;
  };
  std::vector<Duplicate> duplicates;
  std::vector<int> bad_key_lines;

  const Entry* find(std::string_view key) const {
    const auto it = entries.find(key);
    return it == entries.end() ? nullptr : &it->second;
  }
};

// A cluster or listener as read, with the lines later cross-checks point at.
template <typename T>
struct Placed {
  T item;
  int name_line = 0;
  int address_line = 0;  // listeners only
};

struct Problem {
  int line;
  std::string text;
};

class Loader {
 public:
  explicit Loader(const std::string& source) : source_(source) {}

  void report(int line, const std::string& path, const std::string& problem) {
    problems_.push_back({line, source_ + ":" + std::to_string(line) + ": " + path + ": " + problem});
  }
  void report_plain(int line, const std::string& problem) {
    problems_.push_back({line, source_ + ":" + std::to_string(line) + ": " + problem});
  }

  Result<Config> finish(Config config, ConfigErrors* all_errors) {
    // Problems are found clusters first, listeners second; the reader wants them in file order.
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](const Problem& a, const Problem& b) { return a.line < b.line; });
    std::vector<std::string> texts;
    for (auto& p : problems_) texts.push_back(std::move(p.text));
    if (all_errors) all_errors->errors = texts;
    if (texts.empty()) return config;
    std::string message;
    for (const auto& t : texts) message += (message.empty() ? "" : "\n") + t;
    return Error{message};
  }

  Config load(const YAML::Node& root);

 private:
  std::optional<Fields> mapping(const YAML::Node& node, int line, const std::string& path);
  std::optional<Fields> section(const Fields& parent, std::string_view key, Keys known);
  void check_key_shape(const Fields& fields);
  void check_keys(const Fields& fields, Keys known, Keys later);
  bool sequence(const Entry& entry, const std::string& path);
  std::optional<std::string> scalar(const Entry& entry, const std::string& path);
  std::string name_for_path(const Fields& fields) const;

  template <typename T, typename Parse>
  bool setting(const Fields& fields, std::string_view key, T& out, Parse parse) {
    const Entry* entry = fields.find(key);
    if (!entry) return false;
    const std::string path = at(fields.path, key);
    const auto text = scalar(*entry, path);
    if (!text) return false;
    auto parsed = parse(*text);
    if (!parsed) {
      report(entry->value_line(), path, parsed.error().message);
      return false;
    }
    out = std::move(parsed).value();
    return true;
  }
  // True when `key` is absent (the default stands) or was parsed into `out`: whether `out` can be
  // cross-checked against another setting without adding noise to an error already reported.
  template <typename T, typename Parse>
  bool usable(const Fields& fields, std::string_view key, T& out, Parse parse) {
    return !fields.find(key) || setting(fields, key, out, parse);
  }

  void load_top(const Fields& top, Config& config);
  bool load_shm(const Fields& top, Config& config);
  void load_clusters(const Entry& clusters, Config& config);
  void load_listeners(const Fields& top, Config& config);
  void load_breaker(const Entry& entry, const std::string& path, BreakerConfig& breaker);
  std::map<std::string, int> route_names_;  // route name -> its line: unique across listeners
  void load_failure_statuses(const Entry& entry, const std::string& path, BreakerConfig& breaker);
  void load_fallback(const Entry& entry, const std::string& path, FallbackConfig& fallback);
  void load_health_check(const Entry& entry, const std::string& path, HealthCheckConfig& check);
  void load_status_ranges(const Entry& entry, const std::string& path, std::vector<StatusRange>& ranges);
  void load_fallback_headers(const Entry& entry, const std::string& path, FallbackConfig& fallback);
  std::optional<Placed<ClusterConfig>> load_cluster(const YAML::Node& node, int line,
                                                    const std::string& base);
  std::optional<Placed<ListenerConfig>> load_listener(const YAML::Node& node, int line,
                                                      const std::string& base, const Config& config);
  std::optional<Route> load_route(const YAML::Node& node, int line, const std::string& base,
                                  const Config& config);
  void check_listeners(const Config& config);

  std::string source_;
  std::vector<Problem> problems_;
  std::vector<std::string> listener_paths_;  // parallel to Config::listeners, as written
  std::vector<int> listener_address_lines_;
};

std::optional<Fields> Loader::mapping(const YAML::Node& node, int line, const std::string& path) {
  if (!node.IsMap()) {
    report(line, path, "expected a mapping (key: value lines), found " + found(node));
    return std::nullopt;
  }
  Fields fields;
  fields.line = line_of(node, line);
  fields.path = path;
  for (const auto& kv : node) {
    const int key_line = line_of(kv.first, fields.line);
    if (!kv.first.IsScalar()) {
      fields.bad_key_lines.push_back(key_line);
      continue;
    }
    const std::string& key = kv.first.Scalar();
    const auto [it, inserted] = fields.entries.try_emplace(key, Entry{kv.second, key_line});
    if (!inserted) fields.duplicates.push_back({key, key_line, it->second.line});
  }
  return fields;
}

// A mapping under `key` of `parent`, its keys checked; nothing if absent or not a mapping. A key
// missing from it is reported on the line of `key`, where the reader looks for the section, rather
// than on its first key's.
std::optional<Fields> Loader::section(const Fields& parent, std::string_view key, Keys known) {
  const Entry* entry = parent.find(key);
  if (!entry) return std::nullopt;
  auto fields = mapping(entry->value, entry->value_line(), at(parent.path, key));
  if (!fields) return std::nullopt;
  fields->line = entry->line;
  check_keys(*fields, known, {});
  return fields;
}

// Keys that are not plain words, and keys given twice.
void Loader::check_key_shape(const Fields& fields) {
  for (const int line : fields.bad_key_lines)
    report(line, fields.path.empty() ? "top level" : fields.path, "keys must be plain words");
  for (const auto& d : fields.duplicates)
    report(d.line, at(fields.path, d.key),
           "duplicate key (first given on line " + std::to_string(d.first_line) + ")");
}

void Loader::check_keys(const Fields& fields, Keys known, Keys later) {
  check_key_shape(fields);
  for (const auto& entry : fields.entries) {
    const std::string& key = entry.first;  // not a structured binding: clang 14 can't capture one
    const auto is = [&key](std::string_view k) { return k == key; };
    if (std::any_of(known.begin(), known.end(), is) || std::any_of(later.begin(), later.end(), is))
      continue;
    std::string_view best;
    size_t best_distance = 3;  // suggest only within 2 edits
    std::vector<std::string> all;
    for (const Keys keys : {known, later}) {
      for (const std::string_view k : keys) {
        all.emplace_back(k);
        const size_t d = edit_distance(key, k);
        if (d < best_distance) {
          best = k;
          best_distance = d;
        }
      }
    }
    report(entry.second.line, at(fields.path, key),
           best.empty() ? "unknown key (known keys here: " + joined(all) + ")"
                        : "unknown key (did you mean " + std::string(best) + "?)");
  }
}

bool Loader::sequence(const Entry& entry, const std::string& path) {
  if (entry.value.IsSequence()) return true;
  report(entry.value_line(), path,
         "expected a list (lines starting with \"- \"), found " + found(entry.value));
  return false;
}

std::optional<std::string> Loader::scalar(const Entry& entry, const std::string& path) {
  if (entry.value.IsScalar()) return entry.value.Scalar();
  report(entry.value_line(), path,
         entry.value.IsNull() ? "no value given" : "expected a single value, found " + found(entry.value));
  return std::nullopt;
}

// "payments" for an item whose name is a plain scalar, so that paths read
// "clusters[0] (payments).connect_timeout"; empty when there is no usable name.
std::string Loader::name_for_path(const Fields& fields) const {
  const Entry* name = fields.find("name");
  if (!name || !name->value.IsScalar() || name->value.Scalar().empty()) return "";
  return name->value.Scalar();
}

Config Loader::load(const YAML::Node& root) {
  Config config;
  Fields top;  // an empty document is an empty mapping: it then lacks listeners
  if (!root.IsNull()) {
    auto fields = mapping(root, 1, "top level");
    if (!fields) return config;
    top = std::move(*fields);
    top.path.clear();  // top-level keys are named bare: "workers", not "top level.workers"
  }
  check_keys(top, kTopKeys, kTopLaterKeys);
  load_top(top, config);
  return config;
}

void Loader::load_top(const Fields& top, Config& config) {
  setting(top, "workers", config.workers, parse_workers);
  setting(top, "log_level", config.log_level, parse_log_level);
  setting(top, "drain_timeout", config.drain_timeout, parse_duration);
  AccessLog access_log;
  if (setting(top, "access_log", access_log, parse_access_log)) {
    config.access_log = access_log.target;
    config.access_log_path = access_log.path;
  }
  if (auto admin = section(top, "admin", kAdminKeys)) {
    setting(*admin, "address", config.admin_address, parse_host_port);
    setting(*admin, "token_file", config.admin_token_file, parse_path);
  }
  const bool max_breakers_known = load_shm(top, config);
  // Clusters first, so that routes can be resolved to them as the listeners are read.
  if (const Entry* clusters = top.find("clusters"); clusters && sequence(*clusters, "clusters")) {
    load_clusters(*clusters, config);
    // Each cluster's breaker takes a slot in the segment, which is sized when it is created.
    const size_t count = clusters->value.size();
    if (max_breakers_known && count > config.shm.max_breakers)
      report(clusters->line, "clusters",
             std::to_string(count) + " clusters but shm.max_breakers is " + std::to_string(config.shm.max_breakers)
                 + "; raise shm.max_breakers");
  }
  load_listeners(top, config);
}

// Returns whether config.shm.max_breakers holds the value meant (given or default), so that the
// cluster count is not checked against a default the user tried to change.
bool Loader::load_shm(const Fields& top, Config& config) {
  if (!top.find("shm")) return true;
  auto shm = section(top, "shm", kShmKeys);
  if (!shm) return false;
  setting(*shm, "name", config.shm.name, parse_segment_name);
  return usable(*shm, "max_breakers", config.shm.max_breakers, parse_limit<1, 65'536>);
}

// Keeps the clusters with a valid, unique name: the ones routes can resolve to.
void Loader::load_clusters(const Entry& clusters, Config& config) {
  std::map<std::string, size_t, std::less<>> index_by_name;
  std::vector<std::string> paths;  // parallel to config.clusters
  std::vector<int> name_lines;
  for (size_t i = 0; i < clusters.value.size(); ++i) {
    const YAML::Node item = clusters.value[i];
    auto cluster = load_cluster(item, line_of(item, clusters.line), indexed("clusters", i));
    if (!cluster || cluster->item.name.empty()) continue;
    const std::string& name = cluster->item.name;
    const std::string path = indexed("clusters", i) + " (" + name + ")";
    const auto [it, inserted] = index_by_name.try_emplace(name, config.clusters.size());
    if (!inserted) {
      report(cluster->name_line, path + ".name",
             quoted(name) + " is already the name of " + paths[it->second] + " (line "
                 + std::to_string(name_lines[it->second]) + ")");
      continue;
    }
    paths.push_back(path);
    name_lines.push_back(cluster->name_line);
    config.clusters.push_back(std::move(cluster->item));
  }
}

void Loader::load_listeners(const Fields& top, Config& config) {
  const Entry* listeners = top.find("listeners");
  if (!listeners) {
    report(top.line, "listeners", "at least one listener is required");
    return;
  }
  if (!sequence(*listeners, "listeners")) return;
  if (listeners->value.size() == 0) {
    report(listeners->value_line(), "listeners", "at least one listener is required");
    return;
  }
  std::map<std::string, size_t, std::less<>> index_by_name;
  std::vector<int> name_lines;  // parallel to config.listeners
  for (size_t i = 0; i < listeners->value.size(); ++i) {
    const YAML::Node item = listeners->value[i];
    auto listener = load_listener(item, line_of(item, listeners->line), indexed("listeners", i), config);
    if (!listener || listener->item.name.empty()) continue;
    const std::string& name = listener->item.name;
    const std::string path = indexed("listeners", i) + " (" + name + ")";
    const auto [it, inserted] = index_by_name.try_emplace(name, config.listeners.size());
    if (!inserted) {
      report(listener->name_line, path + ".name",
             quoted(name) + " is already the name of " + listener_paths_[it->second] + " (line "
                 + std::to_string(name_lines[it->second]) + ")");
      continue;
    }
    listener_paths_.push_back(path);
    listener_address_lines_.push_back(listener->address_line);
    name_lines.push_back(listener->name_line);
    config.listeners.push_back(std::move(listener->item));
  }
  check_listeners(config);
}

// Two listeners on one address would fail to bind at startup, and so would one on the admin
// address; say so now, with lines. Port 0 is exempt: each such bind gets its own port.
void Loader::check_listeners(const Config& config) {
  std::map<std::string, size_t> index_by_address;
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& l = config.listeners[i];
    if (l.address.port == 0) continue;
    const std::string address = l.address.to_string();
    const std::string path = listener_paths_[i] + ".address";
    if (address == config.admin_address.to_string()) {
      report(listener_address_lines_[i], path, address + " is also the admin address");
      continue;
    }
    const auto [it, inserted] = index_by_address.try_emplace(address, i);
    if (!inserted)
      report(listener_address_lines_[i], path,
             address + " is already the address of " + listener_paths_[it->second]);
  }
}

std::optional<Placed<ClusterConfig>> Loader::load_cluster(const YAML::Node& node, int line,
                                                          const std::string& base) {
  auto fields = mapping(node, line, base);
  if (!fields) return std::nullopt;
  const std::string name = name_for_path(*fields);
  if (!name.empty()) fields->path = base + " (" + name + ")";
  check_keys(*fields, kClusterKeys, kClusterLaterKeys);

  Placed<ClusterConfig> placed;
  ClusterConfig& cluster = placed.item;
  if (const Entry* entry = fields->find("name")) {
    placed.name_line = entry->value_line();
    setting(*fields, "name", cluster.name, parse_name);
  } else {
    report(fields->line, at(fields->path, "name"),
           "missing; every cluster needs one (e.g. name: payments)");
  }
  const Entry* endpoints = fields->find("endpoints");
  const std::string endpoints_path = at(fields->path, "endpoints");
  if (!endpoints) {
    report(fields->line, endpoints_path, "missing; every cluster needs at least one host:port");
  } else if (sequence(*endpoints, endpoints_path)) {
    if (endpoints->value.size() == 0)
      report(endpoints->value_line(), endpoints_path, "at least one endpoint is required");
    for (size_t i = 0; i < endpoints->value.size(); ++i) {
      const YAML::Node item = endpoints->value[i];
      const Entry entry{item, line_of(item, endpoints->line)};
      const std::string path = endpoints_path + "[" + std::to_string(i) + "]";
      const auto text = scalar(entry, path);
      if (!text) continue;
      auto endpoint = parse_endpoint(*text);
      if (!endpoint) report(entry.value_line(), path, endpoint.error().message);
      else cluster.endpoints.push_back(std::move(endpoint).value());
    }
  }
  setting(*fields, "connect_timeout", cluster.connect_timeout, parse_timeout);
  setting(*fields, "response_header_timeout", cluster.response_header_timeout, parse_timeout);
  setting(*fields, "request_timeout", cluster.request_timeout, parse_timeout);
  setting(*fields, "idle_timeout", cluster.idle_timeout, parse_timeout);
  setting(*fields, "dns_refresh", cluster.dns_refresh, parse_timeout);
  setting(*fields, "max_connections", cluster.max_connections, parse_limit<1, 1'000'000>);
  setting(*fields, "max_idle", cluster.max_idle, parse_limit<0, 1'000'000>);
  if (const Entry* entry = fields->find("breaker")) load_breaker(*entry, at(fields->path, "breaker"), cluster.breaker);
  if (const Entry* entry = fields->find("fallback"))
    load_fallback(*entry, at(fields->path, "fallback"), cluster.fallback);
  if (const Entry* entry = fields->find("health_check"))
    load_health_check(*entry, at(fields->path, "health_check"), cluster.health_check);
  return placed;
}

// Every key is optional: what is not written keeps BreakerPolicy's default. Settings that must
// agree are checked after all are read; when one side of a disagreement is a default, the message
// says so, since the user never wrote it.
void Loader::load_breaker(const Entry& entry, const std::string& path, BreakerConfig& breaker) {
  auto fields = mapping(entry.value, entry.value_line(), path);
  if (!fields) return;
  check_keys(*fields, kBreakerKeys, {});
  shm::BreakerPolicy& policy = breaker.policy;
  // `given` shows a setting's value as written, or its default, named as one.
  const auto given = [](const Fields& f, std::string_view key, const std::string& fallback) {
    const Entry* e = f.find(key);
    return e ? e->value.Scalar() : fallback + " (the default)";
  };
  setting(*fields, "consecutive_failures", policy.consecutive_failures, parse_limit<0, 1'000'000>);
  setting(*fields, "mode", policy.mode, parse_mode);
  if (const Entry* statuses = fields->find("failure_statuses"))
    load_failure_statuses(*statuses, at(path, "failure_statuses"), breaker);

  if (auto slow = section(*fields, "slow_calls", kSlowCallKeys)) {
    if (!slow->find("threshold"))
      report(slow->line, at(slow->path, "threshold"), "missing; slow_calls needs one (e.g. threshold: 80%)");
    setting(*slow, "threshold", policy.slow_rate_pct, parse_percent);
    setting(*slow, "duration", policy.slow_call_ms, parse_slow_call_time);
  }

  if (auto rate = section(*fields, "failure_rate", kFailureRateKeys)) {
    setting(*rate, "threshold", policy.failure_rate_pct, parse_percent);
    const bool minimum_ok = usable(*rate, "minimum_calls", policy.minimum_calls, parse_limit<1, 1'000'000>);
    Window window;
    if (setting(*rate, "window", window, parse_window)) {
      policy.window_ms = window.ms;
      policy.window_calls = window.calls;
    }
    // A count window never holds more than window_calls calls: a larger minimum never trips.
    const bool rate_rules = policy.failure_rate_pct > 0 || policy.slow_rate_pct > 0;
    if (rate_rules && minimum_ok && policy.window_calls > 0 && policy.minimum_calls > policy.window_calls) {
      const Entry* minimum = rate->find("minimum_calls");
      report(minimum ? minimum->value_line() : rate->line, at(rate->path, "minimum_calls"),
             given(*rate, "minimum_calls", std::to_string(policy.minimum_calls)) + " is more than the window's "
                 + std::to_string(policy.window_calls)
                 + " calls, so no rate could ever trip the breaker; lower minimum_calls or widen the window");
    }
  }

  if (auto open = section(*fields, "open", kOpenKeys)) {
    const bool base_ok = usable(*open, "base", policy.open_base_ms, parse_open_time);
    const bool max_ok = usable(*open, "max", policy.open_max_ms, parse_open_time);
    setting(*open, "multiplier", policy.open_multiplier_x100, parse_multiplier);
    setting(*open, "jitter", policy.open_jitter_pct, parse_jitter);
    if (base_ok && max_ok && policy.open_max_ms < policy.open_base_ms) {
      const Entry* max = open->find("max");
      report(max ? max->value_line() : open->line, at(open->path, "max"),
             given(*open, "max", format_ms(policy.open_max_ms)) + " is less than base, "
                 + given(*open, "base", format_ms(policy.open_base_ms)) + "; raise max or lower base");
    }
  }

  if (auto half = section(*fields, "half_open", kHalfOpenKeys)) {
    const bool permits_ok = usable(*half, "permits", policy.half_open_permits, parse_limit<1, 1'000>);
    const bool successes_ok = usable(*half, "successes", policy.half_open_successes, parse_limit<1, 1'000>);
    if (permits_ok && successes_ok && policy.half_open_successes > policy.half_open_permits) {
      const Entry* successes = half->find("successes");
      report(successes ? successes->value_line() : half->line, at(half->path, "successes"),
             given(*half, "successes", std::to_string(policy.half_open_successes)) + " is more than permits, "
                 + given(*half, "permits", std::to_string(policy.half_open_permits))
                 + ", so the trials could never close the breaker; lower successes or raise permits");
    }
  }
}

// Replaces the default 500-599 with the list as written; [] leaves only connect errors, resets
// and timeouts counting as failures.
void Loader::load_failure_statuses(const Entry& entry, const std::string& path, BreakerConfig& breaker) {
  load_status_ranges(entry, path, breaker.failure_statuses);
}

// A list of statuses (503) and ranges (500-599), replacing the default.
void Loader::load_status_ranges(const Entry& entry, const std::string& path, std::vector<StatusRange>& ranges) {
  if (!sequence(entry, path)) return;
  ranges.clear();
  for (size_t i = 0; i < entry.value.size(); ++i) {
    const YAML::Node item = entry.value[i];
    const Entry status{item, line_of(item, entry.line)};
    const std::string item_path = indexed(path, i);
    const auto text = scalar(status, item_path);
    if (!text) continue;
    auto range = parse_status_range(*text);
    if (!range) report(status.value_line(), item_path, range.error().message);
    else ranges.push_back(range.value());
  }
}

// Given at all, health checks are on; `path` is the one key without a default.
void Loader::load_health_check(const Entry& entry, const std::string& path, HealthCheckConfig& check) {
  auto fields = mapping(entry.value, entry.value_line(), path);
  if (!fields) return;
  check_keys(*fields, kHealthCheckKeys, {});
  check.enabled = true;
  if (fields->find("path")) {
    setting(*fields, "path", check.path, parse_check_path);
  } else {
    report(fields->line, at(path, "path"), "missing; a health check needs the path to GET (e.g. path: /health)");
  }
  setting(*fields, "host", check.host, parse_check_host);
  setting(*fields, "interval", check.interval, parse_timeout);
  setting(*fields, "timeout", check.timeout, parse_timeout);
  setting(*fields, "healthy_threshold", check.healthy_threshold, parse_limit<1, 100>);
  setting(*fields, "unhealthy_threshold", check.unhealthy_threshold, parse_limit<1, 100>);
  if (const Entry* statuses = fields->find("expected_statuses")) {
    load_status_ranges(*statuses, at(path, "expected_statuses"), check.expected_statuses);
    if (check.expected_statuses.empty())
      report(statuses->value_line(), at(path, "expected_statuses"), "at least one status is required");
  }
}

// Given at all, a fallback is on: `fallback: {}` answers an open breaker with an empty 503.
void Loader::load_fallback(const Entry& entry, const std::string& path, FallbackConfig& fallback) {
  auto fields = mapping(entry.value, entry.value_line(), path);
  if (!fields) return;
  check_keys(*fields, kFallbackKeys, {});
  fallback.enabled = true;
  setting(*fields, "status", fallback.status, parse_fallback_status);
  setting(*fields, "body", fallback.body, parse_body);
  if (const Entry* headers = fields->find("headers")) load_fallback_headers(*headers, at(path, "headers"), fallback);
  // RFC 9110 §15.3.5, §15.3.6 and §15.4.5: these responses end at their headers, so a client
  // would read the body as the start of the next response.
  const int status = fallback.status;
  if (!fallback.body.empty() && (status == 204 || status == 205 || status == 304)) {
    report(fields->find("body")->value_line(), at(path, "body"),
           "a " + std::to_string(status) + " response has no body; remove body or choose another status");
  }
}

// Headers in the order written, which is the order they are sent in.
void Loader::load_fallback_headers(const Entry& entry, const std::string& path, FallbackConfig& fallback) {
  auto fields = mapping(entry.value, entry.value_line(), path);
  if (!fields) return;
  check_key_shape(*fields);
  std::map<std::string, std::string> name_by_lowercase;
  for (const auto& kv : entry.value) {
    if (!kv.first.IsScalar()) continue;  // reported by check_key_shape
    const std::string& name = kv.first.Scalar();
    const Entry header{kv.second, line_of(kv.first, fields->line)};
    const std::string header_path = at(path, name);
    if (!is_token(name)) {
      report(header.line, header_path,
             quoted(name) + " is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)");
      continue;
    }
    const std::string lower = lowercase(name);
    if (lower == "content-length" || lower == "transfer-encoding") {
      report(header.line, header_path, "fusebox sets " + name + " from the body; leave it out");
      continue;
    }
    const auto [it, inserted] = name_by_lowercase.try_emplace(lower, name);
    if (!inserted) {
      // The same spelling twice is a duplicate key, reported by check_key_shape.
      if (it->second != name)
        report(header.line, header_path, "the same header as " + it->second + " (header names ignore case)");
      continue;
    }
    const auto value = scalar(header, header_path);
    if (!value) continue;
    // RFC 9110 §5.5: a CR or LF would end the header early and let the value write headers of its own.
    if (value->find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      report(header.value_line(), header_path, "a header value may not contain CR, LF or NUL (RFC 9110 §5.5)");
      continue;
    }
    fallback.headers.emplace_back(name, *value);
  }
}

std::optional<Placed<ListenerConfig>> Loader::load_listener(const YAML::Node& node, int line,
                                                            const std::string& base, const Config& config) {
  auto fields = mapping(node, line, base);
  if (!fields) return std::nullopt;
  const std::string name = name_for_path(*fields);
  if (!name.empty()) fields->path = base + " (" + name + ")";
  check_keys(*fields, kListenerKeys, {});

  Placed<ListenerConfig> placed;
  ListenerConfig& listener = placed.item;
  if (const Entry* entry = fields->find("name")) {
    placed.name_line = entry->value_line();
    setting(*fields, "name", listener.name, parse_name);
  } else {
    report(fields->line, at(fields->path, "name"),
           "missing; every listener needs one (e.g. name: ingress)");
  }
  if (const Entry* entry = fields->find("address")) {
    placed.address_line = entry->value_line();
    setting(*fields, "address", listener.address, parse_host_port);
  } else {
    report(fields->line, at(fields->path, "address"),
           "missing; every listener needs one (e.g. 0.0.0.0:15001)");
  }
  setting(*fields, "idle_timeout", listener.idle_timeout, parse_timeout);
  setting(*fields, "header_timeout", listener.header_timeout, parse_timeout);
  setting(*fields, "max_header_bytes", listener.max_header_bytes, parse_header_limit);
  setting(*fields, "max_body_bytes", listener.max_body_bytes, parse_size);

  const Entry* routes = fields->find("routes");
  const std::string routes_path = at(fields->path, "routes");
  if (!routes) {
    report(fields->line, routes_path, "missing; every listener needs at least one route");
    return placed;
  }
  if (!sequence(*routes, routes_path)) return placed;
  if (routes->value.size() == 0) {
    report(routes->value_line(), routes_path, "at least one route is required");
    return placed;
  }
  // A second route with the same host and prefix could never be chosen: surely a mistake.
  std::map<std::pair<std::string, std::string>, size_t> index_by_match;
  for (size_t i = 0; i < routes->value.size(); ++i) {
    const YAML::Node item = routes->value[i];
    const int route_line = line_of(item, routes->line);
    const std::string path = routes_path + "[" + std::to_string(i) + "]";
    auto route = load_route(item, route_line, path, config);
    if (!route) continue;
    const auto [it, inserted] = index_by_match.try_emplace({route->host, route->prefix}, i);
    if (!inserted) {
      report(route_line, path,
             "same prefix and host as routes[" + std::to_string(it->second) + "], so it would never be used");
      continue;
    }
    listener.routes.push_back(std::move(*route));
  }
  // Host-specific routes first, then longest prefix first: the first match is the best match.
  std::stable_sort(listener.routes.begin(), listener.routes.end(), [](const Route& a, const Route& b) {
    if (a.host.empty() != b.host.empty()) return !a.host.empty();
    return a.prefix.size() > b.prefix.size();
  });
  return placed;
}

std::optional<Route> Loader::load_route(const YAML::Node& node, int line, const std::string& path,
                                        const Config& config) {
  auto fields = mapping(node, line, path);
  if (!fields) return std::nullopt;
  const size_t problems_before = problems_.size();
  check_keys(*fields, kRouteKeys, {});
  Route route;
  setting(*fields, "prefix", route.prefix, parse_prefix);
  setting(*fields, "host", route.host, parse_route_host);
  const Entry* cluster = fields->find("cluster");
  if (!cluster) {
    report(fields->line, at(path, "cluster"), "missing; every route needs one (the name of a cluster)");
    return std::nullopt;
  }
  const auto name = scalar(*cluster, at(path, "cluster"));
  if (!name) return std::nullopt;
  route.cluster = *name;
  const auto it = std::find_if(config.clusters.begin(), config.clusters.end(),
                               [&](const ClusterConfig& c) { return c.name == *name; });
  if (it == config.clusters.end()) {
    std::vector<std::string> names;
    for (const auto& c : config.clusters) names.push_back(c.name);
    report(cluster->value_line(), at(path, "cluster"),
           "no cluster named " + quoted(*name)
               + (names.empty() ? " (no clusters are defined)" : " (clusters: " + joined(names) + ")"));
    return std::nullopt;
  }
  route.cluster_index = static_cast<size_t>(it - config.clusters.begin());
  if (const Entry* name_entry = fields->find("name")) {
    setting(*fields, "name", route.name, parse_name);
    // A route's breaker is called by its name in the admin API, the logs and the segment, where
    // clusters' breakers are called by theirs: one namespace.
    if (!route.name.empty()) {
      if (std::any_of(config.clusters.begin(), config.clusters.end(),
                      [&](const ClusterConfig& c) { return c.name == route.name; }))
        report(name_entry->value_line(), at(path, "name"),
               quoted(route.name) + " is also a cluster's name; a route's name must differ from every cluster's");
      const auto [seen, fresh] = route_names_.try_emplace(route.name, name_entry->value_line());
      if (!fresh)
        report(name_entry->value_line(), at(path, "name"),
               quoted(route.name) + " is already the name of the route on line " + std::to_string(seen->second));
    }
  }
  if (const Entry* breaker = fields->find("breaker")) {
    route.own_breaker = true;
    route.breaker = it->breaker;  // the cluster's settings, then the route's own on top
    route.breaker.policy.mode = shm::Mode::Normal;
    load_breaker(*breaker, at(path, "breaker"), route.breaker);
    if (!fields->find("name"))
      report(breaker->line, at(path, "breaker"),
             "a route with a breaker of its own needs a name (name: charges), which the admin API and the "
             "metrics call it by");
  }
  if (problems_.size() != problems_before) return std::nullopt;
  return route;
}

// yaml-cpp's own words, and a hint for the two commonest causes: an unquoted IPv6 address, which
// YAML reads as the start of a list, and a tab in the indentation, which YAML forbids.
std::string syntax_problem(const YAML::Exception& e, const std::string& text) {
  std::string problem = "invalid YAML: " + e.msg;
  if (e.mark.line >= 0) {
    std::istringstream lines(text);
    std::string line;
    for (int i = 0; i <= e.mark.line; ++i) {
      if (!std::getline(lines, line)) line.clear();
    }
    if (line.find(": [") != std::string::npos && line.find("]:") != std::string::npos)
      problem += " (quote IPv6 addresses: \"[::1]:8080\")";
    const size_t indent = line.find_first_not_of(' ');
    if (indent != std::string::npos && line[indent] == '\t' && e.msg.find("tab") == std::string::npos)
      problem += " (indent with spaces: YAML does not allow tabs)";
  }
  return problem;
}

}  // namespace

Result<Config> parse_config(const std::string& text, const std::string& source, ConfigErrors* all_errors) {
  Loader loader(source);
  Config config;
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(text);
    if (documents.size() > 1) {
      loader.report_plain(line_of(documents[1], 1),
                          "a second YAML document starts here; fusebox reads one document per file");
    } else {
      config = loader.load(documents.empty() ? YAML::Node() : documents[0]);
    }
  } catch (const YAML::Exception& e) {
    loader.report_plain(e.mark.line >= 0 ? e.mark.line + 1 : 1, syntax_problem(e, text));
  }
  config.source = source;
  return loader.finish(std::move(config), all_errors);
}

Result<Config> load_config_file(const std::string& path, ConfigErrors* all_errors) {
  std::string text;
  int err = 0;
  if (std::FILE* file = std::fopen(path.c_str(), "rb")) {
    char buffer[8192];
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
    if (std::ferror(file)) err = errno;  // EISDIR for a directory, which fopen accepts
    std::fclose(file);
  } else {
    err = errno;
  }
  if (err != 0) {
    Error error{"config " + path + ": cannot read: " + std::strerror(err)};
    if (all_errors) all_errors->errors = {error.message};
    return error;
  }
  return parse_config(text, path, all_errors);
}

Config default_config() {
  auto config = parse_config(kEmbeddedConfigYaml, "<embedded>");
  if (!config) {
    // Only a broken build gets here; config_test.cc parses the embedded text on every test run.
    std::fprintf(stderr, "fusebox: the embedded default config does not load:\n%s\n",
                 config.error().message.c_str());
    std::abort();
  }
  return std::move(config).value();
}

Result<Config> command_line_config(const std::string& listen, const std::string& upstream) {
  Config config = default_config();
  config.source = "<command line>";
  std::vector<std::string> errors;
  auto listen_address = parse_host_port(listen);
  if (!listen_address) errors.push_back("--listen: " + listen_address.error().message);
  else if (listen_address.value().port != 0
           && listen_address.value().to_string() == config.admin_address.to_string())
    errors.push_back("--listen: " + listen_address.value().to_string()
                     + " is also the admin address (set FUSEBOX_ADMIN_ADDRESS to move it)");
  else config.listeners.at(0).address = std::move(listen_address).value();
  auto upstream_address = parse_endpoint(upstream);
  if (!upstream_address) errors.push_back("--upstream: " + upstream_address.error().message);
  else config.clusters.at(0).endpoints = {std::move(upstream_address).value()};
  if (errors.empty()) return config;
  std::string message;
  for (const auto& e : errors) message += (message.empty() ? "" : "\n") + e;
  return Error{message};
}

std::string segment_name(const Config& config) {
  if (!config.shm.name.empty()) return config.shm.name;
  std::string name = "fusebox-" + config.admin_address.host + "-" + std::to_string(config.admin_address.port);
  for (char& c : name)
    if (!is_name_char(c)) c = '_';  // "::1" -> "__1": a segment name is a file name
  return name;
}

Result<void> apply_environment(Config& config, GetEnv getenv_fn) {
  Config next = config;  // all or nothing: a half-applied environment helps nobody
  std::vector<std::string> errors;
  // An empty variable counts as unset, as in `env: [{name: FUSEBOX_WORKERS, value: ""}]`.
  const auto apply = [&](const char* name, auto parse, auto assign) {
    const char* value = getenv_fn(name);
    if (value == nullptr || *value == '\0') return;
    auto parsed = parse(std::string(value));
    if (!parsed) errors.push_back(std::string("environment ") + name + ": " + parsed.error().message);
    else assign(std::move(parsed).value());
  };
  apply("FUSEBOX_WORKERS", parse_workers, [&](unsigned n) { next.workers = n; });
  apply("FUSEBOX_LOG_LEVEL", parse_log_level, [&](LogLevel l) { next.log_level = l; });
  apply("FUSEBOX_ADMIN_ADDRESS", parse_host_port, [&](HostPort a) {
    for (size_t i = 0; i < next.listeners.size(); ++i) {
      if (a.port != 0 && next.listeners[i].address.to_string() == a.to_string()) {
        errors.push_back("environment FUSEBOX_ADMIN_ADDRESS: " + a.to_string()
                         + " is already the address of listeners[" + std::to_string(i) + "] ("
                         + next.listeners[i].name + ")");
        return;
      }
    }
    next.admin_address = std::move(a);
  });
  apply("FUSEBOX_ACCESS_LOG", parse_access_log, [&](AccessLog a) {
    next.access_log = a.target;
    next.access_log_path = std::move(a.path);
  });
  apply("FUSEBOX_DRAIN_TIMEOUT", parse_duration, [&](Millis d) { next.drain_timeout = d; });
  if (!errors.empty()) {
    std::string message;
    for (const auto& e : errors) message += (message.empty() ? "" : "\n") + e;
    return Error{message};
  }
  config = std::move(next);
  return {};
}

}  // namespace fusebox::proxy
