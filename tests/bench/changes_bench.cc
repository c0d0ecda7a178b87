// changes_bench: the changes feed (GET /v1/changes) under load, in one
// process: a real Journal in a fresh directory and the real DeviceApi on a
// free loopback port, driven over HTTP from the same process (gateway and
// load side by side, sharing the cores).
//
// Phases:
//   a  ingest without feed clients: `producers` threads, each its own
//      keep-alive connection, POST batches of `batch` sales (1-3 lines over
//      a 2,000-sku catalogue) as fast as they are answered, `seconds` long
//   b  `clients` SSE clients connect (each subscribed to `skus-per-client`
//      random skus of the catalogue and to SKU-PRICE, all kinds); then
//      `prices` price changes of SKU-PRICE, one every `price-interval-ms`,
//      on an otherwise idle gateway: latency from the price change's
//      journal commit to its receipt, at every client
//   c  ingest as in a, with the clients connected and reading, and the
//      same price changes meanwhile (latency under ingest)
// then every client must have received every change meant for it, once
// and in seq order (counted against the journal).
//
// Latency: a price change's data carries `recorded_at` (the journal's
// clock when the writer wrote the price_in_force event, just before the
// commit's fsync); the reader thread that parses it takes the clock when
// recv() returned the bytes. Both are the system clock of this machine.
//
// A measurement, not a test: exits 0 whatever the figures, non-zero only
// when something breaks (a refused request, a client that misses a change).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <httplib.h>

#include "storegw/devices/device_api.h"
#include "storegw/storage/journal.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using storegw::devices::ApiOptions;
using storegw::devices::DeviceApi;
namespace storage = storegw::storage;
namespace v1 = storegw::v1;

constexpr int kCatalogue = 2000;
constexpr const char* kPriceSku = "SKU-PRICE";

struct Options {
  int clients = 200;
  int producers = 4;
  int batch = 20;
  double seconds = 5;
  int skus_per_client = 10;
  int prices = 100;
  int price_interval_ms = 50;
  std::string data_dir;
  bool quick = false;
};

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "changes_bench: %s\n", why.c_str());
  std::exit(2);
}

std::string Sku(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "SKU-%06d", 100 + i);
  return buf;
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::min(std::max<size_t>(rank, 1), v.size()) - 1];
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double StatusMiB(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::strtod(line.c_str() + key.size(), nullptr) / 1024.0;
  }
  return NAN;
}

// ------------------------------------------------------------------ clients

// One SSE client on a raw socket: HTTP head, chunked framing, SSE lines.
struct Client {
  int fd = -1;
  std::vector<std::string> skus;
  std::string raw, line, type, data;
  bool head_done = false, hello = false, ended = false;
  int status = 0;
  size_t chunk_left = 0;
  uint64_t changes = 0, prices = 0, out_of_order = 0, last_seq = 0;
  std::string last_id;
};

// Latency samples (ms) by phase: 0 none, 1 idle, 2 under ingest.
std::atomic<int> g_phase{0};
std::mutex g_samples_mu;
std::vector<double> g_samples[3];

void Dispatch(Client& c, int64_t recv_us, std::vector<double>* samples) {
  if (c.type == "hello") {
    c.hello = true;
  } else if (c.type == "drop" || c.type == "reset") {
    std::fprintf(stderr, "changes_bench: a client got `%s`: %s\n", c.type.c_str(), c.data.c_str());
  } else if (!c.type.empty() && !c.data.empty()) {
    ++c.changes;
    const uint64_t seq = std::strtoull(c.last_id.c_str(), nullptr, 10);
    if (seq < c.last_seq) ++c.out_of_order;
    c.last_seq = seq;
    if (c.type == "price") {
      ++c.prices;
      const size_t at = c.data.find("\"recorded_at\":\"");
      if (at != std::string::npos && g_phase.load() != 0) {
        const int64_t rec = std::strtoll(c.data.c_str() + at + 15, nullptr, 10);
        samples[g_phase.load()].push_back(static_cast<double>(recv_us - rec) / 1000.0);
      }
    }
  }
  c.type.clear();
  c.data.clear();
}

void ParseSse(Client& c, const char* p, size_t n, int64_t recv_us, std::vector<double>* samples) {
  c.line.append(p, n);
  size_t start = 0, eol;
  while ((eol = c.line.find('\n', start)) != std::string::npos) {
    std::string_view l(c.line.data() + start, eol - start);
    start = eol + 1;
    if (l.empty()) {
      Dispatch(c, recv_us, samples);
      continue;
    }
    if (l[0] == ':') continue;
    const size_t colon = l.find(':');
    std::string_view field = l.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? "" : l.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
    if (field == "event") c.type = value;
    if (field == "data") c.data = value;
    if (field == "id") c.last_id = value;
  }
  c.line.erase(0, start);
}

void Feed(Client& c, const char* p, size_t n, int64_t recv_us, std::vector<double>* samples) {
  c.raw.append(p, n);
  if (!c.head_done) {
    const size_t end = c.raw.find("\r\n\r\n");
    if (end == std::string::npos) return;
    c.status = std::atoi(c.raw.c_str() + 9);
    c.raw.erase(0, end + 4);
    c.head_done = true;
  }
  size_t pos = 0;
  while (pos < c.raw.size()) {
    if (c.chunk_left == 0) {
      const size_t eol = c.raw.find("\r\n", pos);
      if (eol == std::string::npos) break;
      if (eol == pos) {
        pos += 2;
        continue;
      }
      c.chunk_left = std::strtoul(c.raw.c_str() + pos, nullptr, 16);
      pos = eol + 2;
      if (c.chunk_left == 0) {
        c.ended = true;
        break;
      }
    }
    const size_t take = std::min(c.chunk_left, c.raw.size() - pos);
    if (take == 0) break;
    ParseSse(c, c.raw.data() + pos, take, recv_us, samples);
    c.chunk_left -= take;
    pos += take;
  }
  c.raw.erase(0, pos);
}

void Connect(Client& c, uint16_t port) {
  c.fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (c.fd < 0 || ::connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    Die(std::string("connect: ") + std::strerror(errno));
  }
  std::string skus = kPriceSku;
  for (const std::string& s : c.skus) skus += "," + s;
  const std::string req = "GET /v1/changes?skus=" + skus +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
  if (::send(c.fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    Die("send of a feed request failed");
  }
}

// A reader thread serves clients[i] for i % readers == r (epoll: the
// readers' own cost must stay small beside the gateway's).
void Reader(std::vector<Client>& clients, int r, int readers, const std::atomic<bool>& stop) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) Die("epoll_create1 failed");
  for (size_t i = static_cast<size_t>(r); i < clients.size(); i += static_cast<size_t>(readers)) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &clients[i];
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, clients[i].fd, &ev) != 0) Die("epoll_ctl failed");
  }
  std::vector<double> samples[3];
  epoll_event ready[64];
  char buf[65536];
  while (!stop.load()) {
    const int n = ::epoll_wait(ep, ready, 64, 20);
    for (int k = 0; k < n; ++k) {
      Client& c = *static_cast<Client*>(ready[k].data.ptr);
      const ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
      if (got <= 0) {
        c.ended = true;
        ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        continue;
      }
      Feed(c, buf, static_cast<size_t>(got), NowUs(), samples);
    }
  }
  ::close(ep);
  std::lock_guard lk(g_samples_mu);
  for (int p = 0; p < 3; ++p) g_samples[p].insert(g_samples[p].end(), samples[p].begin(), samples[p].end());
}

// ------------------------------------------------------------------- ingest

struct IngestResult {
  double events_per_s = 0, p50_ms = 0, p99_ms = 0, cpu = 0;
  uint64_t events = 0;
};

std::string SaleBatch(std::mt19937& rng, const std::string& prefix, uint64_t* n, int batch,
                      int producer) {
  std::string out = "{\"events\":[";
  for (int k = 0; k < batch; ++k) {
    if (k) out += ',';
    const int lines = 1 + static_cast<int>(rng() % 3);
    std::string ls;
    for (int l = 0; l < lines; ++l) {
      if (l) ls += ',';
      ls += "{\"sku\":\"" + Sku(static_cast<int>(rng() % kCatalogue)) +
            "\",\"qty\":1,\"unit_price\":199,\"currency\":\"EUR\"}";
    }
    out += "{\"event_id\":\"" + prefix + std::to_string((*n)++) + "\",\"device_id\":\"till-" +
           std::to_string(producer) + "\",\"occurred_at\":" + std::to_string(NowUs()) +
           ",\"sale\":{\"basket_id\":\"b\",\"tender\":\"card\",\"lines\":[" + ls + "]}}";
  }
  return out + "]}";
}

IngestResult Ingest(uint16_t port, const Options& o, const std::string& phase,
                    const std::function<void()>& meanwhile = {}) {
  std::atomic<uint64_t> events{0};
  std::mutex mu;
  std::vector<double> lat;
  const double cpu0 = CpuSeconds();
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(o.seconds));
  std::vector<std::thread> threads;
  for (int p = 0; p < o.producers; ++p) {
    threads.emplace_back([&, p] {
      httplib::Client c("127.0.0.1", port);
      c.set_keep_alive(true);
      c.set_tcp_nodelay(true);
      c.set_read_timeout(30, 0);
      std::mt19937 rng(static_cast<uint32_t>(p * 7919 + phase.size()));
      uint64_t n = 0;
      std::vector<double> mine;
      const std::string prefix = phase + "-" + std::to_string(p) + "-";
      while (Clock::now() < end) {
        const std::string body = SaleBatch(rng, prefix, &n, o.batch, p);
        const auto s = Clock::now();
        auto r = c.Post("/v1/events", body, "application/json");
        if (!r || r->status != 200) {
          Die("POST /v1/events failed: " + (r ? std::to_string(r->status) + " " + r->body
                                              : httplib::to_string(r.error())));
        }
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
        events.fetch_add(static_cast<uint64_t>(o.batch));
      }
      std::lock_guard lk(mu);
      lat.insert(lat.end(), mine.begin(), mine.end());
    });
  }
  if (meanwhile) meanwhile();
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  IngestResult r;
  r.events = events.load();
  r.events_per_s = static_cast<double>(r.events) / secs;
  r.p50_ms = Percentile(lat, 50);
  r.p99_ms = Percentile(lat, 99);
  r.cpu = (CpuSeconds() - cpu0) / secs;
  return r;
}

// `count` price changes of SKU-PRICE, one every price_interval_ms.
void Prices(storage::Journal& j, const Options& o, int count, int64_t* next_price) {
  auto next = Clock::now();
  for (int i = 0; i < count; ++i) {
    v1::PriceUpdate u;
    u.set_store_id("store-bench");
    u.set_sku(kPriceSku);
    u.set_price((*next_price)++);
    u.set_currency("EUR");
    u.set_effective_from(NowUs() - 1000);
    auto r = j.ApplyPriceUpdate(u);
    if (!r.ok()) Die("ApplyPriceUpdate: " + r.status().ToString());
    next += std::chrono::milliseconds(o.price_interval_ms);
    std::this_thread::sleep_until(next);
  }
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::seconds limit) {
  const auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// What each client must have received after `after`, from the journal.
std::vector<uint64_t> ExpectedCounts(storage::Journal& j, const std::vector<Client>& clients,
                                     uint64_t after) {
  std::unordered_map<std::string, std::vector<size_t>> by_sku;
  for (size_t i = 0; i < clients.size(); ++i) {
    for (const std::string& s : clients[i].skus) by_sku[s].push_back(i);
  }
  std::vector<uint64_t> want(clients.size(), 0);
  uint64_t from = after + 1;
  for (;;) {
    auto ev = j.ReadEvents(from, 20000, 64u << 20);
    if (!ev.ok()) Die("ReadEvents: " + ev.status().ToString());
    if (ev->empty()) break;
    for (const v1::JournaledEvent& je : *ev) {
      const v1::Event& e = je.event();
      if (e.has_price_in_force() || e.has_alert() || e.has_alert_cleared()) {
        if (!e.has_price_in_force() || e.price_in_force().sku() == kPriceSku) {
          for (uint64_t& w : want) ++w;
        }
        continue;
      }
      std::vector<std::string> distinct;
      for (const auto& [sku, d] : storage::StockDeltas(e)) {
        if (std::find(distinct.begin(), distinct.end(), sku) == distinct.end()) distinct.push_back(sku);
      }
      if (e.has_count()) distinct.push_back(e.count().sku());
      for (const std::string& s : distinct) {
        if (auto it = by_sku.find(s); it != by_sku.end()) {
          for (size_t i : it->second) ++want[i];
        }
      }
    }
    from = ev->back().seq() + 1;
  }
  return want;
}

void Usage() {
  std::puts(
      "usage: changes_bench [--clients N] [--producers N] [--batch N] [--seconds S]\n"
      "                     [--skus-per-client N] [--prices N] [--price-interval-ms N]\n"
      "                     [--data-dir DIR] [--quick]");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        Usage();
        Die(a + " needs a value");
      }
      return argv[++i];
    };
    if (a == "--clients") o.clients = std::atoi(next().c_str());
    else if (a == "--producers") o.producers = std::atoi(next().c_str());
    else if (a == "--batch") o.batch = std::atoi(next().c_str());
    else if (a == "--seconds") o.seconds = std::atof(next().c_str());
    else if (a == "--skus-per-client") o.skus_per_client = std::atoi(next().c_str());
    else if (a == "--prices") o.prices = std::atoi(next().c_str());
    else if (a == "--price-interval-ms") o.price_interval_ms = std::atoi(next().c_str());
    else if (a == "--data-dir") o.data_dir = next();
    else if (a == "--quick") o.quick = true;
    else {
      Usage();
      return a == "--help" ? 0 : 2;
    }
  }
  if (o.quick) {
    o.clients = std::min(o.clients, 20);
    o.seconds = 0.5;
    o.prices = 5;
  }
  if (o.clients < 1 || o.clients > 4000 || o.producers < 1 || o.batch < 1 || o.seconds <= 0 ||
      o.skus_per_client < 0 || o.skus_per_client > 999 || o.prices < 1 || o.price_interval_ms < 1) {
    Usage();
    Die("bad arguments");
  }
  if (o.data_dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    o.data_dir = t && *t ? t : "/var/tmp";
  }
  std::string tmpl = (fs::path(o.data_dir) / "changes_bench.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) Die("cannot create a directory in " + o.data_dir);
  const fs::path dir = tmpl;
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{dir};
  struct statfs sf{};
  const bool tmpfs = ::statfs(dir.c_str(), &sf) == 0 && sf.f_type == 0x01021994;

  storage::JournalOptions jo;
  jo.data_dir = dir / "data";
  jo.store_id = "store-bench";
  jo.gateway_id = "gw-bench";
  jo.count_mismatch_threshold = -1;
  auto journal = storage::Journal::Open(jo);
  if (!journal.ok()) Die("Journal::Open: " + journal.status().ToString());
  storage::Journal& j = **journal;
  ApiOptions ao;
  ao.listen = "127.0.0.1:0";
  ao.threads = 16;
  ao.changes.max_clients = std::max(256, o.clients);
  auto api_r = DeviceApi::Start(ao, j);
  if (!api_r.ok()) Die("DeviceApi::Start: " + api_r.status().ToString());
  std::unique_ptr<DeviceApi> api = std::move(api_r).value();
  const uint16_t port = api->port();

  std::printf("changes_bench: %d SSE clients (%d skus each + %s), %d producers x batches of %d "
              "sales, %.1f s per ingest phase, %d price changes per latency phase%s\n",
              o.clients, o.skus_per_client, kPriceSku, o.producers, o.batch, o.seconds, o.prices,
              o.quick ? " (quick: the figures mean nothing)" : "");
  std::printf("journal in %s%s; %u CPUs\n", dir.c_str(),
              tmpfs ? " (tmpfs: fsync is free, the figures are optimistic)" : "",
              std::thread::hardware_concurrency());

  // Stock for every sku (no oversell alerts), and SKU-PRICE's first price.
  {
    httplib::Client c("127.0.0.1", port);
    for (int b = 0; b < kCatalogue / 100; ++b) {
      std::string lines;
      for (int k = 0; k < 100; ++k) {
        if (k) lines += ',';
        lines += "{\"sku\":\"" + Sku(b * 100 + k) + "\",\"qty\":1000000}";
      }
      const std::string body = "{\"event_id\":\"stock-" + std::to_string(b) +
                               "\",\"device_id\":\"hh-1\",\"occurred_at\":" +
                               std::to_string(NowUs()) +
                               ",\"receipt\":{\"delivery_id\":\"d\",\"lines\":[" + lines + "]}}";
      auto r = c.Post("/v1/events", body, "application/json");
      if (!r || r->status != 200) Die("stock-up failed");
    }
  }
  int64_t next_price = 100;

  // a: no feed clients.
  const IngestResult a = Ingest(port, o, "a");
  const double rss_before = StatusMiB("VmRSS");

  // b: connect the clients, then the idle latency.
  std::vector<Client> clients(static_cast<size_t>(o.clients));
  std::mt19937 rng(42);
  for (Client& c : clients) {
    for (int k = 0; k < o.skus_per_client; ++k) c.skus.push_back(Sku(static_cast<int>(rng() % kCatalogue)));
    std::sort(c.skus.begin(), c.skus.end());
    c.skus.erase(std::unique(c.skus.begin(), c.skus.end()), c.skus.end());
  }
  const int readers = 2;
  std::atomic<bool> stop_readers{false};
  const auto connect_start = Clock::now();
  for (Client& c : clients) Connect(c, port);
  std::vector<std::thread> reader_threads;
  for (int r = 0; r < readers; ++r) {
    reader_threads.emplace_back([&, r] { Reader(clients, r, readers, stop_readers); });
  }
  // (Client fields are read here while the readers write them: the waits
  // below only poll counters; exact figures are read after the readers stop.)
  if (!WaitFor([&] { return api->feed_stats().clients == static_cast<uint64_t>(o.clients); },
               std::chrono::seconds(60))) {
    Die("not every client connected");
  }
  const double connect_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - connect_start).count();
  const uint64_t start_seq = api->feed_stats().head_seq;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // every hello is out
  const uint64_t sent_before = api->feed_stats().changes_sent;
  g_phase = 1;
  Prices(j, o, o.prices, &next_price);
  WaitFor([&] { return api->feed_stats().changes_sent >= sent_before + static_cast<uint64_t>(o.prices) * o.clients; },
          std::chrono::seconds(30));
  const double rss_clients = StatusMiB("VmRSS");

  // c: ingest with the clients, price changes meanwhile.
  g_phase = 2;
  const uint64_t c_sent0 = api->feed_stats().changes_sent;
  const auto c_t0 = Clock::now();
  const IngestResult c = Ingest(port, o, "c", [&] {
    const int n = std::max(1, static_cast<int>(o.seconds * 1000 / o.price_interval_ms) - 2);
    Prices(j, o, n, &next_price);
  });
  const double c_secs = std::chrono::duration<double>(Clock::now() - c_t0).count();
  const uint64_t c_sent = api->feed_stats().changes_sent - c_sent0;
  g_phase = 0;

  // Every change at every client.
  const uint64_t last_seq = j.Stats().last_seq;
  const auto drained_t0 = Clock::now();
  const bool drained = WaitFor([&] { return api->feed_stats().head_seq >= last_seq; },
                               std::chrono::seconds(60));
  const double drain_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - drained_t0).count();
  // Then until the clients' threads have written everything.
  WaitFor(
      [&] {
        const auto s1 = api->feed_stats().changes_sent;
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        return api->feed_stats().changes_sent == s1;
      },
      std::chrono::seconds(60));
  stop_readers = true;
  for (auto& t : reader_threads) t.join();
  const auto want = ExpectedCounts(j, clients, start_seq);
  uint64_t missing = 0, extra = 0, disorder = 0, ended = 0, total = 0;
  for (size_t i = 0; i < clients.size(); ++i) {
    const Client& cl = clients[i];
    total += cl.changes;
    if (cl.changes < want[i]) missing += want[i] - cl.changes;
    if (cl.changes > want[i]) extra += cl.changes - want[i];
    disorder += cl.out_of_order;
    ended += cl.ended;
  }
  const storegw::devices::FeedStats fs_end = api->feed_stats();
  const double hwm = StatusMiB("VmHWM");

  std::printf("\n%-52s %18s %18s\n", "ingest through POST /v1/events", "no feed clients",
              (std::to_string(o.clients) + " SSE clients").c_str());
  std::printf("%-52s %18.0f %18.0f\n", "  events/s", a.events_per_s, c.events_per_s);
  char la[64], lc[64];
  std::snprintf(la, sizeof la, "%.2f / %.2f", a.p50_ms, a.p99_ms);
  std::snprintf(lc, sizeof lc, "%.2f / %.2f", c.p50_ms, c.p99_ms);
  std::printf("%-52s %18s %18s\n", "  POST latency p50 / p99 (ms)", la, lc);
  std::printf("%-52s %18.2f %18.2f\n", "  CPU of the process (cores)", a.cpu, c.cpu);
  std::printf("%-52s %18s %18.0f\n", "  changes written to the clients /s", "-",
              static_cast<double>(c_sent) / c_secs);
  std::printf("\n%-52s %18s %18s\n", "price change: journal commit -> receipt (ms)", "idle",
              "under ingest");
  std::printf("%-52s %18zu %18zu\n", "  samples (changes x clients)", g_samples[1].size(),
              g_samples[2].size());
  for (const auto& [name, p] : std::vector<std::pair<const char*, double>>{
           {"  p50", 50}, {"  p99", 99}, {"  max", 100}}) {
    std::printf("%-52s %18.2f %18.2f\n", name, Percentile(g_samples[1], p),
                Percentile(g_samples[2], p));
  }
  std::printf("\n%d clients connected in %.0f ms; the feed had read the journal's last event %.0f "
              "ms after the ingest ended\n",
              o.clients, connect_ms, drain_ms);
  std::printf("every change at every client once, in order: %s (%llu changes; %llu missing, %llu "
              "extra, %llu out of order, %llu streams ended, drops %llu/%llu)\n",
              drained && missing == 0 && extra == 0 && disorder == 0 && ended == 0 ? "yes" : "NO",
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(missing),
              static_cast<unsigned long long>(extra), static_cast<unsigned long long>(disorder),
              static_cast<unsigned long long>(ended),
              static_cast<unsigned long long>(fs_end.drops_by_reason[0].second),
              static_cast<unsigned long long>(fs_end.drops_by_reason[1].second));
  std::printf("RSS: %.1f MiB before the clients, %.1f MiB with them; peak RSS (VmHWM) %.1f MiB; "
              "ring %llu entries / %.1f MiB\n",
              rss_before, rss_clients, hwm, static_cast<unsigned long long>(fs_end.ring_entries),
              static_cast<double>(fs_end.ring_bytes) / (1 << 20));
  for (Client& cl : clients) ::close(cl.fd);
  api->Stop();
  api.reset();
  const bool ok = drained && missing == 0 && extra == 0 && disorder == 0 && ended == 0;
  return ok ? 0 : 1;
}
