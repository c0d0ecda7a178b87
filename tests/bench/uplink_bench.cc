// uplink_bench: the uplink's drain figures against the README's targets, side
// by side with the alternative a store would otherwise pick. A program that
// prints figures, not a timed test.
//
//   storegw   journal (N-event backlog) -> uplink (one "daemon" process)
//             -> counting proxy -> HQ mosquitto (persistence on) -> HQ subscriber
//   bridge    the same N events, one QoS 1 protobuf message each, queued in an
//             in-store mosquitto (persistence on) while its bridge to HQ is
//             down -> bridge -> counting proxy -> HQ mosquitto (persistence
//             on) -> HQ subscriber
//
// Measured for each: drain rate at HQ (first event arriving at the HQ
// subscriber to the N-th distinct one), bytes on the store->HQ link per
// event (both directions, counted by the proxy), and for storegw the peak
// RSS (VmHWM) of the draining process.
//
// Usage: uplink_bench [--events N] [--batch-events N] [--max-inflight N]
//                     [--max-message-bytes N] [--compression LIST]
//   LIST: comma-separated deflate, zstd, none; "col-" in front: the columnar
//   batch encoding (e.g. deflate,zstd,col-zstd): one storegw run each
//                     [--bridge-inflight N] [--skip-bridge]
// Internal roles (the bench runs itself): --role fill|drain ...
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

#include "columnar.h"  // sync/src: the columnar batch header
#include "compress.h"  // sync/src: Inflate, ZstdDecompress
#include "storegw/storage/journal.h"
#include "storegw/sync/uplink.h"
#include "sync_test_util.h"
#include "tcp_proxy.h"

namespace {

using namespace std::chrono_literals;
using storegw::sync_test::Mosquitto;
using storegw::sync_test::TcpProxy;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
namespace v1 = storegw::v1;

struct Args {
  std::string role;
  std::string data;
  std::string url;
  uint64_t events = 1000000;
  int batch_events = 500;
  int max_inflight = 8;
  uint64_t max_message_bytes = 256u << 10;
  int bridge_inflight = 20;  // mosquitto's default max_inflight_messages
  std::string compression = "deflate";
  bool skip_bridge = false;
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "uplink_bench: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--role")
      a.role = next();
    else if (k == "--data")
      a.data = next();
    else if (k == "--url")
      a.url = next();
    else if (k == "--events")
      a.events = std::stoull(next());
    else if (k == "--batch-events")
      a.batch_events = std::stoi(next());
    else if (k == "--max-inflight")
      a.max_inflight = std::stoi(next());
    else if (k == "--max-message-bytes")
      a.max_message_bytes = std::stoull(next());
    else if (k == "--bridge-inflight")
      a.bridge_inflight = std::stoi(next());
    else if (k == "--compression")
      a.compression = next();
    else if (k == "--skip-bridge")
      a.skip_bridge = true;
    else {
      std::fprintf(stderr, "uplink_bench: unknown argument %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

uint64_t ProcKb(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) return std::strtoull(line.c_str() + n + 1, nullptr, 10);
  }
  return 0;
}

double Secs(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// ------------------------------------------------------------ roles

// Fills a fresh journal with exactly N events: one receipt that stocks
// every sku the sales use (so no oversell alerts join the stream), then
// N-1 till sales.
int RoleFill(const Args& a) {
  auto j = storegw::storage::Journal::Open(storegw::sync_test::TestJournalOptions(a.data));
  if (!j.ok()) {
    std::fprintf(stderr, "fill: %s\n", j.status().ToString().c_str());
    return 1;
  }
  v1::Event stock;
  stock.set_event_id("stock-all");
  stock.set_device_id("dc");
  stock.set_occurred_at(1767225600000000);
  for (int i = 0; i < 500; ++i) {
    auto* l = stock.mutable_receipt()->add_lines();
    l->set_sku("sku-" + std::to_string(1000 + i));
    l->set_qty(100000000);
  }
  for (int i = 0; i < 300; ++i) {
    auto* l = stock.mutable_receipt()->add_lines();
    l->set_sku("sku-" + std::to_string(2000 + i));
    l->set_qty(100000000);
  }
  if (auto r = (*j)->Append({stock}); !r.ok()) {
    std::fprintf(stderr, "fill: %s\n", r.status().ToString().c_str());
    return 1;
  }
  const std::string err = storegw::sync_test::AppendSales(**j, 1, a.events - 1, 2000);
  if (!err.empty()) {
    std::fprintf(stderr, "fill: %s\n", err.c_str());
    return 1;
  }
  const auto st = (*j)->Stats();
  std::printf("FILLED last_seq=%" PRIu64 " backlog_bytes=%" PRIu64 "\n", st.last_seq,
              st.backlog_bytes);
  return st.last_seq == a.events ? 0 : 1;
}

// The "daemon": opens the journal, drains it through the uplink, reports.
int RoleDrain(const Args& a) {
  spdlog::set_level(spdlog::level::warn);
  auto j = storegw::storage::Journal::Open(storegw::sync_test::TestJournalOptions(a.data));
  if (!j.ok()) {
    std::fprintf(stderr, "drain: %s\n", j.status().ToString().c_str());
    return 1;
  }
  const uint64_t last = (*j)->Stats().last_seq;
  storegw::sync::UplinkOptions o;
  o.url = a.url;
  o.batch_events = a.batch_events;
  o.max_inflight = a.max_inflight;
  o.max_message_bytes = a.max_message_bytes;
  o.compression = a.compression.rfind("col-", 0) == 0 ? a.compression.substr(4) : a.compression;
  o.batch_encoding = a.compression.rfind("col-", 0) == 0 ? "columnar" : "protobuf";
  o.backoff_initial = 100ms;
  o.backoff_max = 1s;
  o.client_id = "storegw-bench";
  auto u = storegw::sync::Uplink::Create(o, j->get());
  if (!u.ok()) {
    std::fprintf(stderr, "drain: %s\n", u.status().ToString().c_str());
    return 1;
  }
  const auto t0 = Clock::now();
  if (!(*u)->Start().ok()) return 1;
  Clock::time_point up{};
  while ((*u)->status().watermark < last) {
    if (up == Clock::time_point{} && (*u)->status().link == "up") up = Clock::now();
    std::this_thread::sleep_for(2ms);
    if (Clock::now() - t0 > 600s) {
      std::fprintf(stderr, "drain: not done after 600 s\n");
      return 1;
    }
  }
  const auto done = Clock::now();
  const auto st = (*u)->status();
  (*u)->Stop();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  std::printf("DRAINED events=%" PRIu64 " from_start_s=%.3f from_link_up_s=%.3f batches=%" PRIu64
              " payload_bytes=%" PRIu64 " vmhwm_kb=%" PRIu64 " cpu_s=%.3f\n",
              last, Secs(done - t0), Secs(done - (up == Clock::time_point{} ? t0 : up)),
              st.batches_sent, st.bytes_sent, ProcKb(getpid(), "VmHWM:"), cpu);
  return 0;
}

// ------------------------------------------------------------ raw MQTT 3.1.1

// A minimal MQTT 3.1.1 client over a blocking socket, fast enough not to be
// the bottleneck: a pipelined QoS 1 publisher and a counting subscriber.
class RawMqtt {
 public:
  RawMqtt(uint16_t port, const std::string& client_id) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      throw std::runtime_error("raw mqtt: connect failed");
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string v;
    Str(v, "MQTT");
    v += '\x04';  // 3.1.1
    v += '\x02';  // clean session
    v += '\0';
    v += '\0';  // keep-alive 0: none
    Str(v, client_id);
    Send(Packet(0x10, v));
    uint8_t type;
    std::string body;
    if (!Read(&type, &body) || (type >> 4) != 2 || body.size() < 2 || body[1] != 0) {
      throw std::runtime_error("raw mqtt: CONNACK refused");
    }
  }
  ~RawMqtt() { close(fd_); }

  // Publishes every payload at QoS 1 with up to `window` unacknowledged.
  void PublishAll(const std::string& topic, const std::function<bool(std::string*)>& next,
                  size_t window) {
    std::atomic<uint64_t> acked{0}, sent{0};
    std::atomic<bool> done{false};
    std::mutex mu;
    std::condition_variable cv;
    std::thread reader([&] {
      uint8_t type;
      std::string body;
      while (Read(&type, &body)) {
        if ((type >> 4) == 4) {
          ++acked;
          if (rbuf_.size() == rpos_) {  // a batch of PUBACKs read: wake the writer
            std::lock_guard lk(mu);
            cv.notify_one();
          }
        }
        if (done && acked == sent) break;
      }
      std::lock_guard lk(mu);
      cv.notify_one();
    });
    std::string payload, buf;
    uint16_t id = 0;
    while (next(&payload)) {
      if (sent - acked.load() >= window) {
        if (!buf.empty()) Send(buf);
        buf.clear();
        std::unique_lock lk(mu);
        while (sent - acked.load() >= window / 2) cv.wait_for(lk, 100ms);
      }
      if (++id == 0) id = 1;
      std::string v;
      Str(v, topic);
      v += static_cast<char>(id >> 8);
      v += static_cast<char>(id & 0xff);
      v += payload;
      buf += Packet(0x32, v);
      ++sent;
      if (buf.size() > 64 * 1024) {
        Send(buf);
        buf.clear();
      }
    }
    if (!buf.empty()) Send(buf);
    {
      std::unique_lock lk(mu);
      while (acked.load() < sent) cv.wait_for(lk, 100ms);
    }
    done = true;
    shutdown(fd_, SHUT_RD);
    reader.join();
  }

  void Subscribe(const std::string& filter) {
    std::string v;
    v += '\0';
    v += '\x01';
    Str(v, filter);
    v += '\x01';  // QoS 1
    Send(Packet(0x82, v));
  }

  // Reads PUBLISHes until `on_message` returns false; acknowledges each.
  void Consume(const std::function<bool(const char*, size_t)>& on_message) {
    uint8_t type;
    std::string body, acks;
    while (Read(&type, &body)) {
      if ((type >> 4) != 3) continue;
      const int qos = (type >> 1) & 3;
      size_t tl = (static_cast<uint8_t>(body[0]) << 8) | static_cast<uint8_t>(body[1]);
      size_t off = 2 + tl;
      if (qos > 0) {
        acks += '\x40';
        acks += '\x02';
        acks += body[off];
        acks += body[off + 1];
        off += 2;
      }
      const bool more = on_message(body.data() + off, body.size() - off);
      if (acks.size() >= 400 || rbuf_.size() - rpos_ == 0 || !more) {
        Send(acks);
        acks.clear();
      }
      if (!more) return;
    }
  }

  void Close() { shutdown(fd_, SHUT_RDWR); }

 private:
  static void Str(std::string& out, const std::string& s) {
    out += static_cast<char>(s.size() >> 8);
    out += static_cast<char>(s.size() & 0xff);
    out += s;
  }
  static std::string Packet(uint8_t type, const std::string& v) {
    std::string p(1, static_cast<char>(type));
    size_t n = v.size();
    do {
      uint8_t b = n % 128;
      n /= 128;
      if (n) b |= 0x80;
      p += static_cast<char>(b);
    } while (n);
    return p + v;
  }
  void Send(const std::string& b) {
    size_t off = 0;
    while (off < b.size()) {
      ssize_t n = send(fd_, b.data() + off, b.size() - off, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("raw mqtt: send failed");
      off += static_cast<size_t>(n);
    }
  }
  bool Fill(size_t need) {
    while (rbuf_.size() - rpos_ < need) {
      if (rpos_ > 0) {
        rbuf_.erase(0, rpos_);
        rpos_ = 0;
      }
      char tmp[1 << 16];
      ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      rbuf_.append(tmp, static_cast<size_t>(n));
    }
    return true;
  }
  bool Read(uint8_t* type, std::string* body) {
    if (!Fill(2)) return false;
    size_t len = 0, mult = 1, i = 1;
    for (;; ++i) {
      if (!Fill(i + 1)) return false;
      const uint8_t b = static_cast<uint8_t>(rbuf_[rpos_ + i]);
      len += (b & 0x7f) * mult;
      mult *= 128;
      if (!(b & 0x80)) break;
    }
    if (!Fill(i + 1 + len)) return false;
    *type = static_cast<uint8_t>(rbuf_[rpos_]);
    body->assign(rbuf_, rpos_ + i + 1, len);
    rpos_ += i + 1 + len;
    return true;
  }

  int fd_ = -1;
  std::string rbuf_;
  size_t rpos_ = 0;
};

// HQ side: counts distinct seqs as they arrive; first arrival and the
// moment the N-th distinct seq arrived.
struct HqCounter {
  std::vector<bool> seen;
  uint64_t distinct = 0, duplicates = 0, messages = 0, payload_bytes = 0, compressed = 0;
  Clock::time_point first{}, done{};
  explicit HqCounter(uint64_t n) : seen(n + 1, false) {}
  void Mark(uint64_t seq) {
    if (seq == 0 || seq >= seen.size()) return;
    if (seen[seq]) {
      ++duplicates;
    } else {
      seen[seq] = true;
      ++distinct;
    }
  }
};

// EventBatch header only (fields 4 and 5 precede the events): no decoding
// of the events themselves.
bool BatchRange(const char* p, size_t n, uint64_t* first, uint64_t* last) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(p),
                                            static_cast<int>(n));
  *first = *last = 0;
  while (uint32_t tag = in.ReadTag()) {
    const int field = static_cast<int>(tag >> 3);
    if (field == 4 && !in.ReadVarint64(first))
      return false;
    else if (field == 5 && !in.ReadVarint64(last))
      return false;
    else if (field == 6)
      break;
    else if (field != 4 && field != 5 &&
             !google::protobuf::internal::WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
    if (*first && *last) break;
  }
  return *first && *last >= *first;
}

struct Figures {
  double rate = 0;
  double bytes_per_event = 0;
  uint64_t wire_bytes = 0;
  uint64_t payload_bytes = 0;
  double seconds = 0;
  uint64_t duplicates = 0;
  bool complete = false;
};

std::string Self() {
  return fs::read_symlink("/proc/self/exe").string();
}

// ------------------------------------------------------------ storegw run

Figures RunStoregw(const Args& a, const fs::path& dir, uint64_t* vmhwm_kb, uint64_t* max_rss_kb,
                   double* cpu_s) {
  Figures f;
  storegw::sync_test::BrokerOptions bo;
  bo.persistence = true;
  bo.max_inflight_messages = 1000;
  bo.max_queued_messages = 0;  // no limit
  Mosquitto hq(dir / "hq-broker", bo);
  TcpProxy link(hq.port());

  HqCounter counter(a.events);
  RawMqtt sub(hq.port(), "hq-counter");
  sub.Subscribe("retail/v1/+/+/events");
  std::this_thread::sleep_for(200ms);  // SUBACK in before the drain starts
  std::thread consumer([&] {
    sub.Consume([&](const char* p, size_t n) {
      uint64_t first, last;
      if (counter.first == Clock::time_point{}) counter.first = Clock::now();
      ++counter.messages;
      counter.payload_bytes += n;
      // This counter speaks MQTT 3.1.1 (no properties): a zlib stream
      // starts with 0x78, a storegw EventBatch with 0x0A.
      std::string inflated;
      if (n > 0 && (static_cast<uint8_t>(p[0]) == 0x78 || static_cast<uint8_t>(p[0]) == 0x28)) {
        auto r = static_cast<uint8_t>(p[0]) == 0x78 ? storegw::sync::Inflate(std::string_view(p, n))
                                                     : storegw::sync::ZstdDecompress(std::string_view(p, n));
        if (!r.ok()) return true;
        inflated = std::move(*r);
        p = inflated.data();
        n = inflated.size();
        ++counter.compressed;
      }
      if (storegw::sync::IsColumnar(std::string_view(p, n))) {
        if (auto h = storegw::sync::ReadColumnarHeader(std::string_view(p, n)); h.ok()) {
          for (uint64_t s = h->first_seq; s < h->first_seq + h->count; ++s) counter.Mark(s);
        }
      } else if (BatchRange(p, n, &first, &last)) {
        for (uint64_t s = first; s <= last; ++s) counter.Mark(s);
      }
      if (counter.distinct == a.events) {
        counter.done = Clock::now();
        return false;
      }
      return true;
    });
  });

  const fs::path out = dir / "drain.out";
  auto drain = storegw::sync_test::Process::SpawnCombined(
      {Self(), "--role", "drain", "--data", (dir / "journal").string(), "--url",
       "tcp://127.0.0.1:" + std::to_string(link.port()), "--batch-events",
       std::to_string(a.batch_events), "--max-inflight", std::to_string(a.max_inflight),
       "--max-message-bytes", std::to_string(a.max_message_bytes), "--compression", a.compression},
      out);
  uint64_t peak = 0;
  while (drain.Running()) {
    peak = std::max(peak, ProcKb(drain.pid(), "VmRSS:"));
    std::this_thread::sleep_for(20ms);
  }
  *max_rss_kb = peak;
  const std::string report = storegw::sync_test::ReadFile(out);
  std::printf("  daemon: %s", report.c_str());
  const auto pos = report.find("vmhwm_kb=");
  *vmhwm_kb = pos == std::string::npos ? 0 : std::strtoull(report.c_str() + pos + 9, nullptr, 10);
  const auto cpos = report.find("cpu_s=");
  *cpu_s = cpos == std::string::npos ? 0 : std::strtod(report.c_str() + cpos + 6, nullptr);

  storegw::sync_test::WaitUntil([&] { return counter.done != Clock::time_point{}; }, 30s);
  sub.Close();
  consumer.join();
  f.complete = counter.distinct == a.events;
  f.seconds = Secs(counter.done - counter.first);
  f.rate = f.complete && f.seconds > 0 ? static_cast<double>(a.events) / f.seconds : 0;
  f.wire_bytes = link.up_bytes() + link.down_bytes();
  f.bytes_per_event = static_cast<double>(f.wire_bytes) / static_cast<double>(a.events);
  f.payload_bytes = counter.payload_bytes;
  f.duplicates = counter.duplicates;
  return f;
}

// ------------------------------------------------------------ bridge run

Figures RunBridge(const Args& a, const fs::path& dir) {
  Figures f;
  storegw::sync_test::BrokerOptions hq_opts;
  hq_opts.persistence = true;
  hq_opts.max_inflight_messages = 1000;
  hq_opts.max_queued_messages = 0;
  Mosquitto hq(dir / "hq-broker-b", hq_opts);
  TcpProxy link(hq.port());
  link.SetRefuse(true);  // the store's uplink is down while the backlog builds

  storegw::sync_test::BrokerOptions store_opts;
  store_opts.persistence = true;
  store_opts.max_inflight_messages = a.bridge_inflight;
  store_opts.max_queued_messages = 0;
  store_opts.extra =
      "max_queued_bytes 0\n"
      "connection hq\n"
      "address 127.0.0.1:" +
      std::to_string(link.port()) +
      "\n"
      "topic retail/v1/# out 1\n"
      "cleansession false\n"
      "bridge_protocol_version mqttv311\n"
      "restart_timeout 1\n"
      "try_private false\n";
  Mosquitto store(dir / "store-broker", store_opts);

  // Feed the same events as one QoS 1 message each (the JournaledEvent as
  // the journal holds it, protobuf).
  auto j = storegw::storage::Journal::Open(storegw::sync_test::TestJournalOptions(dir / "journal"));
  if (!j.ok()) throw std::runtime_error(j.status().ToString());
  {
    RawMqtt pub(store.port(), "till-feed");
    std::vector<v1::JournaledEvent> chunk;
    size_t at = 0;
    uint64_t next_seq = 1;
    const auto t0 = Clock::now();
    pub.PublishAll(
        "retail/v1/store-0001/gw-01/event",
        [&](std::string* out) {
          if (at == chunk.size()) {
            auto r = (*j)->ReadEvents(next_seq, 5000, 64u << 20);
            if (!r.ok() || r->empty()) return false;
            chunk = std::move(*r);
            at = 0;
            next_seq = chunk.back().seq() + 1;
          }
          chunk[at++].SerializeToString(out);
          return true;
        },
        1000);
    std::printf("  bridge: %" PRIu64 " events queued in the store broker in %.1f s\n", a.events,
                Secs(Clock::now() - t0));
  }

  HqCounter counter(a.events);
  RawMqtt sub(hq.port(), "hq-counter-b");
  sub.Subscribe("retail/v1/#");
  std::this_thread::sleep_for(200ms);
  std::thread consumer([&] {
    sub.Consume([&](const char* p, size_t n) {
      if (counter.first == Clock::time_point{}) counter.first = Clock::now();
      ++counter.messages;
      counter.payload_bytes += n;
      v1::JournaledEvent je;
      if (je.ParseFromArray(p, static_cast<int>(n))) counter.Mark(je.seq());
      if (counter.distinct == a.events) {
        counter.done = Clock::now();
        return false;
      }
      return true;
    });
  });
  link.SetRefuse(false);  // the link comes back: the bridge drains
  const bool ok = storegw::sync_test::WaitUntil([&] { return counter.done != Clock::time_point{}; },
                                                900s, 50ms);
  sub.Close();
  consumer.join();
  f.complete = ok && counter.distinct == a.events;
  f.seconds = Secs((ok ? counter.done : Clock::now()) - counter.first);
  f.rate = f.seconds > 0 ? static_cast<double>(counter.distinct) / f.seconds : 0;
  f.wire_bytes = link.up_bytes() + link.down_bytes();
  f.bytes_per_event = static_cast<double>(f.wire_bytes) / static_cast<double>(a.events);
  f.payload_bytes = counter.payload_bytes;
  f.duplicates = counter.duplicates;
  return f;
}

int Orchestrate(const Args& a) {
  storegw::sync_test::TempDir dir;
  std::printf("uplink_bench: %" PRIu64
              " events, batch_events %d, max_inflight %d, "
              "max_message_bytes %" PRIu64 ", compression %s; bridge max_inflight_messages %d\n",
              a.events, a.batch_events, a.max_inflight, a.max_message_bytes, a.compression.c_str(),
              a.bridge_inflight);
  {
    const auto t0 = Clock::now();
    auto fill = storegw::sync_test::Process::SpawnCombined(
        {Self(), "--role", "fill", "--data", (dir / "journal").string(), "--events",
         std::to_string(a.events)},
        dir / "fill.out");
    while (fill.Running()) std::this_thread::sleep_for(50ms);
    const std::string out = storegw::sync_test::ReadFile(dir / "fill.out");
    if (out.find("FILLED last_seq=" + std::to_string(a.events) + " ") == std::string::npos) {
      std::fprintf(stderr, "uplink_bench: filling the journal failed:\n%s", out.c_str());
      return 1;
    }
    std::printf("  journal: %s  (filled in %.1f s)\n", out.substr(0, out.find('\n')).c_str(),
                Secs(Clock::now() - t0));
  }

  uint64_t vmhwm = 0;
  Figures s;
  bool all_complete = true;
  std::vector<std::string> codecs;
  {
    std::stringstream in(a.compression);
    for (std::string x; std::getline(in, x, ',');) {
      if (!x.empty()) codecs.push_back(x);
    }
  }
  for (size_t i = 0; i < codecs.size(); ++i) {
    // Each run drains its own copy of the same journal.
    const fs::path run = dir.path() / ("run-" + std::to_string(i));
    fs::create_directories(run);
    fs::copy(dir.path() / "journal", run / "journal", fs::copy_options::recursive);
    Args ai = a;
    ai.compression = codecs[i];
    uint64_t hwm = 0, rss = 0;
    double cpu = 0;
    const Figures fi = RunStoregw(ai, run, &hwm, &rss, &cpu);
    std::printf(
        "storegw uplink %-9s: %s %10.0f events/s at HQ (%.2f s), %6.1f bytes/event on the "
        "wire (%" PRIu64 " bytes; payload %.1f B/event), duplicates %" PRIu64
        ", daemon peak RSS %.1f MiB (VmHWM; sampled VmRSS max %.1f MiB), CPU %.2f s per "
        "million events\n",
        codecs[i].c_str(), fi.complete ? "complete  " : "INCOMPLETE", fi.rate, fi.seconds,
        fi.bytes_per_event, fi.wire_bytes,
        static_cast<double>(fi.payload_bytes) / static_cast<double>(a.events), fi.duplicates,
        static_cast<double>(hwm) / 1024.0, static_cast<double>(rss) / 1024.0,
        cpu * 1e6 / static_cast<double>(a.events));
    std::fflush(stdout);
    all_complete = all_complete && fi.complete;
    if (i == 0) {
      s = fi;
      vmhwm = hwm;
    }
  }
  if (a.skip_bridge) return all_complete ? 0 : 1;

  const Figures b = RunBridge(a, dir.path());
  std::printf(
      "mosquitto bridge: %s %10.0f events/s at HQ (%.2f s), %6.1f bytes/event on the "
      "wire (%" PRIu64 " bytes; payload %.1f B/event), duplicates %" PRIu64 "\n",
      b.complete ? "complete  " : "INCOMPLETE", b.rate, b.seconds, b.bytes_per_event, b.wire_bytes,
      static_cast<double>(b.payload_bytes) / static_cast<double>(a.events), b.duplicates);
  std::printf(
      "targets: >= 100000 events/s: %s (%.0f); >= 10x the bridge: %s (%.1fx); "
      "<= 1/3 of the bridge's bytes/event: %s (%.2f); RSS <= 64 MiB: %s (%.1f MiB)\n",
      s.rate >= 100000 ? "met" : "MISSED", s.rate,
      b.rate > 0 && s.rate >= 10 * b.rate ? "met" : "MISSED", b.rate > 0 ? s.rate / b.rate : 0,
      s.bytes_per_event * 3 <= b.bytes_per_event ? "met" : "MISSED",
      b.bytes_per_event > 0 ? s.bytes_per_event / b.bytes_per_event : 0,
      vmhwm <= 64 * 1024 ? "met" : "MISSED", static_cast<double>(vmhwm) / 1024.0);
  return all_complete && b.complete ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  try {
    if (a.role == "fill") return RoleFill(a);
    if (a.role == "drain") return RoleDrain(a);
    if (!a.role.empty()) {
      std::fprintf(stderr, "uplink_bench: unknown role %s\n", a.role.c_str());
      return 2;
    }
    return Orchestrate(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "uplink_bench: %s\n", e.what());
    return 1;
  }
}
