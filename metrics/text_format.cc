// metrics/text_format.cc: see text_format.h. The format:
// https://prometheus.io/docs/instrumenting/exposition_formats/ ("Text-based format").
#include "metrics/text_format.h"

#include <charconv>
#include <cmath>

namespace fusebox::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricType;

// As printf's %.16g, prometheus-cpp's precision: "0.0005" (not to_chars' shortest, "5e-04": a
// histogram's `le` label should read as people write it in queries), "100", "1e+20"; the special
// values as Prometheus spells them.
void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 16);
    out.append(buf, r.ptr);
  }
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Label values escape backslash, double quote and newline; HELP text escapes backslash and newline
// (prometheus-cpp 1.0.1 leaves HELP as is: a newline in it would start a bogus sample line).
void append_escaped(std::string& out, const std::string& s, bool quotes) {
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// name{a="1",b="2"[,le="0.5"]} 
void append_series(std::string& out, const std::string& name, const char* suffix,
                   const std::vector<ClientMetric::Label>& labels, const char* le_text = nullptr) {
  out += name;
  out += suffix;
  if (!labels.empty() || le_text != nullptr) {
    out += '{';
    bool first = true;
    for (const auto& l : labels) {
      if (!first) out += ',';
      first = false;
      out += l.name;
      out += "=\"";
      append_escaped(out, l.value, true);
      out += '"';
    }
    if (le_text != nullptr) {
      if (!first) out += ',';
      out += "le=\"";
      out += le_text;
      out += '"';
    }
    out += '}';
  }
  out += ' ';
}

// The _sum and _count lines of a histogram or a summary.
void append_sum_count(std::string& out, const std::string& name, const std::vector<ClientMetric::Label>& labels,
                      double sum, uint64_t count) {
  append_series(out, name, "_sum", labels);
  append_value(out, sum);
  out += '\n';
  append_series(out, name, "_count", labels);
  append_uint(out, count);
  out += '\n';
}

const char* type_name(MetricType t) {
  switch (t) {
    case MetricType::Counter: return "counter";
    case MetricType::Gauge: return "gauge";
    case MetricType::Summary: return "summary";
    case MetricType::Histogram: return "histogram";
    default: return "untyped";
  }
}

}  // namespace

std::string to_text(const std::vector<prometheus::MetricFamily>& families) {
  std::string out;
  size_t samples = 0;
  for (const auto& f : families) samples += f.metric.size() * (f.type == MetricType::Histogram ? 18 : 1);
  out.reserve(samples * 96);
  for (const auto& f : families) {
    out += "# HELP ";
    out += f.name;
    out += ' ';
    append_escaped(out, f.help, false);
    out += "\n# TYPE ";
    out += f.name;
    out += ' ';
    out += type_name(f.type);
    out += '\n';
    for (const ClientMetric& m : f.metric) {
      switch (f.type) {
        case MetricType::Counter:
          append_series(out, f.name, "", m.label);
          append_value(out, m.counter.value);
          out += '\n';
          break;
        case MetricType::Gauge:
          append_series(out, f.name, "", m.label);
          append_value(out, m.gauge.value);
          out += '\n';
          break;
        case MetricType::Histogram:
          for (const auto& b : m.histogram.bucket) {
            std::string le;
            append_value(le, b.upper_bound);
            append_series(out, f.name, "_bucket", m.label, le.c_str());
            append_uint(out, b.cumulative_count);
            out += '\n';
          }
          append_sum_count(out, f.name, m.label, m.histogram.sample_sum, m.histogram.sample_count);
          break;
        case MetricType::Summary:
          for (const auto& q : m.summary.quantile) {
            std::vector<ClientMetric::Label> labels = m.label;
            std::string quantile;
            append_value(quantile, q.quantile);
            labels.push_back({"quantile", quantile});
            append_series(out, f.name, "", labels);
            append_value(out, q.value);
            out += '\n';
          }
          append_sum_count(out, f.name, m.label, m.summary.sample_sum, m.summary.sample_count);
          break;
        default:
          append_series(out, f.name, "", m.label);
          append_value(out, m.untyped.value);
          out += '\n';
          break;
      }
    }
  }
  return out;
}

}  // namespace fusebox::metrics
