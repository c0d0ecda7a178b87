#include "event_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <charconv>
#include <vector>

namespace storegw::hq::pg {
namespace {

namespace pb = google::protobuf;
using FD = pb::FieldDescriptor;

template <typename T>
void AppendNumber(T v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

template <typename T>
void AppendQuotedNumber(T v, std::string* out) {
  out->push_back('"');
  AppendNumber(v, out);
  out->push_back('"');
}

// A JSON string as MessageToJsonString escapes it; false for any byte
// outside ASCII (its escaping of some non-ASCII code points is its own).
bool AppendString(const std::string& s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == '<' || c == '>' || c == 0x7f) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xf]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
  return true;
}

bool AppendMessage(const pb::Message& m, std::string* out);

bool AppendEnum(const pb::EnumDescriptor* type, int number, std::string* out) {
  if (const pb::EnumValueDescriptor* v = type->FindValueByNumber(number)) {
    return AppendString(v->name(), out);
  }
  AppendNumber(number, out);
  return true;
}

// One value of `f` (element `index` when repeated).
bool AppendValue(const pb::Message& m, const pb::Reflection* r, const FD* f, int index,
                 std::string* out) {
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32:
      AppendNumber(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f), out);
      return true;
    case FD::CPPTYPE_UINT32:
      AppendNumber(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f), out);
      return true;
    case FD::CPPTYPE_INT64:
      AppendQuotedNumber(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f), out);
      return true;
    case FD::CPPTYPE_UINT64:
      AppendQuotedNumber(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f), out);
      return true;
    case FD::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false");
      return true;
    case FD::CPPTYPE_ENUM:
      return AppendEnum(f->enum_type(),
                        rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f), out);
    case FD::CPPTYPE_STRING: {
      if (f->type() == FD::TYPE_BYTES) return false;
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      return AppendString(s, out);
    }
    case FD::CPPTYPE_MESSAGE:
      if (f->is_map()) return false;
      return AppendMessage(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f), out);
    default:  // float, double
      return false;
  }
}

bool AppendMessage(const pb::Message& m, std::string* out) {
  const pb::Descriptor* d = m.GetDescriptor();
  // Well-known types (Timestamp, Struct, Any, wrappers...) have JSON
  // forms of their own; proto2 has other presence rules.
  if (d->file()->package() == "google.protobuf" ||
      d->file()->syntax() != pb::FileDescriptor::SYNTAX_PROTO3) {
    return false;
  }
  const pb::Reflection* r = m.GetReflection();
  if (!r->GetUnknownFields(m).empty()) return false;
  std::vector<const FD*> fields;
  r->ListFields(m, &fields);  // present fields, by field number: the printer's order
  bool ok = true;
  out->push_back('{');
  bool first = true;
  for (const FD* f : fields) {
    if (!first) out->push_back(',');
    first = false;
    out->push_back('"');
    out->append(f->name());
    out->append("\":");
    if (f->is_repeated()) {
      out->push_back('[');
      const int n = r->FieldSize(m, f);
      for (int i = 0; i < n && ok; ++i) {
        if (i) out->push_back(',');
        ok = AppendValue(m, r, f, i, out);
      }
      out->push_back(']');
    } else {
      ok = AppendValue(m, r, f, -1, out);
    }
    if (!ok) break;
  }
  out->push_back('}');
  return ok;
}

}  // namespace

bool AppendProtoJsonFast(const pb::Message& m, std::string* out) {
  const size_t mark = out->size();
  if (AppendMessage(m, out)) return true;
  out->resize(mark);
  return false;
}

bool AppendProtoJson(const pb::Message& m, std::string* out) {
  if (AppendProtoJsonFast(m, out)) return true;
  pb::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  std::string json;
  if (!pb::util::MessageToJsonString(m, &json, opts).ok()) return false;
  out->append(json);
  return true;
}

}  // namespace storegw::hq::pg
