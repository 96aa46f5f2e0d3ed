// proxy/head_parser.h: the llhttp callbacks that fill an HttpHead, shared by the request side
// (Downstream), the response side (Upstream) and the fuzz target, so that all three parse a head
// the same way. The owner derives from HeadParser, sets `parser.data` to its HeadParser part, and
// adds its own on_headers_complete, on_body and on_message_complete.
#pragma once

#include <llhttp.h>

#include "proxy/http_head.h"

namespace fusebox::proxy {

class HeadParser {
 public:
  // Settings with the head-building callbacks and the owner's own three.
  static llhttp_settings_t settings(llhttp_cb on_headers_complete, llhttp_data_cb on_body,
                                    llhttp_cb on_message_complete) noexcept;

 protected:
  static HeadParser* of(llhttp_t* p) noexcept { return static_cast<HeadParser*>(p->data); }

  HttpHead head_;
  bool too_many_fields_ = false;  // more than HttpHead::kMaxHeaders: 431, not 400

 private:
  static int on_message_begin(llhttp_t* p) noexcept;
  static int on_method(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_url(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_status(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_header_field(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_header_field_complete(llhttp_t* p) noexcept;
  static int on_header_value(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_header_value_complete(llhttp_t* p) noexcept;
};

}  // namespace fusebox::proxy
