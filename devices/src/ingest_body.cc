#include "ingest_body.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cctype>
#include <ctime>

namespace storegw::devices {
namespace {

namespace pb = ::google::protobuf;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsIdentifier(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

void ReplaceAll(std::string& s, std::string_view from, std::string_view to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
    s.replace(p, from.size(), to);
  }
}

// Turns protobuf's JSON parse error into a Status whose field is the path of
// the offending field. protobuf 3.21 words them like this:
//   "(events[0].sale.lines[0].qty): invalid value \"abc\" for type TYPE_INT64"
//   "(events[1].sale.lines[1]) bogus: Cannot find field."
//   "bogus: Cannot find field."
//   ": invalid value oneof field 'body' is already set. Cannot set 'receipt' for type oneof"
//   "Unexpected end of string. Expected an object key or }.\n<excerpt>\n^"
Status JsonError(std::string_view raw) {
  std::string m(raw.substr(0, raw.find('\n')));
  std::string path;
  std::string_view rest = m;
  if (!rest.empty() && rest.front() == '(') {
    const size_t close = rest.find(')');
    if (close != std::string_view::npos) {
      path = std::string(rest.substr(1, close - 1));
      rest.remove_prefix(close + 1);
    }
  }
  rest = Trim(rest);
  std::string name;
  std::string text(rest);
  const size_t colon = rest.find(": ");
  if (colon == 0) {
    text = std::string(rest.substr(2));
  } else if (colon != std::string_view::npos && IsIdentifier(rest.substr(0, colon))) {
    name = std::string(rest.substr(0, colon));
    text = std::string(rest.substr(colon + 2));
  } else if (rest.size() > 1 && rest.front() == ':') {
    text = std::string(Trim(rest.substr(1)));
  }
  if (name.empty()) {
    // "oneof field 'body' is already set. Cannot set 'receipt'": name the
    // second body.
    const std::string kSet = "Cannot set '";
    if (size_t p = text.find(kSet); p != std::string::npos) {
      const size_t start = p + kSet.size();
      const size_t end = text.find('\'', start);
      if (end != std::string::npos) name = text.substr(start, end - start);
      text =
          "more than one body is set (an event has exactly one of sale, sale_return, "
          "receipt, adjustment, count, transfer, reservation, pickup, sensor)";
    }
  }
  if (text == "Cannot find field.") {
    text = "unknown field (not in the storegw.v1 schema; field names are case-sensitive)";
  }
  ReplaceAll(text, "for type TYPE_INT64", "(expected a 64-bit integer)");
  ReplaceAll(text, "for type TYPE_UINT64", "(expected an unsigned 64-bit integer)");
  ReplaceAll(text, "for type TYPE_INT32", "(expected a 32-bit integer)");
  ReplaceAll(text, "for type TYPE_STRING", "(expected a string)");
  ReplaceAll(text, "for type TYPE_BOOL", "(expected true or false)");
  ReplaceAll(text, "for type TYPE_ENUM", "(expected one of the enum's names)");
  ReplaceAll(text, "for type TYPE_MESSAGE", "(expected an object)");
  const std::string field = JoinPath(path, name);
  if (field.empty()) return Status::InvalidArgument("", "malformed JSON: " + text);
  return Status::InvalidArgument(field, "invalid JSON at " + field + ": " + text);
}

// The first unknown field of a decoded protobuf message, depth first:
// (path of the message that holds it, field number).
std::optional<std::pair<std::string, int>> FindUnknownField(const pb::Message& m,
                                                            const std::string& path) {
  const pb::Reflection* r = m.GetReflection();
  const pb::UnknownFieldSet& unknown = r->GetUnknownFields(m);
  if (!unknown.empty()) return std::make_pair(path, unknown.field(0).number());
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const pb::FieldDescriptor* f : fields) {
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const std::string p = JoinPath(path, f->name());
    if (f->is_repeated()) {
      const int n = r->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        if (auto u = FindUnknownField(r->GetRepeatedMessage(m, f, i),
                                      p + "[" + std::to_string(i) + "]")) {
          return u;
        }
      }
    } else if (auto u = FindUnknownField(r->GetMessage(m, f), p)) {
      return u;
    }
  }
  return std::nullopt;
}

// Whether a JSON object has `key`. Goes through reflection (the map as its
// repeated entries) rather than Map::find: with Debian's libprotobuf 3.21,
// inline Map code compiled into a ThreadSanitizer build crashes.
bool HasKey(const pb::Struct& object, const std::string& key) {
  const pb::Reflection* r = object.GetReflection();
  const pb::FieldDescriptor* fields = object.GetDescriptor()->FindFieldByName("fields");
  const int n = r->FieldSize(object, fields);
  for (int i = 0; i < n; ++i) {
    const pb::Message& entry = r->GetRepeatedMessage(object, fields, i);
    const pb::FieldDescriptor* k = entry.GetDescriptor()->map_key();
    if (entry.GetReflection()->GetString(entry, k) == key) return true;
  }
  return false;
}

Status NoEvents() {
  return Status::InvalidArgument("events", "events needs at least one event");
}

Result<DecodedBody> DecodeProtobuf(const std::string& body) {
  v1::IngestRequest req;
  if (!req.ParseFromString(body)) {
    return Status::InvalidArgument("",
                                   "body is not a valid protobuf-encoded storegw.v1.IngestRequest");
  }
  if (auto u = FindUnknownField(req, "")) {
    const std::string where = u->first.empty() ? "IngestRequest" : u->first;
    return Status::InvalidArgument(u->first, where + " has unknown field number " +
                                                 std::to_string(u->second) +
                                                 " (not in the storegw.v1 schema)");
  }
  if (req.events_size() == 0) return NoEvents();
  DecodedBody out;
  out.events.reserve(static_cast<size_t>(req.events_size()));
  for (auto& e : *req.mutable_events()) out.events.push_back(std::move(e));
  return out;
}

Result<DecodedBody> DecodeJson(const std::string& body) {
  if (Trim(body).empty()) {
    return Status::InvalidArgument("",
                                   "request body is empty (expected one Event or "
                                   "{\"events\": [...]} as JSON)");
  }
  if (Status s = CheckStrictJson(body); !s.ok()) return s;
  pb::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;

  // Fast path: a batch.
  v1::IngestRequest req;
  const auto batch_status = pb::util::JsonStringToMessage(body, &req, opts);
  if (batch_status.ok() && req.events_size() > 0) {
    DecodedBody out;
    out.events.reserve(static_cast<size_t>(req.events_size()));
    for (auto& e : *req.mutable_events()) out.events.push_back(std::move(e));
    return out;
  }

  // Then one Event (an Event has no "events" field, so a batch never parses
  // as one).
  DecodedBody single;
  single.single = true;
  single.events.emplace_back();
  const auto event_status = pb::util::JsonStringToMessage(body, &single.events.back(), opts);
  if (event_status.ok()) return single;

  // Neither: report the error of the shape the client meant, decided by the
  // top-level keys (google.protobuf.Value parses any JSON): an object with
  // "events" is a batch, any other object one Event.
  pb::Value top;
  const auto value_status = pb::util::JsonStringToMessage(body, &top, opts);
  if (!value_status.ok()) {
    if (batch_status.ok()) return NoEvents();  // e.g. a repeated "events" key
    return JsonError(std::string(value_status.message()));
  }
  if (top.kind_case() != pb::Value::kStructValue) {
    return Status::InvalidArgument("",
                                   "body must be a JSON object: one Event or {\"events\": [...]}");
  }
  if (HasKey(top.struct_value(), "events")) {
    if (batch_status.ok()) return NoEvents();
    return JsonError(std::string(batch_status.message()));
  }
  return JsonError(std::string(event_status.message()));
}

}  // namespace

std::optional<BodyFormat> FormatForContentType(std::string_view content_type) {
  const std::string ct = Lower(content_type);
  std::string_view v = ct;
  const size_t semi = v.find(';');
  const std::string_view media = Trim(v.substr(0, semi));
  if (media == "application/x-protobuf" || media == "application/protobuf") {
    return BodyFormat::kProtobuf;
  }
  if (media != "application/json") return std::nullopt;
  // Parameters: only charset matters, and JSON is UTF-8.
  std::string_view params = semi == std::string_view::npos ? "" : v.substr(semi + 1);
  while (!params.empty()) {
    const size_t next = params.find(';');
    std::string_view p = Trim(params.substr(0, next));
    params = next == std::string_view::npos ? "" : params.substr(next + 1);
    if (p.rfind("charset=", 0) == 0) {
      std::string_view cs = p.substr(8);
      if (cs.size() >= 2 && cs.front() == '"' && cs.back() == '"') cs = cs.substr(1, cs.size() - 2);
      if (cs != "utf-8" && cs != "utf8") return std::nullopt;
    }
  }
  return BodyFormat::kJson;
}

Result<DecodedBody> DecodeIngestBody(BodyFormat format, const std::string& body) {
  return format == BodyFormat::kProtobuf ? DecodeProtobuf(body) : DecodeJson(body);
}

namespace {

// "2026-11-27T09:53:20Z" (UTC, whole seconds) for microseconds since 1970.
std::string Utc(int64_t us) {
  const std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  if (gmtime_r(&secs, &tm) == nullptr) return "?";
  char buf[40];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return "?";
  return buf;
}

}  // namespace

Status CheckOccurredAt(int64_t v, int64_t now_us) {
  constexpr int64_t k2000 = 946'684'800'000'000;  // 2000-01-01T00:00:00Z in microseconds
  constexpr int64_t kDay = int64_t{86'400} * 1'000'000;
  const int64_t latest = now_us + kDay;
  if (v >= k2000 && v <= latest) return {};
  const std::string unit = "occurred_at is microseconds since 1970-01-01 UTC";
  const std::string value = std::to_string(v);
  if (v == 0) {
    return Status::InvalidArgument(
        "occurred_at", "is missing or 0: " + unit + " (the device's clock when the event "
                       "happened, e.g. " + std::to_string(now_us) + " for now)");
  }
  if (v < 0) {
    return Status::InvalidArgument("occurred_at", value + " is negative: " + unit);
  }
  // Another unit? The value as seconds, milliseconds or nanoseconds, when
  // that lands inside the window.
  // (Each is computed only when it fits: v * 1,000,000 overflows for most v.)
  const char* unit_name = nullptr;
  int64_t as_us = 0;
  if (v >= k2000 / 1'000'000 && v <= latest / 1'000'000) {
    unit_name = "seconds";
    as_us = v * 1'000'000;
  } else if (v >= k2000 / 1'000 && v <= latest / 1'000) {
    unit_name = "milliseconds";
    as_us = v * 1'000;
  } else if (v / 1'000 >= k2000 && v / 1'000 <= latest) {
    unit_name = "nanoseconds";
    as_us = v / 1'000;
  }
  if (unit_name != nullptr) {
    return Status::InvalidArgument("occurred_at", value + " looks like " + unit_name + " (" +
                                                      Utc(as_us) + "); " + unit + ": send " +
                                                      std::to_string(as_us));
  }
  if (v < k2000) {
    return Status::InvalidArgument("occurred_at",
                                   value + " is " + Utc(v) + ", before 2000: " + unit);
  }
  return Status::InvalidArgument(
      "occurred_at", value + " is " + Utc(v) + ", more than a day ahead of the gateway's clock (" + Utc(now_us) +
                         "): " + unit + "; check the device's clock");
}

std::string EventPath(bool single, size_t index) {
  return single ? std::string() : "events[" + std::to_string(index) + "]";
}

std::string JoinPath(std::string_view prefix, std::string_view field) {
  if (prefix.empty()) return std::string(field);
  if (field.empty()) return std::string(prefix);
  std::string out(prefix);
  if (field.front() != '[') out += '.';
  out += field;
  return out;
}

}  // namespace storegw::devices
