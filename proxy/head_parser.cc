// proxy/head_parser.cc: see head_parser.h.
#include "proxy/head_parser.h"

namespace fusebox::proxy {

llhttp_settings_t HeadParser::settings(llhttp_cb on_headers_complete, llhttp_data_cb on_body,
                                       llhttp_cb on_message_complete) noexcept {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_begin = on_message_begin;
  s.on_method = on_method;
  s.on_url = on_url;
  s.on_status = on_status;
  s.on_header_field = on_header_field;
  s.on_header_field_complete = on_header_field_complete;
  s.on_header_value = on_header_value;
  s.on_header_value_complete = on_header_value_complete;
  s.on_headers_complete = on_headers_complete;
  s.on_body = on_body;
  s.on_message_complete = on_message_complete;
  return s;
}

int HeadParser::on_message_begin(llhttp_t* p) noexcept {
  HeadParser* self = of(p);
  self->head_.clear();
  self->too_many_fields_ = false;
  return HPE_OK;
}

int HeadParser::on_method(llhttp_t* p, const char* at, size_t len) noexcept {
  HttpHead::extend(of(p)->head_.method, at, len);
  return HPE_OK;
}

int HeadParser::on_url(llhttp_t* p, const char* at, size_t len) noexcept {
  HttpHead::extend(of(p)->head_.target, at, len);
  return HPE_OK;
}

int HeadParser::on_status(llhttp_t* p, const char* at, size_t len) noexcept {
  HttpHead::extend(of(p)->head_.reason, at, len);
  return HPE_OK;
}

int HeadParser::on_header_field(llhttp_t* p, const char* at, size_t len) noexcept {
  HeadParser* self = of(p);
  if (!self->head_.add_name(at, len)) {
    self->too_many_fields_ = true;
    llhttp_set_error_reason(p, "more than 100 header fields");
    return HPE_USER;
  }
  return HPE_OK;
}

int HeadParser::on_header_field_complete(llhttp_t* p) noexcept {
  of(p)->head_.end_name();
  return HPE_OK;
}

int HeadParser::on_header_value(llhttp_t* p, const char* at, size_t len) noexcept {
  of(p)->head_.add_value(at, len);
  return HPE_OK;
}

int HeadParser::on_header_value_complete(llhttp_t* p) noexcept {
  of(p)->head_.end_value();
  return HPE_OK;
}

}  // namespace fusebox::proxy
