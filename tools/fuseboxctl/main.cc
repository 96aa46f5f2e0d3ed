// tools/fuseboxctl/main.cc: fuseboxctl, the admin CLI. Reads and changes fusebox's circuit breakers
// through the admin HTTP API (docs/admin-api.md), one request per run: a table or "key: value"
// lines for people, the server's JSON with --json for scripts. It knows fusebox only through that
// API, so it works against any fusebox it can reach, of any version that speaks it.
//
// Exit codes, which scripts depend on: 0 ok; 1 fusebox refused (it answered with an error status,
// printed with its message and a hint); 2 usage error (the command line, --admin,
// FUSEBOX_ADMIN_ADDRESS or the token); 3 unreachable (no connection, no answer in time, or an
// answer that is not the admin API's).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tools/fuseboxctl/admin_address.h"
#include "tools/fuseboxctl/http_client.h"
#include "tools/fuseboxctl/render.h"

namespace fc = fusebox::fuseboxctl;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

struct Command {
  std::string_view name;  // on the command line, and for actions the last segment of the path
  std::string_view help;
  bool takes_name;        // NAME, a cluster
  bool changes_state;     // POST with the token
};

// In the order `--help` and the usage line list them. The actions' help follows the API doc.
constexpr Command kCommands[] = {
    {"status", "every breaker: state, window counts, next trial call, last reason", false, false},
    {"show", "one breaker: its state, its config and its last transitions", true, false},
    {"open", "force the breaker open: reject every call until close or reset", true, true},
    {"close", "back to normal operation, closed: releases any forced state", true, true},
    {"reset", "closed, with the window, the counts and the open-time backoff cleared", true, true},
    {"disable", "force the breaker closed: never reject, still count", true, true},
    {"metrics-only", "count and evaluate, never reject", true, true},
    {"config", "the running configuration, as JSON", false, false},
};

struct Flags {
  std::string admin;
  std::string token;
  bool json = false;
  std::string name;
};

std::string usage_line() {
  std::string line = "usage: fuseboxctl [--admin URL] [--token T] [--json]";
  for (const Command& c : kCommands) {
    line += &c == kCommands ? " " : " | ";
    line += std::string(c.name) + (c.takes_name ? " NAME" : "");
  }
  return line;
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "fuseboxctl: %s\n%s\nrun `fuseboxctl --help` for what each command does\n", message.c_str(),
               usage_line().c_str());
  return kExitUsage;
}

int unreachable(const fc::AdminAddress& address, const std::string& why) {
  std::fprintf(stderr, "fuseboxctl: cannot reach fusebox admin at %s: %s; is fusebox running, and is --admin right?\n",
               address.text().c_str(), why.c_str());
  return kExitUnreachable;
}

// The start of a body that is not the JSON we expected, printable, for a message.
std::string excerpt(std::string_view body) {
  std::string out;
  for (const char c : body.substr(0, 60)) out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
  return out + (body.size() > 60 ? "..." : "");
}

// An error status: the API's own sentence (`{"error": CODE, "message": ...}`), then what to do.
int refused(const fc::Response& response, const fc::Json& body, bool token_sent) {
  std::string message;
  std::string code;
  if (body.is_object()) {
    if (const auto it = body.find("message"); it != body.end() && it->is_string()) message = it->get<std::string>();
    if (const auto it = body.find("error"); it != body.end() && it->is_string()) code = it->get<std::string>();
  }
  if (message.empty())
    message = "the request was refused" + (response.body.empty() ? "" : ": " + excerpt(response.body));
  if (code.empty()) code = response.reason;
  std::fprintf(stderr, "fuseboxctl: %s (HTTP %d%s)\n", message.c_str(), response.status,
               code.empty() ? "" : (" " + code).c_str());
  if (response.status == 401 && token_sent)
    std::fprintf(stderr, "hint: the token sent is not fusebox's; pass --token or set FUSEBOX_ADMIN_TOKEN\n");
  else if (response.status == 401)
    std::fprintf(stderr, "hint: pass --token or set FUSEBOX_ADMIN_TOKEN\n");
  else if (response.status == 403)
    std::fprintf(stderr, "hint: configure a token: set FUSEBOX_ADMIN_TOKEN or admin.token_file where fusebox runs\n");
  else if (response.status == 404 && code == "unknown_cluster")
    std::fprintf(stderr, "hint: see `fuseboxctl status` for the cluster names\n");
  return kExitRefused;
}

// --token, else FUSEBOX_ADMIN_TOKEN; empty means none. The token goes into a header line as it
// is, so a newline (a token read from a file with $(cat)) or edge spaces, which the server would
// strip as OWS, are refused here rather than sent.
fusebox::Result<std::string> token_from(const std::string& flag) {
  std::string source = "--token";
  std::string token = flag;
  if (token.empty()) {
    const char* env = std::getenv("FUSEBOX_ADMIN_TOKEN");
    source = "environment FUSEBOX_ADMIN_TOKEN";
    token = env != nullptr ? env : "";
  }
  for (const char c : token)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return fusebox::Error{source + ": the token holds a control character (a newline?); pass the token alone"};
  if (!token.empty() && (token.front() == ' ' || token.back() == ' '))
    return fusebox::Error{source + ": the token starts or ends with a space; pass the token alone"};
  return token;
}

// --admin, else FUSEBOX_ADMIN_ADDRESS, else fusebox's default.
fusebox::Result<fc::AdminAddress> address_from(const std::string& flag) {
  std::string source = "--admin";
  std::string text = flag;
  if (text.empty()) {
    const char* env = std::getenv("FUSEBOX_ADMIN_ADDRESS");
    source = "environment FUSEBOX_ADMIN_ADDRESS";
    text = env != nullptr && *env != '\0' ? env : std::string(fc::kDefaultAdminAddress);
  }
  auto address = fc::parse_admin_address(text);
  if (!address) return fusebox::Error{source + " \"" + text + "\": " + address.error().message};
  return address;
}

fc::Request request_for(const Command& command, const std::string& name, const std::string& token) {
  if (command.name == "status") return {.method = "GET", .target = "/admin/breakers"};
  if (command.name == "config") return {.method = "GET", .target = "/admin/config"};
  const std::string breaker = "/admin/breakers/" + fc::encode_path_segment(name);
  if (!command.changes_state) return {.method = "GET", .target = breaker};
  return {.method = "POST", .target = breaker + "/" + std::string(command.name), .bearer_token = token};
}

fusebox::Result<std::string> render(const Command& command, const fc::Json& answer) {
  if (command.name == "status") return fc::status_table(answer);
  if (command.name == "show") return fc::breaker_details(answer);
  if (command.name == "config") return fc::config_text(answer);
  return fc::action_line(answer, command.name);
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"fuseboxctl: reads and changes fusebox's circuit breakers through its admin API", "fuseboxctl"};
  app.add_option("--admin", flags.admin,
                 "fusebox's admin API: http://HOST:PORT or HOST:PORT "
                 "(default: $FUSEBOX_ADMIN_ADDRESS, else 127.0.0.1:9901)")
      ->type_name("URL");
  app.add_option("--token", flags.token,
                 "admin token, sent with open, close, reset, disable and metrics-only "
                 "(default: $FUSEBOX_ADMIN_TOKEN)")
      ->type_name("T");
  app.add_flag("--json", flags.json, "print the server's JSON answer (config: the whole answer)");
  app.set_version_flag("--version", std::string("fuseboxctl ") + FUSEBOX_VERSION + " (" + FUSEBOX_REVISION + ")");
  app.require_subcommand(1);
  for (const Command& c : kCommands) {
    CLI::App* sub = app.add_subcommand(std::string(c.name), std::string(c.help));
    sub->fallthrough();  // `fuseboxctl status --json` as well as `fuseboxctl --json status`
    if (c.takes_name)
      sub->add_option("NAME", flags.name,
                      "the breaker, as `fuseboxctl status` lists it: a cluster, or cluster/route for a "
                      "route's own")
          ->required();
  }
  app.footer(
      "Exit codes: 0 ok, 1 fusebox refused (its message and a hint follow), 2 usage error,\n"
      "3 fusebox unreachable (not running, wrong --admin, or not answering in 10 s).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports `fuseboxctl frobnicate` or `fuseboxctl --jsn` as a missing subcommand, which
    // hides the typo.
    if (app.get_subcommands().empty() && !app.remaining().empty()) {
      const std::string first = app.remaining().front();  // remaining() returns a copy
      return usage_error("\"" + first + "\" is not " + (first.rfind('-', 0) == 0 ? "an option" : "a command"));
    }
    return usage_error(e.what());
  }

  const std::string chosen = app.get_subcommands().front()->get_name();
  const Command* command = nullptr;
  for (const Command& c : kCommands)
    if (c.name == chosen) command = &c;
  if (command->takes_name && flags.name.empty()) return usage_error("NAME is empty: name a cluster");
  auto address = address_from(flags.admin);
  if (!address) return usage_error(address.error().message);
  // Only the calls that send it check the token: a stale FUSEBOX_ADMIN_TOKEN must not break status.
  auto token = command->changes_state ? token_from(flags.token) : fusebox::Result<std::string>(std::string());
  if (!token) return usage_error(token.error().message);

  // `status` lists a route's own breaker as cluster/route; the API calls it by the route's name.
  const std::string name = flags.name.substr(flags.name.rfind('/') + 1);
  if (command->takes_name && name.empty()) return usage_error("NAME ends in \"/\": name a cluster, or cluster/route");
  const fc::Request request = request_for(*command, name, token.value());
  auto response = fc::exchange(address.value(), request);
  if (!response) return unreachable(address.value(), response.error().message);
  const fc::Json answer = fc::Json::parse(response.value().body, nullptr, false);
  if (response.value().status < 200 || response.value().status > 299) {
    // fusebox answers every refusal in JSON with an "error": anything else is another server.
    if (!answer.is_object() || !answer.contains("error"))
      return unreachable(address.value(), "HTTP " + std::to_string(response.value().status) +
                                              " without fusebox's JSON error (\"" + excerpt(response.value().body) + "\")");
    return refused(response.value(), answer, !request.bearer_token.empty());
  }

  const std::string asked = request.method + " " + request.target;
  if (answer.is_discarded())
    return unreachable(address.value(),
                       "the answer to " + asked + " is not JSON (\"" + excerpt(response.value().body) + "\")");
  auto text = render(*command, answer);
  if (!text) return unreachable(address.value(), "to " + asked + ", " + text.error().message);
  std::fputs(flags.json ? fc::pretty(answer).c_str() : text.value().c_str(), stdout);
  return kExitOk;
}
