// Receiver::Create and Start refuse options that cannot work, before
// touching the network, and each error names the option's key.
#include <doctest/doctest.h>

#include <string>

#include "storegw/hq/receiver.h"
#include "sync_test_util.h"

namespace storegw::hq {
namespace {

using sync_test::Pki;
using sync_test::TempDir;

// Never called: every case here fails before a batch could arrive.
class NoStore final : public EventStore {
 public:
  Status ApplyBatches(std::span<const IncomingBatch>, std::vector<BatchOutcome>*) override {
    return Status::FailedPrecondition("not used");
  }
  Status RecordStatus(const v1::GatewayStatus&, int64_t) override {
    return Status::FailedPrecondition("not used");
  }
  Status AppliedSeq(const std::string&, const std::string&, uint64_t, uint64_t*) override {
    return Status::FailedPrecondition("not used");
  }
  Status Fleet(std::vector<FleetRow>*) override { return Status::FailedPrecondition("not used"); }
};

TEST_CASE("receiver: options are checked, each error names its key") {
  TempDir dir;
  Pki pki(dir / "pki");
  NoStore store;
  const auto error = [&](ReceiverOptions o) {
    auto r = Receiver::Create(std::move(o), &store);
    if (r.ok()) {
      const Status s = (*r)->Start();
      (*r)->Stop();
      return s.ToString();
    }
    return r.status().ToString();
  };
  ReceiverOptions none;
  CHECK(error(none).find("nothing to receive from") != std::string::npos);
  ReceiverOptions tiny;
  tiny.https.listen = "127.0.0.1:0";
  tiny.max_batch_bytes = 100;
  CHECK(error(tiny).find("max_batch_bytes: must be 1024..1073741824, got 100") !=
        std::string::npos);
  ReceiverOptions bad_url;
  bad_url.mqtt.url = "http://broker:1883";
  CHECK(error(bad_url).find("mqtt.url") != std::string::npos);
  ReceiverOptions tls_plain;
  tls_plain.mqtt.url = "tcp://127.0.0.1:1";
  tls_plain.mqtt.ca_file = pki.ca_crt.string();
  CHECK(error(tls_plain).find("not a TLS URL") != std::string::npos);
  ReceiverOptions missing_ca;
  missing_ca.mqtt.url = "ssl://127.0.0.1:1";
  missing_ca.mqtt.ca_file = (dir / "nope.pem").string();
  CHECK(error(missing_ca).find("mqtt.tls.ca_file") != std::string::npos);
  ReceiverOptions prefix;
  prefix.mqtt.url = "tcp://127.0.0.1:1";
  prefix.mqtt.topic_prefix = "retail/#";
  CHECK(error(prefix).find("mqtt.topic_prefix") != std::string::npos);
  ReceiverOptions listen;
  listen.https.listen = "127.0.0.1";
  CHECK(error(listen).find("https.listen") != std::string::npos);
  ReceiverOptions no_cert;
  no_cert.https.listen = "127.0.0.1:0";
  CHECK(error(no_cert).find("https.cert_file") != std::string::npos);
  ReceiverOptions no_file;
  no_file.https.listen = "127.0.0.1:0";
  no_file.https.cert_file = (dir / "missing.crt").string();
  no_file.https.key_file = pki.server_key.string();
  CHECK(error(no_file) == "invalid_argument: https.cert_file: " + (dir / "missing.crt").string() +
                              ": cannot open: No such file or directory");
  ReceiverOptions bad_key;
  bad_key.https.listen = "127.0.0.1:0";
  bad_key.https.cert_file = pki.server_crt.string();
  bad_key.https.key_file = pki.client_key.string();
  const std::string e = error(bad_key);
  CHECK_MESSAGE(e.find("https.key_file") != std::string::npos, e);
  CHECK_MESSAGE(e.find("does not match") != std::string::npos, e);
}

}  // namespace
}  // namespace storegw::hq
