// proxy/main.cc: the fusebox command line. Decides where the configuration comes from (a file,
// --listen/--upstream, or the embedded default), applies the environment and then the flags on
// top, validates, and hands over to the master.
//
// Exit codes: 0 ok, 1 the configuration is invalid or a listener cannot be bound, 2 usage error.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/master.h"

namespace fp = fusebox::proxy;

namespace {

struct Flags {
  std::string config_path;
  bool validate = false;
  std::string listen;
  std::string upstream;
  std::string workers;
  std::string admin;
  std::string log_level;
};

// The environment, then the flags, on top of a config from a file, the command line, the embedded
// default or the admin API.
fusebox::Result<fp::Config> override(const Flags& f, fusebox::Result<fp::Config> base) {
  if (!base) return base;
  fp::Config config = std::move(base).value();
  if (auto env = fp::apply_environment(config, [](const char* name) -> const char* { return std::getenv(name); });
      !env)
    return env.error();
  // Not a config key's override but the segment's own: tests and side-by-side instances on one
  // host give each fusebox its own breakers without writing a file.
  if (const char* shm_name = std::getenv("FUSEBOX_SHM_NAME"); shm_name != nullptr && *shm_name != '\0') {
    const std::string name = shm_name;
    if (name.size() > 200 || name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
                                 std::string::npos)
      return fusebox::Error{"environment FUSEBOX_SHM_NAME: \"" + name + "\" is not 1-200 of [A-Za-z0-9_.-]"};
    config.shm.name = name;
  }
  if (!f.workers.empty()) {
    if (f.workers == "auto") {
      config.workers = 0;
    } else {
      char* end = nullptr;
      const long n = std::strtol(f.workers.c_str(), &end, 10);
      if (*end != '\0' || n < 1 || n > 32)
        return fusebox::Error{"--workers \"" + f.workers + "\": not auto or a number from 1 to 32"};
      config.workers = static_cast<unsigned>(n);
    }
  }
  if (!f.admin.empty()) {
    auto admin = fp::parse_host_port(f.admin);
    if (!admin) return fusebox::Error{"--admin \"" + f.admin + "\": " + admin.error().message};
    config.admin_address = admin.value();
  }
  if (!f.log_level.empty()) {
    auto level = fp::parse_log_level(f.log_level);
    if (!level) return fusebox::Error{"--log-level \"" + f.log_level + "\": " + level.error().message};
    config.log_level = level.value();
  }
  return config;
}

// Builds the whole configuration from the flags: source, then environment, then flags.
fusebox::Result<fp::Config> make_config(const Flags& f) {
  if (!f.config_path.empty()) return override(f, fp::load_config_file(f.config_path));
  if (!f.listen.empty()) return override(f, fp::command_line_config(f.listen, f.upstream));
  return override(f, fp::default_config());
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"fusebox: a resilience sidecar proxy (HTTP/1.1, circuit breakers in shared memory)", "fusebox"};
  app.add_option("-c,--config", flags.config_path, "YAML configuration file (default: the embedded one)");
  app.add_flag("--validate", flags.validate, "check the configuration, print every error with its line, exit");
  app.add_option("--listen", flags.listen, "HOST:PORT to listen on, with --upstream: one listener, no file");
  app.add_option("--upstream", flags.upstream, "HOST:PORT to forward to, with --listen");
  app.add_option("--workers", flags.workers, "worker processes: auto (the usable CPUs) or a number");
  app.add_option("--admin", flags.admin, "HOST:PORT of the admin listener");
  app.add_option("--log-level", flags.log_level, "debug, info, warn or error");
  app.set_version_flag("--version", std::string("fusebox ") + FUSEBOX_VERSION + " (" + FUSEBOX_REVISION + ")");
  app.footer(
      "Environment: FUSEBOX_WORKERS, FUSEBOX_LOG_LEVEL, FUSEBOX_ADMIN_ADDRESS, FUSEBOX_ACCESS_LOG,\n"
      "FUSEBOX_DRAIN_TIMEOUT, FUSEBOX_SHM_NAME override the configuration; flags override the environment.\n"
      "Signals: SIGTERM drains and exits, SIGHUP reloads the --config file.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (!flags.config_path.empty() && (!flags.listen.empty() || !flags.upstream.empty())) {
    std::fprintf(stderr, "fusebox: --config and --listen/--upstream exclude each other: use one\n");
    return 2;
  }
  if (flags.listen.empty() != flags.upstream.empty()) {
    std::fprintf(stderr, "fusebox: --listen and --upstream go together: give both, or --config FILE\n");
    return 2;
  }

  auto config = make_config(flags);
  if (flags.validate) {
    if (!config) {
      std::fprintf(stderr, "%s\n", config.error().message.c_str());
      return 1;
    }
    std::printf("%s: valid (%zu listeners, %zu clusters)\n", config.value().source.c_str(),
                config.value().listeners.size(), config.value().clusters.size());
    return 0;
  }
  if (!config) {
    std::fprintf(stderr, "fusebox: invalid configuration:\n%s\n", config.error().message.c_str());
    return 1;
  }

  // Writes to a closed socket report EPIPE; the default SIGPIPE would kill the process.
  signal(SIGPIPE, SIG_IGN);
  fp::log::init(config.value().log_level, "master");
  fp::Master::Reload reload;
  if (!flags.config_path.empty()) reload = [flags] { return make_config(flags); };
  // PUT /admin/config: the text replaces the file (or the command line), under the same
  // environment and flags.
  fp::Master::Adopt adopt = [flags](const std::string& text, fp::ConfigErrors* errors) {
    return override(flags, fp::parse_config(text, "<admin>", errors));
  };
  fp::Master master(std::move(config).value(), std::move(reload), std::move(adopt));
  return master.run();
}
