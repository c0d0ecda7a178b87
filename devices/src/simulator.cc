// RunSimulation: the POS traffic generator behind `storegw simulate`.
#include "storegw/devices/simulator.h"

#include <httplib.h>

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "auth.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::devices {
namespace {

namespace v1 = ::storegw::v1;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kCatalogueSize = 2000;
constexpr milliseconds kBackoffInitial{50};
constexpr milliseconds kBackoffMax{2000};
constexpr milliseconds kMaxRetryAfter{30000};
constexpr milliseconds kPollInterval{20};
constexpr size_t kMaxQueued = 20000;  // events waiting in one lane

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The store's catalogue: skus, shelf prices and how often each sells.
class Catalogue {
 public:
  explicit Catalogue(uint64_t seed) {
    std::mt19937_64 rng(seed ^ 0x5eed5eed5eedULL);
    skus_.reserve(kCatalogueSize);
    for (int i = 1; i <= kCatalogueSize; ++i) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "SKU-%06d", i);
      skus_.emplace_back(buf);
    }
    // Popularity rank -> sku: shuffled so that popular skus are spread over
    // the number range.
    std::shuffle(skus_.begin(), skus_.end(), rng);
    // Shelf prices: log-uniform between 0.49 and 49.99 EUR, in cents.
    std::uniform_real_distribution<double> logp(std::log(49.0), std::log(4999.0));
    for (int i = 0; i < kCatalogueSize; ++i) {
      prices_.push_back(static_cast<int64_t>(std::exp(logp(rng))));
    }
    // Zipf-like popularity, exponent 1: rank r sells ~1/(r+1) as often as the
    // top seller.
    double total = 0;
    for (int r = 0; r < kCatalogueSize; ++r) {
      total += 1.0 / (r + 1.0);
      cdf_.push_back(total);
    }
    for (double& c : cdf_) c /= total;
  }

  size_t Pick(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    const size_t i =
        static_cast<size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
    return std::min(i, cdf_.size() - 1);
  }
  const std::string& sku(size_t i) const { return skus_[i]; }
  int64_t price(size_t i) const { return prices_[i]; }

 private:
  std::vector<std::string> skus_;
  std::vector<int64_t> prices_;
  std::vector<double> cdf_;
};

// Shared by the lanes, written under a mutex.
class AcceptedLog {
 public:
  Status Open(const std::string& path) {
    if (path.empty()) return {};
    out_.open(path, std::ios::out | std::ios::trunc);
    if (!out_) return Status::IoError("cannot write the accepted log " + path);
    path_ = path;
    return {};
  }
  void Add(const std::vector<std::pair<std::string, uint64_t>>& accepted) {
    if (path_.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, seq] : accepted) out_ << id << ' ' << seq << '\n';
  }
  Status Close() {
    if (path_.empty()) return {};
    std::lock_guard<std::mutex> lock(mu_);
    out_.flush();
    const bool ok = static_cast<bool>(out_);
    out_.close();
    if (!ok) return Status::IoError("error writing the accepted log " + path_);
    return {};
  }

 private:
  std::mutex mu_;
  std::ofstream out_;
  std::string path_;
};

struct Shared {
  const SimOptions* options = nullptr;
  std::string base_url;
  std::string run_id;
  const Catalogue* catalogue = nullptr;
  AcceptedLog* log = nullptr;
  Clock::time_point start;
  // Set by the coordinator when event generation ends (duration or stop()).
  std::atomic<bool> generation_over{false};
  std::atomic<int64_t> hard_end_ns{0};  // steady clock; valid once generation_over
};

struct LaneResult {
  SimReport report;
  std::vector<double> latencies_ms;
};

class Lane {
 public:
  Lane(Shared& shared, int index, std::string device, std::string token)
      : s_(shared),
        o_(*shared.options),
        index_(index),
        device_(std::move(device)),
        token_(std::move(token)),
        rng_(o_.seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(index) * 7919 + 1) {}

  LaneResult Run();

 private:
  struct Pending {
    std::string body;
    std::vector<std::string> event_ids;
    int attempts = 0;
    Clock::time_point next_try;
  };

  v1::Event MakeEvent();
  void AddSaleLines(google::protobuf::RepeatedPtrField<v1::SaleLine>* lines, int n,
                    bool single_qty);
  Pending BuildRequest();
  // Sends `p`; true when it is settled (accepted or rejected).
  bool Send(httplib::Client& cli, Pending& p);
  void ScheduleRetry(Pending& p, std::optional<milliseconds> retry_after);

  Shared& s_;
  const SimOptions& o_;
  const int index_;
  const std::string device_;
  const std::string token_;
  std::mt19937_64 rng_;
  uint64_t counter_ = 0;
  std::deque<v1::Event> queue_;
  LaneResult r_;
  // Units per sale line: 1..6, mostly 1.
  std::discrete_distribution<int> line_qty_{80, 12, 5, 1, 1, 1};
  // Lines per basket: 1..30 with P(n) ~ n^-1.6 (77% have 1..5 lines).
  std::discrete_distribution<int> basket_size_ = [] {
    std::vector<double> w;
    for (int n = 1; n <= 30; ++n) w.push_back(std::pow(n, -1.6));
    return std::discrete_distribution<int>(w.begin(), w.end());
  }();
};

void Lane::AddSaleLines(google::protobuf::RepeatedPtrField<v1::SaleLine>* lines, int n,
                        bool single_qty) {
  for (int i = 0; i < n; ++i) {
    const size_t k = s_.catalogue->Pick(rng_);
    v1::SaleLine* l = lines->Add();
    l->set_sku(s_.catalogue->sku(k));
    l->set_qty(single_qty ? 1 : line_qty_(rng_) + 1);
    l->set_unit_price(s_.catalogue->price(k));
    l->set_currency("EUR");
  }
}

v1::Event Lane::MakeEvent() {
  ++counter_;
  char id[160];
  std::snprintf(id, sizeof id, "sim-%s-%s-%06" PRIu64, s_.run_id.c_str(), device_.c_str(),
                counter_);
  v1::Event e;
  e.set_event_id(id);
  e.set_device_id(device_);
  e.set_occurred_at(NowMicros());
  const std::string basket = device_ + "-" + std::to_string(counter_);
  const double u = std::uniform_real_distribution<double>(0, 1)(rng_);
  if (u < 0.03) {  // a customer brings something back
    v1::SaleReturn* r = e.mutable_sale_return();
    AddSaleLines(r->mutable_lines(), std::uniform_int_distribution<int>(1, 2)(rng_), true);
    r->set_basket_id(basket);
    r->set_tender("card");
  } else if (u < 0.05) {  // a delivery: popular skus, whole cases
    v1::Receipt* r = e.mutable_receipt();
    const int n = std::uniform_int_distribution<int>(5, 40)(rng_);
    for (int i = 0; i < n; ++i) {
      v1::StockLine* l = r->add_lines();
      l->set_sku(s_.catalogue->sku(s_.catalogue->Pick(rng_)));
      l->set_qty(12 * std::uniform_int_distribution<int>(1, 8)(rng_));
    }
    r->set_delivery_id("DN-" + basket);
  } else if (u < 0.06) {  // a cycle count
    v1::StockCount* c = e.mutable_count();
    c->set_sku(s_.catalogue->sku(s_.catalogue->Pick(rng_)));
    c->set_qty(std::uniform_int_distribution<int>(0, 60)(rng_));
  } else if (u < 0.07) {  // shrink, damage, waste, or stock found
    v1::AdjustmentLine* l = e.mutable_adjustment()->add_lines();
    l->set_sku(s_.catalogue->sku(s_.catalogue->Pick(rng_)));
    static const char* kReasons[] = {"shrink", "damage", "waste", "found"};
    const int k = std::uniform_int_distribution<int>(0, 3)(rng_);
    l->set_reason(kReasons[k]);
    const int q = std::uniform_int_distribution<int>(1, 3)(rng_);
    l->set_qty(k == 3 ? q : -q);
  } else {  // a sale
    v1::Sale* sale = e.mutable_sale();
    AddSaleLines(sale->mutable_lines(), basket_size_(rng_) + 1, false);
    sale->set_basket_id(basket);
    const double t = std::uniform_real_distribution<double>(0, 1)(rng_);
    sale->set_tender(t < 0.65 ? "card" : t < 0.95 ? "cash" : "voucher");
  }
  return e;
}

Lane::Pending Lane::BuildRequest() {
  Pending p;
  const size_t n = std::min(queue_.size(), static_cast<size_t>(o_.batch));
  v1::IngestRequest req;
  for (size_t i = 0; i < n; ++i) {
    p.event_ids.push_back(queue_.front().event_id());
    *req.add_events() = std::move(queue_.front());
    queue_.pop_front();
  }
  if (o_.protobuf) {
    req.SerializeToString(&p.body);
  } else {
    google::protobuf::util::JsonPrintOptions print;
    print.preserve_proto_field_names = true;
    // One event goes as a bare Event (what a till sends after each sale);
    // more as {"events":[...]}.
    if (n == 1) {
      (void)google::protobuf::util::MessageToJsonString(req.events(0), &p.body, print);
    } else {
      (void)google::protobuf::util::MessageToJsonString(req, &p.body, print);
    }
  }
  r_.report.sent += n;
  p.next_try = Clock::now();
  return p;
}

void Lane::ScheduleRetry(Pending& p, std::optional<milliseconds> retry_after) {
  milliseconds delay;
  if (retry_after) {
    delay = std::min(*retry_after, kMaxRetryAfter);
  } else {
    // Capped exponential back-off with full jitter.
    const int shift = std::min(p.attempts - 1, 16);
    const auto cap = std::min<int64_t>(kBackoffMax.count(), kBackoffInitial.count() << shift);
    delay = milliseconds(std::uniform_int_distribution<int64_t>(0, cap)(rng_));
  }
  p.next_try = Clock::now() + delay;
}

bool Lane::Send(httplib::Client& cli, Pending& p) {
  if (p.attempts > 0) ++r_.report.retries;
  ++p.attempts;
  ++r_.report.requests;
  const auto t0 = Clock::now();
  auto res =
      cli.Post("/v1/events", p.body, o_.protobuf ? "application/x-protobuf" : "application/json");
  if (!res) {
    ++r_.report.connection_errors;
    r_.report.last_error = "no answer from " + s_.base_url + ": " + httplib::to_string(res.error());
    ScheduleRetry(p, std::nullopt);
    return false;
  }
  r_.latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  const int status = res->status;
  if (status == 200) {
    v1::IngestResponse answer;
    google::protobuf::util::JsonParseOptions parse;
    parse.ignore_unknown_fields = true;
    const bool parsed = google::protobuf::util::JsonStringToMessage(res->body, &answer, parse).ok();
    bool match = parsed && answer.results_size() == static_cast<int>(p.event_ids.size());
    for (int i = 0; match && i < answer.results_size(); ++i) {
      match = answer.results(i).event_id() == p.event_ids[static_cast<size_t>(i)] &&
              answer.results(i).seq() > 0;
    }
    if (!match) {
      // Retrying is safe: a landed event comes back duplicate=true.
      ++r_.report.protocol_errors;
      r_.report.last_error =
          "200 answer that does not match the request: " + res->body.substr(0, 200);
      ScheduleRetry(p, std::nullopt);
      return false;
    }
    std::vector<std::pair<std::string, uint64_t>> accepted;
    for (const auto& result : answer.results()) {
      ++r_.report.accepted;
      if (result.duplicate()) ++r_.report.duplicates;
      accepted.emplace_back(result.event_id(), result.seq());
    }
    s_.log->Add(accepted);
    for (auto& a : accepted) r_.report.accepted_events.push_back(std::move(a));
    return true;
  }
  r_.report.last_error = "HTTP " + std::to_string(status) + ": " + res->body.substr(0, 300);
  if (status == 503) {
    ++r_.report.unavailable;
    std::optional<milliseconds> after;
    const std::string h = res->get_header_value("Retry-After");
    char* end = nullptr;
    const long secs = std::strtol(h.c_str(), &end, 10);
    if (!h.empty() && end != nullptr && *end == '\0' && secs >= 0)
      after = milliseconds(secs * 1000);
    ScheduleRetry(p, after);
    return false;
  }
  if (status >= 500 || status == 408 || status == 429) {
    ScheduleRetry(p, std::nullopt);
    return false;
  }
  // Any other answer (4xx): the gateway refused these events; a till would
  // flag them for a person, not resend them.
  r_.report.rejected += p.event_ids.size();
  return true;
}

LaneResult Lane::Run() {
  httplib::Client cli(s_.base_url);
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);
  cli.set_connection_timeout(2, 0);
  cli.set_read_timeout(5, 0);
  cli.set_write_timeout(5, 0);
  if (!token_.empty()) cli.set_bearer_token_auth(token_);

  // Lane i's events are due every `interval`, offset so that lanes
  // interleave.
  const double lanes = o_.lanes;
  const auto interval = std::chrono::duration<double>(lanes / o_.rate);
  const auto offset = std::chrono::duration<double>(index_ / o_.rate);
  uint64_t due_count = 0;
  const auto due = [&](uint64_t k) {
    return s_.start + std::chrono::duration_cast<Clock::duration>(offset + k * interval);
  };

  std::optional<Pending> pending;
  for (;;) {
    const auto now = Clock::now();
    const bool over = s_.generation_over.load();
    if (over) {
      const Clock::time_point hard_end{Clock::duration(s_.hard_end_ns.load())};
      if (!pending && queue_.empty()) break;
      if (now >= hard_end) break;
    } else {
      while (due(due_count) <= now) {
        // A till's memory is finite too: past kMaxQueued waiting events the
        // due ones are counted as unsent without being made.
        if (queue_.size() < kMaxQueued) {
          queue_.push_back(MakeEvent());
        } else {
          ++r_.report.unsent;
        }
        ++due_count;
      }
    }
    if (!pending && !queue_.empty() && (queue_.size() >= static_cast<size_t>(o_.batch) || over)) {
      pending = BuildRequest();
    }
    if (pending && pending->next_try <= now) {
      if (Send(cli, *pending)) pending.reset();
      continue;
    }
    // Sleep until something is due, but wake often enough to notice the end.
    auto wake = now + kPollInterval;
    if (!over) wake = std::min(wake, due(due_count));
    if (pending) wake = std::min(wake, pending->next_try);
    std::this_thread::sleep_until(wake);
  }
  if (pending) {
    r_.report.failed += pending->event_ids.size();
    if (r_.report.last_error.empty()) r_.report.last_error = "run ended before an answer";
  }
  r_.report.unsent += queue_.size();
  return std::move(r_);
}

std::string DefaultRunId(uint64_t seed) {
  const uint64_t ms = static_cast<uint64_t>(
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%" PRIx64 "-%" PRIu64, ms, seed);
  return buf;
}

}  // namespace

Result<SimReport> RunSimulation(const SimOptions& o) {
  if (o.lanes < 1 || o.lanes > 1000) {
    return Status::InvalidArgument(
        "lanes", "simulate: lanes must be 1..1000, got " + std::to_string(o.lanes));
  }
  if (!(o.rate > 0) || o.rate > 1e6) {
    return Status::InvalidArgument("rate", "simulate: rate must be > 0 and <= 1000000 events/s");
  }
  if (o.batch < 1 || o.batch > 10000) {
    return Status::InvalidArgument("batch", "simulate: batch must be 1..10000");
  }
  if (o.duration.count() < 0 || (o.duration.count() == 0 && !o.stop)) {
    return Status::InvalidArgument("duration",
                                   "simulate: duration must be > 0 (or a stop function given)");
  }
  if (o.grace.count() < 0) return Status::InvalidArgument("grace", "simulate: grace must be >= 0");
  std::string url = o.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    return Status::InvalidArgument(
        "url", "simulate: url must start with http:// or https://, got \"" + o.url + "\"");
  }
  if (url.find('/', url.find("//") + 2) != std::string::npos) {
    return Status::InvalidArgument(
        "url",
        "simulate: url must be the gateway's base URL without a path (e.g. "
        "http://127.0.0.1:8080), got \"" +
            o.url + "\"");
  }

  std::vector<std::string> devices;
  std::vector<std::string> tokens;
  if (!o.token_file.empty()) {
    auto table = TokenTable::Load(o.token_file);
    if (!table.ok()) return table.status();
    if (table->size() < static_cast<size_t>(o.lanes)) {
      return Status::InvalidArgument("token_file", "simulate: token file " + o.token_file.string() +
                                                       " names " + std::to_string(table->size()) +
                                                       " devices; " + std::to_string(o.lanes) +
                                                       " lanes need one each");
    }
    devices = table->device_ids();
    for (int i = 0; i < o.lanes; ++i) tokens.push_back(table->token(static_cast<size_t>(i)));
  } else {
    for (int i = 1; i <= o.lanes; ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "till-%02d", i);
      devices.emplace_back(buf);
      tokens.emplace_back();
    }
  }

  AcceptedLog log;
  if (Status s = log.Open(o.accepted_log); !s.ok()) return s;
  const Catalogue catalogue(o.seed);
  Shared shared;
  shared.options = &o;
  shared.base_url = url;
  shared.run_id = o.run_id.empty() ? DefaultRunId(o.seed) : o.run_id;
  shared.catalogue = &catalogue;
  shared.log = &log;
  shared.start = Clock::now();

  std::vector<LaneResult> results(static_cast<size_t>(o.lanes));
  std::atomic<int> lanes_done{0};
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(o.lanes));
  for (int i = 0; i < o.lanes; ++i) {
    threads.emplace_back([&, i] {
      Lane lane(shared, i, devices[static_cast<size_t>(i)], tokens[static_cast<size_t>(i)]);
      results[static_cast<size_t>(i)] = lane.Run();
      lanes_done.fetch_add(1);
    });
  }

  // The coordinator: ends event generation at `duration` or when stop() says
  // so, then gives the lanes `grace` to finish.
  while (lanes_done.load() < o.lanes) {
    if (!shared.generation_over.load()) {
      const auto now = Clock::now();
      const bool timed_out = o.duration.count() > 0 && now >= shared.start + o.duration;
      if (timed_out || (o.stop && o.stop())) {
        shared.hard_end_ns.store((now + o.grace).time_since_epoch().count());
        shared.generation_over.store(true);
      }
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  for (auto& t : threads) t.join();

  SimReport report;
  std::vector<double> latencies;
  for (auto& lr : results) {
    const SimReport& r = lr.report;
    report.sent += r.sent;
    report.accepted += r.accepted;
    report.duplicates += r.duplicates;
    report.retries += r.retries;
    report.rejected += r.rejected;
    report.unavailable += r.unavailable;
    report.failed += r.failed;
    report.unsent += r.unsent;
    report.requests += r.requests;
    report.connection_errors += r.connection_errors;
    report.protocol_errors += r.protocol_errors;
    if (!r.last_error.empty()) report.last_error = r.last_error;
    for (const auto& a : r.accepted_events) report.accepted_events.push_back(a);
    latencies.insert(latencies.end(), lr.latencies_ms.begin(), lr.latencies_ms.end());
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - shared.start).count();
  if (!latencies.empty()) {
    std::sort(latencies.begin(), latencies.end());
    const auto at = [&](double q) {
      return latencies[std::min(latencies.size() - 1,
                                static_cast<size_t>(q * static_cast<double>(latencies.size())))];
    };
    report.latency_p50_ms = at(0.50);
    report.latency_p99_ms = at(0.99);
    report.latency_max_ms = latencies.back();
  }
  if (Status s = log.Close(); !s.ok()) return s;
  return report;
}

}  // namespace storegw::devices
