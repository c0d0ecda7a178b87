// The changes feed (GET /v1/changes) of the real `storegw run`, black box:
// 200 SSE clients, each listing a few skus, connected before ingest starts;
// 4 tills post batches of sales of those skus as fast as the daemon answers
// for a few seconds; then the daemon is stopped and what every client
// received is compared with `storegw journal export`: one stock change per
// journaled event per listed sku it moves, ids strictly increasing, nothing
// twice, nothing missing, no client dropped.
#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "common/sse_client.h"
#include "test_util.h"
#include "till_load.h"

using namespace storegw::test;
namespace v1 = storegw::v1;

// A namespace of its own: the files of this executable are compiled as one
// unit (unity build).
namespace changes_daemon {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kClients = 200;
constexpr int kSkus = 40;          // the store's skus that are sold
constexpr int kSkusPerClient = 3;  // listed by each client
constexpr int kTills = 4;
constexpr int kBatch = 20;                            // sales per POST
constexpr auto kIngestFor = std::chrono::seconds(3);  // how long the tills post (load, not a limit)
constexpr auto kBound = std::chrono::seconds(30);     // hang guard of each wait

std::string Sku(int i) {
  return Id("SKU-F", 1000 + i);
}

// The skus an event moves the stock of, each once, in the order of its
// lines: the feed numbers a client's changes of one event by this index
// (ids "SEQ.N", the last one "SEQ").
std::vector<std::string> StockSkus(const v1::Event& e) {
  std::vector<std::string> out;
  const auto add = [&](const std::string& s) {
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  };
  switch (e.body_case()) {
    case v1::Event::kSale:
      for (const auto& l : e.sale().lines()) add(l.sku());
      break;
    case v1::Event::kSaleReturn:
      for (const auto& l : e.sale_return().lines()) add(l.sku());
      break;
    case v1::Event::kReceipt:
      for (const auto& l : e.receipt().lines()) add(l.sku());
      break;
    case v1::Event::kAdjustment:
      for (const auto& l : e.adjustment().lines()) add(l.sku());
      break;
    case v1::Event::kTransfer:
      for (const auto& l : e.transfer().lines()) add(l.sku());
      break;
    case v1::Event::kPickup:
      for (const auto& l : e.pickup().lines()) add(l.sku());
      break;
    case v1::Event::kProduction:
      add(e.production().sku());
      break;
    case v1::Event::kCount:
      add(e.count().sku());
      break;
    case v1::Event::kStockSnapshot:
      for (const auto& l : e.stock_snapshot().lines()) add(l.sku());
      break;
    default:
      break;
  }
  return out;
}

struct Change {
  std::string id, sku;
  bool operator==(const Change&) const = default;
};

// What a client listing `skus` must get after `after`, from the journal.
std::vector<Change> Want(const std::vector<v1::JournaledEvent>& journal,
                         const std::set<std::string>& skus, uint64_t after) {
  std::vector<Change> out;
  for (const v1::JournaledEvent& je : journal) {
    if (je.seq() <= after) continue;
    const std::vector<std::string> moved = StockSkus(je.event());
    std::vector<size_t> listed;
    for (size_t i = 0; i < moved.size(); ++i) {
      if (skus.count(moved[i])) listed.push_back(i);
    }
    const std::string seq = std::to_string(je.seq());
    for (size_t k = 0; k < listed.size(); ++k) {
      out.push_back(
          {k + 1 == listed.size() ? seq : seq + "." + std::to_string(listed[k]), moved[listed[k]]});
    }
  }
  return out;
}

// A string member of a flat JSON object, by search ("" when absent).
std::string Member(const std::string& data, const std::string& key) {
  const std::string k = "\"" + key + "\":\"";
  const size_t at = data.find(k);
  if (at == std::string::npos) return "";
  const size_t from = at + k.size();
  return data.substr(from, data.find('"', from) - from);
}

// "8812" -> (8812, max), "8812.3" -> (8812, 3): the order of the ids.
std::pair<uint64_t, uint64_t> IdOrder(const std::string& id) {
  const size_t dot = id.find('.');
  if (dot == std::string::npos) return {std::stoull(id), UINT64_MAX};
  return {std::stoull(id.substr(0, dot)), std::stoull(id.substr(dot + 1))};
}

// `tills` threads, each posting batches of kBatch sales (1 to 3 distinct
// skus of `skus`, qty 1 each) to the daemon on `port` as fast as it
// answers, until Stop() (or destruction: a failed REQUIRE never leaves
// threads joinable). Keeps every acknowledged event's seq and skus.
class SalesLoad {
 public:
  struct Acked {
    std::string event_id;
    uint64_t seq = 0;
    std::vector<std::string> skus;
  };

  SalesLoad(uint16_t port, int tills, std::vector<std::string> skus) : skus_(std::move(skus)) {
    for (int t = 0; t < tills; ++t) threads_.emplace_back([this, port, t] { Run(port, t); });
  }
  ~SalesLoad() { Stop(); }
  SalesLoad(const SalesLoad&) = delete;
  SalesLoad& operator=(const SalesLoad&) = delete;

  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  std::vector<Acked> acked() const {
    std::lock_guard lock(mu_);
    return acked_;
  }
  std::string last_refusal() const {
    std::lock_guard lock(mu_);
    return last_refusal_;
  }
  int batches() const { return batches_.load(); }
  int refused() const { return refused_.load(); }      // answers other than 200
  int no_answer() const { return no_answer_.load(); }  // requests without an answer
  int bad_answers() const { return bad_answers_.load(); }

 private:
  void Run(uint16_t port, int t) {
    httplib::Client cli("127.0.0.1", port);
    cli.set_keep_alive(true);
    cli.set_connection_timeout(std::chrono::seconds(5));
    cli.set_read_timeout(std::chrono::seconds(10));
    cli.set_write_timeout(std::chrono::seconds(10));
    std::mt19937 rng(static_cast<unsigned>(100 + t));
    std::uniform_int_distribution<int> lines_of(1, 3);
    std::uniform_int_distribution<size_t> sku_of(0, skus_.size() - 1);
    const std::string device = Id("till-0", t + 1);
    for (int n = 0; !stop_; ++n) {
      std::vector<Acked> batch;
      std::vector<std::string> events;
      for (int k = 0; k < kBatch; ++k) {
        Acked a;
        a.event_id = Id(device + "-", n * kBatch + k);
        for (int lines = lines_of(rng); static_cast<int>(a.skus.size()) < lines;) {
          const std::string& s = skus_[sku_of(rng)];
          if (std::find(a.skus.begin(), a.skus.end(), s) == a.skus.end()) a.skus.push_back(s);
        }
        std::string json = R"({"event_id":")" + a.event_id + R"(","device_id":")" + device +
                           R"(","occurred_at":1700000000000000,"sale":{"lines":[)";
        for (size_t i = 0; i < a.skus.size(); ++i) {
          json += (i ? R"(,{"sku":")" : R"({"sku":")") + a.skus[i] +
                  R"(","qty":1,"unit_price":100,"currency":"EUR"})";
        }
        events.push_back(json + "]}}");
        batch.push_back(std::move(a));
      }
      auto res = cli.Post("/v1/events", BatchJson(events), "application/json");
      if (!res) {
        ++no_answer_;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a back-off, not a timing
        continue;
      }
      if (res->status != 200) {
        ++refused_;
        std::lock_guard lock(mu_);
        last_refusal_ = std::to_string(res->status) + " " + res->body;
        continue;
      }
      auto resp = FromJson<v1::IngestResponse>(res->body);
      if (!resp || resp->results_size() != kBatch) {
        ++bad_answers_;
        continue;
      }
      ++batches_;
      std::lock_guard lock(mu_);
      for (int i = 0; i < kBatch; ++i) {
        const auto& r = resp->results(i);
        Acked& a = batch[static_cast<size_t>(i)];
        if (r.event_id() != a.event_id || r.duplicate() || r.seq() == 0) ++bad_answers_;
        a.seq = r.seq();
        acked_.push_back(std::move(a));
      }
    }
  }

  const std::vector<std::string> skus_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Acked> acked_;  // guarded by mu_
  std::string last_refusal_;  // guarded by mu_
  std::atomic<int> batches_{0}, refused_{0}, no_answer_{0}, bad_answers_{0};
  std::vector<std::thread> threads_;
};

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

TEST_CASE(
    "gateway daemon: 200 changes feed (SSE) clients while it ingests at full rate: "
    "each gets every stock change of its skus once, in order, none dropped") {
  TempDir dir;
  const auto data = dir / "data";
  std::string why;
  // 200 clients: more than the default changes.max_clients (64).
  const auto cfg = dir / "feed.toml";
  std::ofstream(cfg) << "[uplink]\nurl = \"tcp://127.0.0.1:" << FreePort()
                     << "\"\n[changes]\nmax_clients = 256\n";
  auto d = StartDaemon(data, dir / "logs", "feed", &why, 0, {"--config", cfg.string()});
  REQUIRE_MESSAGE(d, why);

  // Each client lists kSkusPerClient distinct skus (stock changes only).
  std::vector<std::string> skus;
  for (int i = 0; i < kSkus; ++i) skus.push_back(Sku(i));
  std::mt19937 rng(17);
  std::vector<std::set<std::string>> listed(kClients);
  std::vector<std::unique_ptr<SseClient>> clients;
  std::vector<SseClient*> ptrs;
  for (int i = 0; i < kClients; ++i) {
    std::set<std::string>& mine = listed[static_cast<size_t>(i)];
    while (mine.size() < kSkusPerClient) mine.insert(skus[rng() % skus.size()]);
    std::string target = "/v1/changes?kinds=stock&skus=";
    bool first = true;
    for (const std::string& s : mine) {
      if (!first) target += ',';
      target += s;
      first = false;
    }
    clients.push_back(std::make_unique<SseClient>(d->port, target));
    clients.back()->keep_stream_body = false;
    ptrs.push_back(clients.back().get());
  }
  // All connected (each has its hello) before the first sale.
  PumpUntil(
      ptrs,
      [&] {
        return std::all_of(ptrs.begin(), ptrs.end(),
                           [](SseClient* c) { return !c->events.empty(); });
      },
      "every client's hello");
  std::vector<uint64_t> hello(kClients);
  for (int i = 0; i < kClients; ++i) {
    const SseClient& c = *ptrs[static_cast<size_t>(i)];
    REQUIRE(c.status == 200);
    REQUIRE(c.headers.at("content-type") == "text/event-stream");
    REQUIRE(c.events[0].event == "hello");
    hello[static_cast<size_t>(i)] = std::stoull(c.events[0].id);
  }

  // Stock changes received so far, counted incrementally.
  std::vector<size_t> scanned(kClients, 0), stock(kClients, 0);
  const auto count_stock = [&] {
    for (size_t i = 0; i < ptrs.size(); ++i) {
      const auto& ev = ptrs[i]->events;
      for (; scanned[i] < ev.size(); ++scanned[i]) stock[i] += ev[scanned[i]].event == "stock";
    }
  };

  // Ingest at full rate while one thread reads all 200 streams.
  const auto t0 = Clock::now();
  size_t ended = 0;  // streams that ended before the daemon was stopped
  SalesLoad load(d->port, kTills, skus);
  while (Clock::now() - t0 < kIngestFor) ended += PumpOnce(ptrs, 20);
  load.Stop();
  const double ingest_s = SecondsSince(t0);
  const std::vector<SalesLoad::Acked> acked = load.acked();
  REQUIRE(!acked.empty());

  // The clients drain: each has at least the changes the acknowledged
  // sales give it (the comparison with the journal comes below).
  std::vector<size_t> at_least(kClients, 0);
  for (const SalesLoad::Acked& a : acked) {
    for (size_t i = 0; i < listed.size(); ++i) {
      for (const std::string& s : a.skus) at_least[i] += listed[i].count(s);
    }
  }
  const bool drained = WaitFor(
      [&] {
        ended += PumpOnce(ptrs, 20);
        count_stock();
        for (size_t i = 0; i < ptrs.size(); ++i) {
          if (!ptrs[i]->eof && stock[i] < at_least[i]) return false;
        }
        return true;
      },
      kBound, std::chrono::milliseconds(0));
  const double delivered_s = SecondsSince(t0);
  size_t behind = 0;
  for (size_t i = 0; i < ptrs.size(); ++i) behind += stock[i] < at_least[i];
  CHECK_MESSAGE(drained, behind << " clients still short of their changes after the bound");
  CHECK_MESSAGE(ended == 0, ended << " streams ended while the daemon ran");

  // Stop the daemon: every stream ends with its last chunk (whatever came
  // late is still read, so a change sent twice would show).
  d->proc.Signal(SIGTERM);
  const bool all_ended = WaitFor(
      [&] {
        PumpOnce(ptrs, 20);
        return std::all_of(ptrs.begin(), ptrs.end(), [](SseClient* c) { return c->eof; });
      },
      kBound, std::chrono::milliseconds(0));
  const auto exit = d->proc.WaitExit(kBound);
  REQUIRE_MESSAGE(exit, "still running after SIGTERM; stderr:\n" << d->proc.Stderr());
  CHECK_MESSAGE(exit->ok(), Describe(*exit) << "; stderr:\n" << d->proc.Stderr());
  CHECK_MESSAGE(all_ended, "some streams did not end when the daemon stopped");
  CHECK(std::all_of(ptrs.begin(), ptrs.end(), [](SseClient* c) { return c->chunked_end; }));
  count_stock();

  auto journal = ExportJournal(data, &why);
  REQUIRE_MESSAGE(journal, why);
  std::map<std::string, uint64_t> acked_ids;
  for (const SalesLoad::Acked& a : acked) acked_ids[a.event_id] = a.seq;
  CheckAcknowledged(*journal, acked_ids);
  CHECK(load.bad_answers() == 0);
  CHECK(load.no_answer() == 0);
  CHECK_MESSAGE(load.refused() == 0, load.refused()
                                         << " batches refused, the last: " << load.last_refusal());

  // Every client: exactly the journal's changes of its skus after its
  // hello, in order (ids strictly increasing), each once; no drop.
  size_t wrong = 0, disorder = 0, drops = 0, bad_data = 0, delivered = 0, fewest = SIZE_MAX;
  std::string first_wrong;
  for (size_t i = 0; i < ptrs.size(); ++i) {
    const SseClient& c = *ptrs[i];
    drops += c.Count("drop");
    std::vector<Change> got;
    for (const SseEvent& e : c.events) {
      if (e.event != "stock") continue;
      got.push_back({e.id, Member(e.data, "sku")});
      // The data belongs to the id: its seq, a sale of qty 1.
      if (Member(e.data, "seq") != e.id.substr(0, e.id.find('.')) ||
          Member(e.data, "source") != "sale" || Member(e.data, "delta") != "-1") {
        ++bad_data;
      }
      if (got.size() > 1 && !(IdOrder(got[got.size() - 2].id) < IdOrder(got.back().id))) ++disorder;
    }
    delivered += got.size();
    const std::vector<Change> want = Want(*journal, listed[i], hello[i]);
    fewest = std::min(fewest, want.size());
    if (got == want) continue;
    if (wrong++ > 0) continue;
    size_t k = 0;
    while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
    first_wrong =
        "client " + std::to_string(i) + ": " + std::to_string(got.size()) + " changes, " +
        std::to_string(want.size()) + " journaled; first difference at " + std::to_string(k) +
        ": got " + (k < got.size() ? got[k].id + "/" + got[k].sku : std::string("nothing")) +
        ", want " + (k < want.size() ? want[k].id + "/" + want[k].sku : std::string("nothing"));
  }
  CHECK_MESSAGE(wrong == 0,
                wrong << " clients did not get exactly the journal's changes; " << first_wrong);
  CHECK_MESSAGE(disorder == 0, disorder << " changes with an id not above the one before");
  CHECK_MESSAGE(bad_data == 0, bad_data << " stock changes whose data is not their sale");
  CHECK_MESSAGE(drops == 0, drops << " clients dropped (event: drop)");
  CHECK(fewest > 0);  // every client had changes to get

  MESSAGE(acked.size() << " sales ingested in " << ingest_s << " s ("
                       << static_cast<uint64_t>(static_cast<double>(acked.size()) / ingest_s)
                       << " events/s; " << load.batches() << " batches of " << kBatch << " by "
                       << kTills << " tills, " << journal->size() << " journaled events); "
                       << delivered << " stock changes delivered to " << kClients << " clients by "
                       << delivered_s << " s ("
                       << static_cast<uint64_t>(static_cast<double>(delivered) / delivered_s)
                       << " changes/s)");
}

}  // namespace changes_daemon
