// The uplink inside the real `storegw run` daemon: a backlog posted over
// the device API while HQ is unreachable, drained through a proxy that
// stalls mid-drain, the daemon killed with SIGKILL while batches are in
// flight, restarted on the same journal, and HQ still ends up with every
// acknowledged event exactly once, in seq order, without a gap; the
// daemon's /v1/status shows the link, the backlog and the watermark.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "../gateway/test_util.h"
#include "sync_test_util.h"
#include "tcp_proxy.h"

namespace {

using namespace std::chrono_literals;
namespace v1 = storegw::v1;
namespace gt = storegw::test;
namespace st = storegw::sync_test;

std::optional<v1::GatewayStatus> DaemonStatus(uint16_t port) {
  gt::HttpResult r = gt::HttpGet(port, "/v1/status");
  if (r.status != 200) return std::nullopt;
  return gt::FromJson<v1::GatewayStatus>(r.body);
}

// Posts `n` receipts (no oversell alerts: the journal holds exactly what
// was posted) in requests of 200; records every acknowledged seq.
void PostReceipts(uint16_t port, int first, int n, std::map<std::string, uint64_t>& acked) {
  for (int i = 0; i < n; i += 200) {
    std::vector<std::string> events;
    std::vector<std::string> ids;
    for (int k = i; k < std::min(n, i + 200); ++k) {
      ids.push_back("rcv-" + std::to_string(first + k));
      events.push_back(gt::ReceiptJson(ids.back(), "dock-1", "SKU-" + std::to_string(k % 300), 2));
    }
    gt::HttpResult r = gt::HttpPost(port, "/v1/events", gt::BatchJson(events));
    REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body << r.error);
    auto resp = gt::FromJson<v1::IngestResponse>(r.body);
    REQUIRE(resp);
    REQUIRE(resp->results_size() == static_cast<int>(ids.size()));
    for (const auto& res : resp->results()) acked[res.event_id()] = res.seq();
  }
}

}  // namespace

TEST_CASE("sync daemon: kill -9 of storegw mid-drain loses and duplicates nothing at HQ") {
  gt::TempDir dir;
  chmod(dir.path().c_str(), 0755);
  const auto data = dir / "data";
  st::Mosquitto broker(dir / "broker");
  st::HqConsumer::Options co;
  co.url = broker.url();
  co.max_batch_events = 50;
  st::HqConsumer hq(co);

  // The uplink's address: a proxy port that is not listening yet.
  const uint16_t link_port = gt::FreePort();
  gt::WriteFile(dir / "storegw.toml",
                "[uplink]\n"
                "url = \"tcp://127.0.0.1:" +
                    std::to_string(link_port) +
                    "\"\n"
                    "batch_events = 50\n"
                    "max_inflight = 4\n"
                    "backoff_initial = \"100ms\"\n"
                    "backoff_max = \"500ms\"\n"
                    "ack_timeout = \"2s\"\n"
                    "connect_timeout = \"5s\"\n"
                    // Plain payloads: the stall below must land at a known
                    // fraction of the backlog (compression is covered by
                    // sync_integration_test).
                    "compression = \"none\"\n");
  const std::vector<std::string> cfg = {"--config", (dir / "storegw.toml").string()};

  std::string why;
  auto d = gt::StartDaemon(data, dir / "logs", "first", &why, 0, cfg);
  REQUIRE_MESSAGE(d, why);
  std::map<std::string, uint64_t> acked;
  PostReceipts(d->port, 0, 20000, acked);
  REQUIRE(acked.size() == 20000);
  REQUIRE(gt::WaitFor(
      [&] {
        auto s = DaemonStatus(d->port);
        return s && s->last_error().find("Connection refused") != std::string::npos;
      },
      15s));
  {
    auto s = DaemonStatus(d->port);
    REQUIRE(s);
    CHECK(s->link() != "up");
    CHECK(s->watermark() == 0);
    CHECK(s->backlog_events() == 20000);
  }

  // The link comes up through a proxy that stalls once ~20% of the
  // backlog (about 1 MB on the wire) has gone through: the daemon is
  // killed there, with batches in flight and unacknowledged.
  st::TcpProxy link(broker.port(), link_port);
  link.ArmFault(200'000, st::TcpProxy::Fault::kStall);
  REQUIRE(gt::WaitFor([&] { return link.stalls() == 1; }, 30s));
  // What passed the proxy before the stall is whole batches on their way
  // through the broker to HQ: wait until HQ has read some (on a loaded
  // machine the consumer may not have run yet when the stall begins).
  REQUIRE(gt::WaitFor([&] { return hq.applied() > 0; }, 30s));
  const uint64_t applied_at_kill = hq.applied();
  d->proc.KillAndReap();  // SIGKILL
  REQUIRE(applied_at_kill < 20000);
  link.SetStalled(false);

  // Restart on the same journal: the replay resumes from the persisted
  // watermark (possibly a little behind: resends are duplicates at HQ).
  auto d2 = gt::StartDaemon(data, dir / "logs", "second", &why, 0, cfg);
  REQUIRE_MESSAGE(d2, why);
  // (ack = "broker": the watermark follows the broker's PUBACKs, so it may
  // briefly lead what the HQ consumer has read; what matters is that every
  // event it covers reaches HQ, checked below.)
  REQUIRE(gt::WaitFor(
      [&] {
        auto s = DaemonStatus(d2->port);
        return s && s->watermark() == 20000 && hq.applied() == 20000;
      },
      60s));
  auto s = DaemonStatus(d2->port);
  REQUIRE(s);
  CHECK(s->link() == "up");
  CHECK(s->backlog_events() == 0);
  CHECK(s->send_rate() > 0);

  // HQ holds exactly the journal, and every acknowledged event at its seq.
  auto exported = gt::ExportJournal(data, &why);
  REQUIRE_MESSAGE(exported, why);
  REQUIRE(exported->size() == 20000);
  CHECK(hq.Verify(*exported) == "");
  CHECK(hq.gaps() == 0);
  const auto stream = hq.stream();
  size_t wrong = 0;
  for (const auto& [id, seq] : acked) {
    if (seq == 0 || seq > stream.event_ids.size() || stream.event_ids[seq - 1] != id) ++wrong;
  }
  CHECK_MESSAGE(wrong == 0, wrong << " acknowledged events not at HQ with their seq");
  MESSAGE("HQ had applied " << applied_at_kill
                            << " at the kill; duplicates after the restart: " << hq.duplicates());

  // SIGTERM: exits 0 and leaves "offline" retained on the status topic.
  d2->proc.Signal(SIGTERM);
  auto e = d2->proc.WaitExit(10s);
  REQUIRE(e);
  CHECK(e->ok());
  REQUIRE(gt::WaitFor(
      [&] {
        auto all = hq.statuses();
        return !all.empty() && !all.back().online();
      },
      10s));
}
