// libFuzzer target: what head office sends down (sync::Downstream::Handle:
// StockSnapshot on .../downstream/stock, PriceUpdate on .../prices,
// StoreRules on .../rules), applied
// to a real journal. Each input gets a fresh journal (in /dev/shm when it
// exists: no disk syncs) holding three receipts, so every input is
// reproducible on its own.
//
// Input: byte 0 chooses the topic (bit 2 set: rules, else bit 0: 0 stock,
// 1 prices); when bit 1 is
// set and the rest decodes as that message, its store_id (and a snapshot's
// epoch) are replaced by the journal's, so that the fuzzer reaches the
// apply paths it could never guess a random 64-bit epoch for. The rest is
// the MQTT payload.
//
// Properties checked besides "no crash, no sanitizer report":
//   * Handle answers ok, kInvalidArgument or kFailedPrecondition (a journal
//     in memory never fails), with a message when refused;
//   * every message ends in exactly one counted outcome;
//   * after it, `storegw journal verify`'s check (VerifyJournal: integrity,
//     seq density, the stock ledger against a replay of the events) passes.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <spdlog/spdlog.h>

#include "fuzz_common.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/downstream.h"

namespace {

namespace fs = std::filesystem;
namespace fz = storegw::fuzz;
namespace v1 = storegw::v1;
using storegw::Status;
using storegw::StatusCode;

// A directory of this process for the journal, removed at exit. (Leaked on
// purpose: the exit handler runs after function-local statics are gone.)
const fs::path& BaseDir() {
  static const fs::path* base = [] {
    std::error_code ec;
    const char* tmp = std::getenv("TMPDIR");
    std::string parent = fs::is_directory("/dev/shm", ec) ? "/dev/shm" : (tmp ? tmp : "/tmp");
    std::string templ = parent + "/storegw-fuzz-XXXXXX";
    if (!mkdtemp(templ.data())) fz::Fail("mkdtemp failed", templ);
    spdlog::set_level(spdlog::level::off);
    auto* p = new fs::path(templ);
    std::atexit([] {
      std::error_code e;
      fs::remove_all(BaseDir(), e);
    });
    return p;
  }();
  return *base;
}

v1::Event Receipt(int i) {
  v1::Event e;
  e.set_event_id("r-" + std::to_string(i));
  e.set_device_id("dock-1");
  e.set_occurred_at(1767225600000000 + i);
  auto* l = e.mutable_receipt()->add_lines();
  l->set_sku(i % 2 ? "A" : "B");
  l->set_qty(10 + i);
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const fs::path dir = BaseDir() / "journal";
  std::error_code ec;
  fs::remove_all(dir, ec);
  storegw::storage::JournalOptions o;
  o.data_dir = dir;
  o.maintenance_interval = std::chrono::hours(1);
  o.reader_connections = 1;
  o.now_us = [] { return int64_t{1767225600000000}; };
  auto journal = storegw::storage::Journal::Open(o);
  fz::Check(journal.ok(), "journal did not open", journal.ok() ? "" : journal.status().ToString());
  {
    std::vector<v1::Event> evs = {Receipt(1), Receipt(2), Receipt(3)};
    auto r = (*journal)->Append(std::move(evs));
    fz::Check(r.ok(), "seed receipts not journaled");
  }

  const auto kind = (data[0] & 4)   ? storegw::sync::DownstreamKind::kRules
                    : (data[0] & 1) ? storegw::sync::DownstreamKind::kPrices
                                    : storegw::sync::DownstreamKind::kStock;
  std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 2) {
    if (kind == storegw::sync::DownstreamKind::kRules) {
      v1::StoreRules r;
      if (r.ParseFromString(payload)) {
        r.set_store_id((*journal)->store_id());
        payload = r.SerializeAsString();
      }
    } else if (kind == storegw::sync::DownstreamKind::kStock) {
      v1::StockSnapshot s;
      if (s.ParseFromString(payload)) {
        s.set_store_id((*journal)->store_id());
        s.set_epoch((*journal)->epoch());
        payload = s.SerializeAsString();
      }
    } else {
      v1::PriceUpdate p;
      if (p.ParseFromString(payload)) {
        p.set_store_id((*journal)->store_id());
        payload = p.SerializeAsString();
      }
    }
  }

  {
    storegw::sync::Downstream down(journal->get());
    const Status s = down.Handle(kind, payload);
    fz::Check(s.ok() || s.code() == StatusCode::kInvalidArgument ||
                  s.code() == StatusCode::kFailedPrecondition,
              "unexpected status from Handle", s.ToString());
    if (!s.ok()) fz::Check(!s.message().empty(), "refused without a message");
    const auto c = down.counters();
    fz::Check(c.accepted() + c.refused_total() == 1, "not exactly one counted outcome",
              s.ToString());
    fz::Check(s.ok() == (c.accepted() == 1), "outcome counted does not match the answer",
              s.ToString());
  }
  (*journal)->Close();
  auto v = storegw::storage::VerifyJournal(dir);
  fz::Check(v.ok(), "journal verify fails after a downstream message",
            v.ok() ? "" : v.status().ToString());
  return 0;
}
