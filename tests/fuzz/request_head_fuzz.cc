// tests/fuzz/request_head_fuzz.cc: libFuzzer target over what a worker does with a request head:
// llhttp parses the bytes (in two slices, as when a head spans two reads) into an HttpHead through
// HeadParser, the raw lines are checked (head_check), the request is routed, and the head for the
// upstream is built. Properties, not just "no crash": a head that passed our checks produces an
// upstream head that is itself valid HTTP/1.1, parses back to the same method and target, and has
// no bare CR or LF (nothing the client sent can split it into two requests).
//
//   clang++ build: tools/fuzz [SECONDS]     (libFuzzer, ASan, UBSan)
//   g++ build: request_head_fuzz_replay runs the seed corpus and mutations of it (CTest)
#include <llhttp.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "proxy/config.h"
#include "proxy/head_check.h"
#include "proxy/head_parser.h"
#include "proxy/head_writer.h"
#include "proxy/router.h"

namespace fp = fusebox::proxy;

namespace {

class FuzzHead : public fp::HeadParser {
 public:
  explicit FuzzHead(llhttp_type_t type) {
    settings_ = settings([](llhttp_t*) { return static_cast<int>(HPE_PAUSED); }, nullptr, nullptr);
    llhttp_init(&parser_, type, &settings_);
    parser_.data = static_cast<fp::HeadParser*>(this);
  }
  // Returns the head's length if a whole head was parsed, else 0.
  size_t parse(const char* data, size_t size, size_t split) {
    split = std::min(split, size);
    llhttp_errno_t err = llhttp_execute(&parser_, data, split);
    const char* base = data;
    if (err == HPE_OK) err = llhttp_execute(&parser_, data + split, size - split);
    if (err != HPE_PAUSED) return 0;
    return static_cast<size_t>(llhttp_get_error_pos(&parser_) - base);
  }
  const fp::HttpHead& head() const { return head_; }
  bool too_many_fields() const { return too_many_fields_; }
  llhttp_t parser_{};

 private:
  llhttp_settings_t settings_{};
};

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

const fp::ListenerConfig& listener() {
  static const fp::ListenerConfig l = [] {
    fp::ListenerConfig c;
    c.routes = {{.prefix = "/api", .host = "h", .cluster = "a", .cluster_index = 0},
                {.prefix = "/", .cluster = "b", .cluster_index = 1}};
    return c;
  }();
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t split = data[0];  // the first byte says where the read boundary falls
  const char* text = reinterpret_cast<const char*>(data + 1);
  const size_t n = size - 1;

  FuzzHead request(HTTP_REQUEST);
  const size_t head_len = request.parse(text, n, split);
  if (head_len == 0) return 0;
  // The worker's own checks: what fails them is answered 400 and never forwarded.
  if (fp::check_head_lines({text, head_len}) != nullptr) return 0;
  if (fp::check_request_line(request.parser_) != nullptr) return 0;
  const fp::HttpHead& head = request.head();
  fp::match_route(listener(), head.find("host"), head.target);

  char out[16 * 1024 + 2048];
  const size_t out_len = fp::write_upstream_request(
      out, sizeof out, head,
      {.client_address = "127.0.0.1", .request_id = "0123456789abcdef0123456789abcdef",
       .upgrade = llhttp_get_upgrade(&request.parser_) != 0,
       .default_host = "upstream:8080"});
  if (out_len == 0) return 0;  // did not fit: answered 431, nothing sent

  const std::string_view sent(out, out_len);
  check(sent.size() >= 4 && sent.substr(sent.size() - 4) == "\r\n\r\n", "the upstream head ends with CRLF CRLF");
  check(fp::check_head_lines(sent) == nullptr, "the upstream head has no bare CR, bare LF or folded line");
  check(sent.find("\r\n\r\n") == sent.size() - 4, "the upstream head has exactly one end");

  FuzzHead again(HTTP_REQUEST);
  const size_t again_len = again.parse(out, out_len, out_len / 2);
  // Our three added fields may take a full head past HttpHead's 100: a limit of this parser,
  // not of HTTP (the upstream has its own).
  if (again_len == 0 && again.too_many_fields()) return 0;
  check(again_len == out_len, "the upstream head parses back whole");
  check(again.head().method == head.method, "the method survives");
  // The target survives; an absolute-form one goes on in origin-form with its authority as Host.
  const fp::RequestTarget t = fp::split_target(head.target);
  if (t.absolute) {
    const std::string_view got = again.head().target;
    check(got.size() >= t.origin_form.size() && got.substr(got.size() - t.origin_form.size()) == t.origin_form,
          "an absolute-form target goes on in origin-form");
    check(again.head().find("host") == t.authority, "an absolute-form target's authority is the Host");
  } else {
    check(again.head().target == head.target, "the target survives");
  }
  check(llhttp_get_http_major(&again.parser_) == 1 && llhttp_get_http_minor(&again.parser_) == 1,
        "the upstream head is HTTP/1.1");
  return 0;
}
