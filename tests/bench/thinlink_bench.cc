// thinlink_bench: a store's backlog over the link remote stores really
// have — 1 Mbit/s with a 300 ms round trip by default — side by side for
// every batch encoding, on the same till-shaped events, in one run. A
// program that prints figures, not a timed test.
//
//   journal (N till-shaped events) -> uplink (a child process, the
//   "daemon") -> shaping proxy (rate, one-way delay, bottleneck queue;
//   tests/sync/shaping_proxy.h) -> mosquitto (a real broker on loopback)
//
// Traffic: 8 tills, event ids "till-NN-<counter>"; ~91 % sales of 1..30
// lines (most 1..5) with Zipf popularity over a 20,000-sku catalogue and
// EUR prices, 3 % returns, 3 % deliveries (receipts), 2 % cycle counts,
// 1 % adjustments; device clock timestamps a few hundred ms apart.
//
// Part 1 (offline, no network): every batch the uplink would send (its own
// Batcher, uplink.batch_events / max_message_bytes) compressed with each
// codec: payload bytes per event, compression CPU per event, and zstd with
// a dictionary trained on the first 10 % of the batches (ZDICT) to answer
// whether a shipped dictionary would be worth it.
// Part 2 (the link): the backlog drained through the shaped link once per
// codec: time to drain, TCP payload bytes per event counted at the proxy
// (MQTT framing, properties and PUBACKs included), link utilisation (bytes
// carried / (rate x time)), goodput, and the time 13,000,000 events (three
// days of a busy store) would take at the measured rate.
//
// Usage: thinlink_bench [--events N] [--rate-kbit K] [--rtt-ms M]
//                       [--codecs none,deflate,zstd,zstd:9,col-zstd] [--batch-events N]
//                       [--max-inflight N] [--max-message-bytes N] [--buffer-bytes N]
//                       [--skip-link]
// Internal role (the bench runs itself): --role drain ...
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zdict.h>
#include <zstd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "batcher.h"   // sync/src: the uplink's own batches
#include "columnar.h"  // sync/src: the columnar batch encoding
#include "compress.h"  // sync/src: the codecs
#include "shaping_proxy.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/uplink.h"
#include "sync_test_util.h"

namespace {

using namespace std::chrono_literals;
using storegw::sync_test::LinkShape;
using storegw::sync_test::Mosquitto;
using storegw::sync_test::ShapingProxy;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
namespace v1 = storegw::v1;

struct Args {
  std::string role;
  std::string data, url, codec, hq_url;
  double live_rate = 45;  // events/s written while the backlog drains
  uint64_t events = 200000;
  double rate_kbit = 1000;
  double rtt_ms = 300;
  std::string codecs =
      "deflate+fixed,zstd+fixed,zstd,col-zstd,col-zstd:19,col-zstd:19+nolive";
  int batch_events = 100000;
  int max_inflight = 8;
  uint64_t max_message_bytes = 16u << 20;
  size_t buffer_bytes = 64 * 1024;
  bool skip_link = false;
};

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "thinlink_bench: %s\n"
               "usage: thinlink_bench [--events N] [--rate-kbit K] [--rtt-ms M] [--codecs LIST]\n"
               "                      [--batch-events N] [--max-inflight N]\n"
               "                      [--max-message-bytes N] [--buffer-bytes N] [--skip-link]\n"
               "                      [--live-rate EVENTS_PER_S]\n"
               "codecs: none, deflate, zstd, zstd:LEVEL; col- in front: columnar; +fixed:\n"
               "uplink.batch_sizing = fixed with the default batch_events, max_message_bytes\n"
               "and max_inflight (else the options above are the limits); +nolive:\n"
               "uplink.live_lane = off\n",
               why.c_str());
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Usage(k + " needs a value");
      return argv[++i];
    };
    try {
      if (k == "--role") a.role = next();
      else if (k == "--data") a.data = next();
      else if (k == "--url") a.url = next();
      else if (k == "--codec") a.codec = next();
      else if (k == "--events") a.events = std::stoull(next());
      else if (k == "--rate-kbit") a.rate_kbit = std::stod(next());
      else if (k == "--rtt-ms") a.rtt_ms = std::stod(next());
      else if (k == "--codecs") a.codecs = next();
      else if (k == "--batch-events") a.batch_events = std::stoi(next());
      else if (k == "--max-inflight") a.max_inflight = std::stoi(next());
      else if (k == "--max-message-bytes") a.max_message_bytes = std::stoull(next());
      else if (k == "--buffer-bytes") a.buffer_bytes = std::stoull(next());
      else if (k == "--skip-link") a.skip_link = true;
      else if (k == "--hq-url") a.hq_url = next();
      else if (k == "--live-rate") a.live_rate = std::stod(next());
      else Usage("unknown argument " + k);
    } catch (const std::exception&) {
      Usage("bad value for " + k);
    }
  }
  if (a.events < 1000 || a.events > 20000000) Usage("--events must be 1000..20000000");
  if (a.rate_kbit < 8 || a.rtt_ms < 0) Usage("--rate-kbit >= 8, --rtt-ms >= 0");
  return a;
}

double Secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// "zstd:9" -> (zstd, 9); "deflate" -> (deflate, 0: its default); a "col-"
// prefix: the columnar batch encoding ("col-zstd:9").
bool ParseCodec(const std::string& spec, storegw::sync::Compression* c, int* level,
                bool* columnar = nullptr, bool* fixed = nullptr, bool* nolive = nullptr) {
  std::string s = spec.substr(0, spec.find('+'));
  const std::string flags = spec.substr(s.size());
  if (fixed) *fixed = flags.find("+fixed") != std::string::npos;
  if (nolive) *nolive = flags.find("+nolive") != std::string::npos;
  const bool col = s.rfind("col-", 0) == 0;
  if (col) s = s.substr(4);
  if (columnar) *columnar = col;
  const auto colon = s.find(':');
  auto parsed = storegw::sync::ParseCompression(s.substr(0, colon));
  if (!parsed) return false;
  *c = *parsed;
  try {
    *level = colon == std::string::npos ? 0 : std::stoi(s.substr(colon + 1));
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, ',');) {
    if (!x.empty()) out.push_back(x);
  }
  return out;
}

// ------------------------------------------------------------ till traffic

class Tills {
 public:
  explicit Tills(uint64_t seed, std::string prefix = "till") : rng_(seed), prefix_(std::move(prefix)) {
    // Zipf(1.0) popularity over 20,000 skus: cumulative weights.
    double sum = 0;
    cdf_.reserve(kSkus);
    for (int i = 1; i <= kSkus; ++i) {
      sum += 1.0 / i;
      cdf_.push_back(sum);
    }
    for (auto& c : cdf_) c /= sum;
    for (int i = 0; i < kSkus; ++i) {
      price_.push_back(49 + static_cast<int64_t>(std::uniform_int_distribution<int>(0, 2000)(rng_)) *
                                5);
    }
  }

  int64_t now_us() const { return now_us_; }
  void set_now_us(int64_t t) { now_us_ = t; }

  v1::Event Next() {
    const int till = std::uniform_int_distribution<int>(1, 8)(rng_);
    char id[48];
    std::snprintf(id, sizeof id, "%s-%02d-%" PRIu64, prefix_.c_str(), till, ++counter_[till - 1]);
    // A busy store: about 45 events/s over its 8 tills.
    now_us_ += std::uniform_int_distribution<int64_t>(4000, 40000)(rng_);
    v1::Event e;
    e.set_event_id(id);
    char dev[24];
    std::snprintf(dev, sizeof dev, "%s-%02d", prefix_.c_str(), till);
    e.set_device_id(dev);
    e.set_occurred_at(now_us_);
    const double u = std::uniform_real_distribution<double>(0, 1)(rng_);
    const std::string basket = std::string(dev) + "-" + std::to_string(counter_[till - 1]);
    if (u < 0.03) {
      auto* r = e.mutable_sale_return();
      AddLines(r->mutable_lines(), std::uniform_int_distribution<int>(1, 2)(rng_));
      r->set_basket_id(basket);
      r->set_tender("card");
    } else if (u < 0.06) {
      auto* r = e.mutable_receipt();
      const int n = std::uniform_int_distribution<int>(5, 40)(rng_);
      for (int i = 0; i < n; ++i) {
        auto* l = r->add_lines();
        l->set_sku(Sku(Pick()));
        l->set_qty(12 * std::uniform_int_distribution<int>(1, 8)(rng_));
      }
      r->set_delivery_id("DN-" + basket);
    } else if (u < 0.08) {
      auto* c = e.mutable_count();
      c->set_sku(Sku(Pick()));
      c->set_qty(std::uniform_int_distribution<int>(0, 60)(rng_));
    } else if (u < 0.09) {
      auto* l = e.mutable_adjustment()->add_lines();
      l->set_sku(Sku(Pick()));
      l->set_reason("shrink");
      l->set_qty(-std::uniform_int_distribution<int>(1, 3)(rng_));
    } else {
      auto* s = e.mutable_sale();
      // 1..30 lines, most 1..5 (geometric).
      int n = 1;
      while (n < 30 && std::uniform_real_distribution<double>(0, 1)(rng_) < 0.62) ++n;
      AddLines(s->mutable_lines(), n);
      s->set_basket_id(basket);
      const double t = std::uniform_real_distribution<double>(0, 1)(rng_);
      s->set_tender(t < 0.65 ? "card" : t < 0.95 ? "cash" : "voucher");
    }
    return e;
  }

 private:
  static constexpr int kSkus = 20000;
  int Pick() {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng_);
    return static_cast<int>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }
  static std::string Sku(int i) {
    char b[16];
    std::snprintf(b, sizeof b, "SKU-%06d", i);
    return b;
  }
  void AddLines(google::protobuf::RepeatedPtrField<v1::SaleLine>* lines, int n) {
    for (int i = 0; i < n; ++i) {
      const int k = Pick();
      auto* l = lines->Add();
      l->set_sku(Sku(k));
      l->set_qty(std::uniform_real_distribution<double>(0, 1)(rng_) < 0.85
                     ? 1
                     : std::uniform_int_distribution<int>(2, 6)(rng_));
      l->set_unit_price(price_[static_cast<size_t>(k)]);
      l->set_currency("EUR");
    }
  }

  std::mt19937_64 rng_;
  std::string prefix_;
  std::vector<double> cdf_;
  std::vector<int64_t> price_;
  uint64_t counter_[8] = {};
  int64_t now_us_ = 1795790000000000;  // 2026-11-27
};

// A fresh journal of n till-shaped device events, plus the alerts they
// raise (a sku counted, then sold below zero, oversells: the gateway's
// alerts travel upstream like every event, and are counted as events).
bool Fill(const fs::path& dir, uint64_t n) {
  auto o = storegw::sync_test::TestJournalOptions(dir);
  o.count_mismatch_threshold = -1;  // no COUNT_MISMATCH alerts in the stream
  // The journal's clock follows the tills': each group of events is
  // committed 10-60 ms after the last of them happened, as a gateway that
  // commits what arrived in the last 100 ms would (recorded_at is what a
  // real journal holds, not the time this program runs).
  std::atomic<int64_t> commit_us{1795790000000000};
  o.now_us = [&commit_us] { return commit_us.load(); };
  auto j = storegw::storage::Journal::Open(o);
  if (!j.ok()) {
    std::fprintf(stderr, "fill: %s\n", j.status().ToString().c_str());
    return false;
  }
  Tills tills(42);
  std::mt19937 lag(7);
  std::vector<v1::Event> batch;
  for (uint64_t i = 0; i < n;) {
    batch.clear();
    const int64_t group_end = tills.now_us() + 100000;
    for (; i < n && (batch.empty() || tills.now_us() < group_end); ++i) {
      batch.push_back(tills.Next());
    }
    commit_us = tills.now_us() + std::uniform_int_distribution<int64_t>(10000, 60000)(lag);
    auto r = (*j)->Append(batch);
    if (!r.ok()) {
      std::fprintf(stderr, "fill: %s\n", r.status().ToString().c_str());
      return false;
    }
  }
  const auto st = (*j)->Stats();
  std::printf("journal: %" PRIu64 " device events + %" PRIu64
              " gateway alerts, %.1f bytes/event stored (serialized Event)\n",
              n, st.last_seq - n,
              static_cast<double>(st.backlog_bytes) / static_cast<double>(st.last_seq));
  return st.last_seq >= n;
}

// ------------------------------------------------------------ part 1: offline

struct Offline {
  std::string name;
  double bytes_per_event = 0;
  double cpu_us_per_event = 0;
};

// A figure this program cannot produce ends it: a wrong figure is worse
// than none.
[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "thinlink_bench: %s\n", what.c_str());
  std::exit(1);
}

size_t CompressedSize(storegw::sync::Compression c, int level, const std::string& payload) {
  auto z = storegw::sync::Compress(c, payload, storegw::sync::DefaultLevel(c, level));
  if (!z.ok()) Fail("compress: " + z.status().ToString());
  return z->size();
}

std::vector<Offline> MeasureOffline(const Args& a, const fs::path& dir,
                                    const std::vector<std::string>& codecs) {
  auto o = storegw::sync_test::TestJournalOptions(dir);
  auto j = storegw::storage::Journal::Open(o);
  if (!j.ok()) Fail("open the journal: " + j.status().ToString());
  // The batches as --batch-events / --max-message-bytes cut them, and as
  // the default settings do (for the +fixed variants).
  const auto cut = [&](size_t max_events, size_t max_bytes, uint64_t* events) {
    storegw::sync::Batcher batcher(j->get(), "store-0042", "gw-01", (*j)->epoch(), max_events,
                                   max_bytes);
    std::vector<std::string> out;
    for (uint64_t seq = 1;;) {
      auto b = batcher.Build(seq);
      if (!b.ok()) Fail("build a batch: " + b.status().ToString());
      if (!b->has_value()) break;
      *events += (*b)->events;
      seq = (*b)->last_seq + 1;
      out.push_back(std::move((*b)->payload));
    }
    return out;
  };
  uint64_t events = 0, events_fixed = 0;
  const storegw::sync::UplinkOptions defaults;
  std::vector<std::string> batches =
      cut(static_cast<size_t>(a.batch_events), a.max_message_bytes, &events);
  const std::vector<std::string> fixed_batches =
      cut(static_cast<size_t>(defaults.batch_events), defaults.max_message_bytes, &events_fixed);
  std::vector<Offline> out;
  auto measure = [&](const std::string& name, const std::function<size_t(const std::string&)>& f,
                     size_t from, bool fixed) {
    uint64_t bytes = 0, n = 0;
    const double c0 = CpuSeconds();
    const auto& set = fixed ? fixed_batches : batches;
    for (size_t i = from; i < set.size(); ++i) {
      bytes += f(set[i]);
      n += 1;
    }
    const double cpu = CpuSeconds() - c0;
    // Events in the measured batches (the dictionary runs skip the sample).
    const double ev = static_cast<double>(fixed ? events_fixed : events) * static_cast<double>(n) /
                      static_cast<double>(set.size());
    out.push_back({name, static_cast<double>(bytes) / ev, cpu * 1e6 / ev});
  };
  for (const std::string& spec : codecs) {
    storegw::sync::Compression c;
    int level = 0;
    bool col = false;
    if (!ParseCodec(spec, &c, &level, &col)) continue;
    measure(spec, [&](const std::string& p) {
      const std::string wire = storegw::sync::WireBatch(p, col);
      if (col && !storegw::sync::IsColumnar(wire)) Fail("a batch the columnar encoding refused");
      return CompressedSize(c, level, wire);
    }, 0, spec.find("+fixed") != std::string::npos);
  }
  // Where a columnar batch's bytes go: each column compressed on its own
  // (with the first col- codec's level), summed over the batches.
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> columns;
  for (const std::string& spec : codecs) {
    storegw::sync::Compression c;
    int level = 0;
    bool col = false;
    if (!ParseCodec(spec, &c, &level, &col) || !col) continue;
    for (const std::string& p : batches) {
      const std::string wire = storegw::sync::WireBatch(p, true);
      const auto cols = storegw::sync::ColumnarColumns(wire);
      if (columns.empty()) {
        for (const auto& [name, bytes] : cols) columns.push_back({name, {0, 0}});
      }
      for (size_t k = 0; k < cols.size() && k < columns.size(); ++k) {
        const std::string one(cols[k].second);
        columns[k].second.first += one.size();
        columns[k].second.second += CompressedSize(c, level, one);
      }
    }
    std::printf("\nColumns of %s (each compressed on its own), bytes/event: raw -> compressed\n",
                spec.c_str());
    for (const auto& [name, sz] : columns) {
      std::printf("  %-22s %8.2f -> %6.2f\n", name.c_str(),
                  static_cast<double>(sz.first) / static_cast<double>(events),
                  static_cast<double>(sz.second) / static_cast<double>(events));
    }
    break;
  }
  // zstd with a dictionary trained on the first 10 % of the batches,
  // measured on the other 90 % (and the same 90 % without, to compare).
  const size_t sample = std::max<size_t>(1, fixed_batches.size() / 10);
  std::string samples;
  std::vector<size_t> sizes;
  for (size_t i = 0; i < sample; ++i) {
    samples += fixed_batches[i];
    sizes.push_back(fixed_batches[i].size());
  }
  std::string dict(112 * 1024, '\0');
  const size_t dn = ZDICT_trainFromBuffer(dict.data(), dict.size(), samples.data(), sizes.data(),
                                          static_cast<unsigned>(sizes.size()));
  if (!ZDICT_isError(dn) && sample < fixed_batches.size()) {
    dict.resize(dn);
    for (int level : {3, 9}) {
      ZSTD_CDict* cd = ZSTD_createCDict(dict.data(), dict.size(), level);
      ZSTD_CCtx* cc = ZSTD_createCCtx();
      std::string buf;
      measure("zstd:" + std::to_string(level) + " + " + std::to_string(dn / 1024) + " KiB dict (+fixed batches)",
              [&](const std::string& p) {
                buf.resize(ZSTD_compressBound(p.size()));
                const size_t n =
                    ZSTD_compress_usingCDict(cc, buf.data(), buf.size(), p.data(), p.size(), cd);
                if (ZSTD_isError(n)) Fail(std::string("zstd with a dictionary: ") + ZSTD_getErrorName(n));
                return n;
              },
              sample, true);
      measure("zstd:" + std::to_string(level) + " same fixed_batches, no dict",
              [&](const std::string& p) {
                return CompressedSize(storegw::sync::Compression::kZstd, level, p);
              },
              sample, true);
      ZSTD_freeCCtx(cc);
      ZSTD_freeCDict(cd);
    }
  } else {
    std::printf("  (dictionary training failed: %s)\n", ZDICT_getErrorName(dn));
  }
  std::printf("\nPart 1: payload bytes per event, the uplink's batches (%zu batches of up to %d "
              "events, %" PRIu64 " events; +fixed: %zu batches of up to %d events / %" PRIu64
              " bytes)\n",
              batches.size(), a.batch_events, events, fixed_batches.size(), defaults.batch_events,
              defaults.max_message_bytes);
  std::printf("  %-34s | %12s | %16s\n", "encoding", "bytes/event", "CPU us/event");
  for (const auto& r : out) {
    std::printf("  %-34s | %12.2f | %16.3f\n", r.name.c_str(), r.bytes_per_event,
                r.cpu_us_per_event);
  }
  return out;
}

// ------------------------------------------------------------ part 2: the link

int RoleDrain(const Args& a) {
  spdlog::set_level(spdlog::level::warn);
  auto j = storegw::storage::Journal::Open(storegw::sync_test::TestJournalOptions(a.data));
  if (!j.ok()) {
    std::fprintf(stderr, "drain: %s\n", j.status().ToString().c_str());
    return 1;
  }
  const uint64_t last = (*j)->Stats().last_seq;  // the backlog
  storegw::sync::Compression c;
  int level = 0;
  bool col = false, fixed = false, nolive = false;
  if (!ParseCodec(a.codec, &c, &level, &col, &fixed, &nolive)) return 2;
  // When each live event was committed (steady clock, which the parent
  // shares: it notes when each arrives at HQ's broker).
  std::vector<std::pair<uint64_t, Clock::time_point>> committed;
  storegw::sync::UplinkOptions o;
  o.url = a.url;
  o.batch_events = a.batch_events;
  o.max_inflight = a.max_inflight;
  o.max_message_bytes = a.max_message_bytes;
  o.compression = std::string(storegw::sync::CompressionName(c));
  o.compression_level = level;
  o.batch_encoding = col ? "columnar" : "protobuf";
  o.batch_sizing = fixed ? "fixed" : "adaptive";
  if (fixed) {  // what a gateway does with the default settings
    const storegw::sync::UplinkOptions defaults;
    o.batch_events = defaults.batch_events;
    o.max_message_bytes = defaults.max_message_bytes;
    o.max_inflight = defaults.max_inflight;
  }
  o.live_lane = nolive ? "off" : "auto";
  o.backoff_initial = 100ms;
  o.backoff_max = 1s;
  o.client_id = "storegw-thinlink";
  auto u = storegw::sync::Uplink::Create(o, j->get());
  if (!u.ok()) {
    std::fprintf(stderr, "drain: %s\n", u.status().ToString().c_str());
    return 1;
  }
  const auto t0 = Clock::now();
  if (!(*u)->Start().ok()) return 1;
  // The store keeps selling while its backlog drains: live events at
  // --live-rate, each committed on its own (as the device API does).
  std::atomic<bool> backlog_done{false};
  std::thread live([&] {
    if (a.live_rate <= 0) return;
    // From the moment the link is up (what was committed before that is
    // part of the backlog the connection found).
    while (!backlog_done && (*u)->status().link != "up") std::this_thread::sleep_for(5ms);
    Tills tills(99, "live");
    const auto period = std::chrono::duration<double>(1.0 / a.live_rate);
    auto next = Clock::now();
    while (!backlog_done) {
      next += std::chrono::duration_cast<Clock::duration>(period);
      std::this_thread::sleep_until(next);
      tills.set_now_us(std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count());
      std::vector<v1::Event> one{tills.Next()};
      auto r = (*j)->Append(one);
      if (!r.ok()) break;
      committed.emplace_back((*j)->Stats().last_seq, Clock::now());
    }
  });
  Clock::time_point up{}, done{};
  // When each quarter of the backlog was acknowledged: is the rate flat, or
  // is the figure made by the start (batch sizing learning the link)?
  std::vector<Clock::time_point> quarters;
  for (;;) {
    const auto st = (*u)->status();
    if (up == Clock::time_point{} && st.link == "up") up = Clock::now();
    while (quarters.size() < 4 && st.watermark >= last * (quarters.size() + 1) / 4) {
      quarters.push_back(Clock::now());
    }
    if (st.watermark >= last && done == Clock::time_point{}) {
      done = Clock::now();
      backlog_done = true;
    }
    if (backlog_done && st.watermark >= (*j)->Stats().last_seq) break;
    std::this_thread::sleep_for(5ms);
    if (Clock::now() - t0 > 3600s) {
      std::fprintf(stderr, "drain: not done after an hour\n");
      backlog_done = true;
      live.join();
      return 1;
    }
  }
  live.join();
  const auto st = (*u)->status();
  (*u)->Stop();
  if (!a.hq_url.empty()) {  // the live events' commit times, for the parent
    std::ofstream out(a.hq_url);
    for (const auto& [seq, at] : committed) {
      out << seq << " " << at.time_since_epoch().count() << "\n";
    }
  }
  const auto start = up == Clock::time_point{} ? t0 : up;
  std::printf("DRAINED events=%" PRIu64 " from_link_up_s=%.3f batches=%" PRIu64
              " payload_bytes=%" PRIu64 " live_committed=%zu cpu_s=%.3f",
              last, Secs(done - start), st.batches_sent, st.bytes_sent, committed.size(),
              CpuSeconds());
  for (size_t i = 0; i < quarters.size(); ++i) {
    std::printf(" q%zu_s=%.3f", i + 1, Secs(quarters[i] - (i == 0 ? start : quarters[i - 1])));
  }
  std::printf("\n");
  return 0;
}

std::string Self() { return fs::read_symlink("/proc/self/exe").string(); }

double Field(const std::string& report, const std::string& key) {
  const auto pos = report.find(key + "=");
  return pos == std::string::npos ? -1 : std::strtod(report.c_str() + pos + key.size() + 1, nullptr);
}

struct LinkFigures {
  std::string codec;
  bool ok = false;
  double seconds = 0, wire_per_event = 0, payload_per_event = 0, utilisation = 0, rate = 0;
  double ack_bytes_per_event = 0;
  double live_n = 0, live_p50 = 0, live_p99 = 0, live_max = 0, cpu_s = 0;
  double quarter_rate[4] = {0, 0, 0, 0};  // events/s in each quarter of the backlog
};

LinkFigures RunLink(const Args& a, const fs::path& base, const fs::path& work,
                    const std::string& codec, Mosquitto& broker) {
  LinkFigures f;
  f.codec = codec;
  fs::remove_all(work);
  fs::create_directories(work);
  fs::copy(base, work / "journal", fs::copy_options::recursive);
  LinkShape shape;
  shape.up_rate = a.rate_kbit * 1000 / 8;
  shape.down_rate = shape.up_rate;
  shape.one_way = std::chrono::microseconds(static_cast<int64_t>(a.rtt_ms * 1000 / 2));
  shape.buffer = a.buffer_bytes;
  ShapingProxy link(broker.port(), shape);
  // HQ's side, on the broker directly: when each batch past the backlog
  // (the live events) arrives.
  std::mutex mu;
  std::map<uint64_t, Clock::time_point> arrived;
  storegw::sync_test::HqConsumer hq(storegw::sync_test::HqConsumer::Options{.url = broker.url()});
  const uint64_t backlog = a.events;  // device events; the alerts come after none of them
  hq.set_on_batch([&](const v1::EventBatch& b) {
    const auto now = Clock::now();
    std::lock_guard lk(mu);
    for (uint64_t s = std::max(b.first_seq(), backlog); s <= b.last_seq(); ++s) arrived.emplace(s, now);
  });
  const fs::path out = work / "drain.out";
  const fs::path live_file = work / "live.txt";
  const auto t0 = Clock::now();
  auto drain = storegw::sync_test::Process::SpawnCombined(
      {Self(), "--role", "drain", "--data", (work / "journal").string(), "--url",
       "tcp://127.0.0.1:" + std::to_string(link.port()), "--codec", codec, "--batch-events",
       std::to_string(a.batch_events), "--max-inflight", std::to_string(a.max_inflight),
       "--max-message-bytes", std::to_string(a.max_message_bytes), "--hq-url", live_file.string(),
       "--live-rate", std::to_string(a.live_rate)},
      out);
  while (drain.Running()) std::this_thread::sleep_for(50ms);
  const double wall = Secs(Clock::now() - t0);
  const std::string report = storegw::sync_test::ReadFile(out);
  if (report.find("DRAINED") == std::string::npos) {
    std::printf("  %s: the drain failed after %.1f s:\n%s\n", codec.c_str(), wall, report.c_str());
    return f;
  }
  const double events = Field(report, "events");
  f.cpu_s = Field(report, "cpu_s");
  // Live latency: commit (the drain's clock) to arrival here.
  for (int i = 0; i < 200; ++i) {  // the last live batches may still be on the way
    size_t n = 0;
    {
      std::lock_guard lk(mu);
      n = arrived.size();
    }
    if (static_cast<double>(n) >= Field(report, "live_committed")) break;
    std::this_thread::sleep_for(10ms);
  }
  std::vector<double> lat;
  {
    std::ifstream in(live_file);
    uint64_t seq = 0;
    int64_t ns = 0;
    std::lock_guard lk(mu);
    while (in >> seq >> ns) {
      auto it = arrived.find(seq);
      if (it != arrived.end()) {
        lat.push_back(Secs(it->second - Clock::time_point(Clock::duration(ns))) * 1000);
      }
    }
  }
  std::sort(lat.begin(), lat.end());
  if (!lat.empty()) {
    const auto pct = [&](double p) {
      return lat[std::min(lat.size() - 1, static_cast<size_t>(p * static_cast<double>(lat.size())))];
    };
    f.live_n = static_cast<double>(lat.size());
    f.live_p50 = pct(0.5);
    f.live_p99 = pct(0.99);
    f.live_max = lat.back();
  }
  f.seconds = Field(report, "from_link_up_s");
  for (int i = 0; i < 4; ++i) {
    const double q = Field(report, "q" + std::to_string(i + 1) + "_s");
    if (q > 0) f.quarter_rate[i] = static_cast<double>(a.events) / 4 / q;
  }
  f.ok = events > 0 && f.seconds > 0;
  // The wire carried the live events too: per event of all of them.
  const double all = events + std::max(0.0, Field(report, "live_committed"));
  f.wire_per_event = static_cast<double>(link.up_bytes()) / all;
  f.ack_bytes_per_event = static_cast<double>(link.down_bytes()) / events;
  f.payload_per_event = Field(report, "payload_bytes") / events;
  f.utilisation = static_cast<double>(link.up_bytes()) / (shape.up_rate * f.seconds);
  f.rate = events / f.seconds;
  return f;
}

int Main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  if (a.role == "drain") return RoleDrain(a);
  if (!a.role.empty()) Usage("unknown role " + a.role);
  const std::vector<std::string> codecs = Split(a.codecs);
  for (const auto& c : codecs) {
    storegw::sync::Compression x;
    int level = 0;
    if (!ParseCodec(c, &x, &level)) {
      Usage("unknown codec " + c + " (none, deflate, zstd, zstd:LEVEL; col- in front: columnar)");
    }
  }
  storegw::sync_test::TempDir tmp;
  const fs::path base = tmp.path() / "base";
  std::printf("thinlink_bench: %" PRIu64 " till-shaped events; link %.0f kbit/s, %.0f ms round "
              "trip, %zu-byte bottleneck queue; batches of up to %d events / %" PRIu64
              " bytes, %d in flight\n",
              a.events, a.rate_kbit, a.rtt_ms, a.buffer_bytes, a.batch_events,
              a.max_message_bytes, a.max_inflight);
  const auto f0 = Clock::now();
  if (!Fill(base, a.events)) return 1;
  std::printf("  filled in %.1f s\n", Secs(Clock::now() - f0));
  MeasureOffline(a, base, codecs);
  if (a.skip_link) return 0;

  storegw::sync_test::BrokerOptions bo;
  bo.max_inflight_messages = 1000;
  bo.max_queued_messages = 0;
  Mosquitto broker(tmp.path() / "broker", bo);
  std::vector<LinkFigures> rows;
  for (const auto& c : codecs) {
    std::printf("  draining over the link with %s ...\n", c.c_str());
    std::fflush(stdout);
    rows.push_back(RunLink(a, base, tmp.path() / ("run-" + c), c, broker));
  }
  const double line = a.rate_kbit * 1000 / 8;
  std::printf("\nPart 2: %" PRIu64 " events over %.0f kbit/s, %.0f ms round trip (line limit: "
              "%.0f bytes/s)\n",
              a.events, a.rate_kbit, a.rtt_ms, line);
  std::printf("  %-24s | %8s | %9s | %8s | %8s | %7s | %8s | %10s | %16s | %8s\n", "encoding",
              "drain s", "events/s", "wire B/e", "batch B/e", "acks B/e", "link use", "13M events",
              "live p50/p99 ms", "CPU us/e");
  for (const auto& r : rows) {
    if (!r.ok) {
      std::printf("  %-24s | failed\n", r.codec.c_str());
      continue;
    }
    const double m13 = 13e6 / r.rate / 60;
    std::printf("  %-24s | %8.1f | %9.0f | %8.2f | %9.2f | %7.2f | %7.0f%% | %6.0f min | %7.0f/%-8.0f | %8.2f\n",
                r.codec.c_str(), r.seconds, r.rate, r.wire_per_event, r.payload_per_event,
                r.ack_bytes_per_event, 100 * r.utilisation, m13, r.live_p50, r.live_p99,
                r.cpu_s * 1e6 / (static_cast<double>(a.events)));
  }
  std::printf("  (wire: TCP payload store->HQ at the proxy, MQTT included, per event drained or "
              "live; batch: the serialized batches before compression; acks: HQ->store; 13M: at "
              "the measured rate; target <= 20 min, <= 11 B/event, >= 90 %% link use; live: a "
              "sale committed while the backlog drains, to its arrival at HQ's broker, %.0f/s; "
              "CPU: the draining process, per backlog event)\n",
              a.live_rate);
  std::printf("\n  events/s in each quarter of the backlog (flat: the figure is the line's, not the "
              "start's)\n");
  for (const auto& r : rows) {
    if (!r.ok) continue;
    std::printf("  %-24s | %9.0f | %9.0f | %9.0f | %9.0f\n", r.codec.c_str(), r.quarter_rate[0],
                r.quarter_rate[1], r.quarter_rate[2], r.quarter_rate[3]);
  }
  for (const auto& r : rows) {
    if (!r.ok) return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  return Main(argc, argv);
}
