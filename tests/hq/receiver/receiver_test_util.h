// Helpers of the receiver's integration tests: an MQTT probe that publishes
// raw payloads the way a gateway does and collects the HqAcks HQ
// publishes, HTTPS requests as the gateway's transport sends them, and the
// tests' own view of PostgreSQL (psql, independent of the code under test).
// Batches by hand: batch_util.h.
#pragma once

#include <httplib.h>
#include <mqtt/async_client.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "batch_util.h"
#include "common/postgres.h"
#include "storegw/v1/storegw.pb.h"
#include "sync_test_util.h"

namespace storegw::hq_test {

using namespace std::chrono_literals;

// A gateway's side of MQTT, by hand: publishes payloads on
// {prefix}/{store}/{gateway}/events (QoS 1, waiting for the PUBACK), with
// or without the content-encoding user property, and collects every HqAck
// on {prefix}/+/+/ack.
class MqttProbe {
 public:
  struct Ack {
    std::string topic;
    v1::HqAck ack;
  };

  explicit MqttProbe(const std::string& url, std::string prefix = "retail/v1")
      : prefix_(std::move(prefix)) {
    mqtt::create_options co(MQTTVERSION_5);
    static int n = 0;
    cli_ = std::make_unique<mqtt::async_client>(
        url, "hq-test-probe-" + std::to_string(getpid()) + "-" + std::to_string(++n), co, nullptr);
    cli_->set_message_callback([this](mqtt::const_message_ptr m) {
      v1::HqAck a;
      const bool ok = a.ParseFromString(m->get_payload_str());
      std::lock_guard lk(mu_);
      if (ok) {
        acks_.push_back({m->get_topic(), a});
      } else {
        bad_acks_++;
      }
    });
    opts_ = mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).clean_start(true).finalize();
    if (!cli_->connect(opts_)->wait_for(10s)) throw std::runtime_error("probe: connect timed out");
    if (!cli_->subscribe(prefix_ + "/+/+/ack", 1)->wait_for(10s)) {
      throw std::runtime_error("probe: subscribe timed out");
    }
  }
  ~MqttProbe() {
    try {
      cli_->disconnect(0)->wait_for(2s);
    } catch (...) {
    }
  }
  MqttProbe(const MqttProbe&) = delete;
  MqttProbe& operator=(const MqttProbe&) = delete;

  // `encoding`: the content-encoding user property, "" for none.
  void PublishRaw(const std::string& store, const std::string& gw, const std::string& payload,
                  const std::string& encoding = "", const std::string& leaf = "events",
                  bool retained = false) {
    auto msg = mqtt::make_message(prefix_ + "/" + store + "/" + gw + "/" + leaf, payload, 1,
                                  retained);
    if (!encoding.empty()) {
      mqtt::properties props;
      props.add({mqtt::property::CONTENT_TYPE, std::string("application/x-protobuf")});
      props.add({mqtt::property::USER_PROPERTY, std::string("content-encoding"), encoding});
      msg->set_properties(props);
    }
    if (!cli_->publish(msg)->wait_for(10s)) throw std::runtime_error("probe: no PUBACK");
  }
  // As a gateway sends a batch: deflated, with the MQTT 5 properties.
  void Publish(const v1::EventBatch& b) {
    PublishRaw(b.store_id(), b.gateway_id(), Deflated(b), "deflate");
  }

  std::vector<Ack> acks() const {
    std::lock_guard lk(mu_);
    return acks_;
  }
  // The acks received for `gw`.
  std::vector<v1::HqAck> AcksOf(const std::string& gw) const {
    std::lock_guard lk(mu_);
    std::vector<v1::HqAck> out;
    for (const auto& a : acks_) {
      if (a.ack.gateway_id() == gw) out.push_back(a.ack);
    }
    return out;
  }
  int bad_acks() const {
    std::lock_guard lk(mu_);
    return bad_acks_;
  }

 private:
  std::string prefix_;
  std::unique_ptr<mqtt::async_client> cli_;
  mqtt::connect_options opts_;
  mutable std::mutex mu_;
  std::vector<Ack> acks_;
  int bad_acks_ = 0;
};

// One POST /v1/batches over TLS (the server verified against `ca`; with
// `cert`/`key` a client certificate). status -1: no HTTP answer (a
// transport or TLS failure).
struct HttpAnswer {
  int status = -1;
  std::string body;
  std::string retry_after;
  std::string error;  // why there is no answer
};
inline HttpAnswer PostBatch(uint16_t port, const std::string& ca, const std::string& body,
                            const httplib::Headers& headers,
                            const std::string& content_type = "application/x-protobuf",
                            const std::string& cert = "", const std::string& key = "") {
  std::unique_ptr<httplib::SSLClient> cli =
      cert.empty() ? std::make_unique<httplib::SSLClient>("127.0.0.1", port)
                   : std::make_unique<httplib::SSLClient>("127.0.0.1", port, cert, key);
  cli->set_ca_cert_path(ca.c_str());
  cli->enable_server_certificate_verification(true);
  cli->set_connection_timeout(10, 0);
  cli->set_read_timeout(30, 0);
  HttpAnswer a;
  auto res = cli->Post("/v1/batches", headers, body, content_type.c_str());
  if (!res) {
    a.error = httplib::to_string(res.error());
    return a;
  }
  a.status = res->status;
  a.body = res->body;
  a.retry_after = res->get_header_value("Retry-After");
  return a;
}

// The headers the gateway's https transport sends with `b`.
inline httplib::Headers GatewayHeaders(const v1::EventBatch& b, bool deflate = true) {
  httplib::Headers h = {{"Idempotency-Key", b.gateway_id() + "-" + std::to_string(b.epoch()) +
                                                "-" + std::to_string(b.first_seq()) + "-" +
                                                std::to_string(b.last_seq())}};
  if (deflate) h.emplace("Content-Encoding", "deflate");
  return h;
}

// What PostgreSQL holds for a gateway, by psql: "rows distinct min max".
inline std::string EventsOf(test::Postgres& pg, const std::string& db, const std::string& gw) {
  return pg.Psql("SELECT count(*) || ' ' || count(DISTINCT (epoch, seq)) || ' ' || "
                 "coalesce(min(seq), 0) || ' ' || coalesce(max(seq), 0) FROM events WHERE "
                 "gateway_id = '" + gw + "'",
                 db);
}

// One PostgreSQL server for the test cases that keep it running (each
// uses a database of its own); stopped when the test program exits.
inline test::Postgres& SharedPostgres() {
  static test::Postgres pg;
  return pg;
}

// One test PKI (CA, server certificate for 127.0.0.1, client certificate)
// for every test case of the program.
inline const sync_test::Pki& SharedPki() {
  static sync_test::TempDir dir;
  static sync_test::Pki pki(dir / "pki");
  return pki;
}

// A fresh database name per call.
inline std::string FreshDb(const std::string& prefix) {
  static int n = 0;
  return prefix + "_" + std::to_string(getpid()) + "_" + std::to_string(++n);
}

}  // namespace storegw::hq_test
