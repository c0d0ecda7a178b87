// The receiver's MQTT ingress against a real mosquitto and a real
// PostgreSQL (PgStore): a real gateway uplink (ack = "hq") drained through
// two replicas on one shared subscription; batches out of order and
// resent; bad batches of every kind; the database going away and coming
// back (and HTTPS meanwhile); a replica restarted on its persistent
// session; a broker restarted under a running replica.
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "receiver_test_util.h"
#include "storegw/hq/pg_store.h"
#include "storegw/hq/receiver.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/uplink.h"

namespace storegw::hq {
namespace {

using namespace std::chrono_literals;
using hq_test::EventsOf;
using hq_test::FreshDb;
using hq_test::MakeBatch;
using hq_test::MqttProbe;
using hq_test::SharedPostgres;
using sync_test::Mosquitto;
using sync_test::TempDir;
using sync_test::WaitUntil;

constexpr auto kWait = 60s;  // generous: the suite also runs under TSan

std::unique_ptr<PgStore> OpenStore(const std::string& conninfo) {
  auto s = PgStore::Open(conninfo);
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  return std::move(*s);
}

ReceiverOptions MqttOptions(const Mosquitto& broker, const std::string& name) {
  ReceiverOptions o;
  o.mqtt.url = broker.url();
  o.mqtt.client_id = "hq-" + name + "-" + std::to_string(getpid());
  return o;
}

std::unique_ptr<Receiver> StartReceiver(const ReceiverOptions& o, EventStore* store) {
  auto r = Receiver::Create(o, store);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  const Status s = (*r)->Start();
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  REQUIRE_MESSAGE((*r)->Stats().mqtt_connected, (*r)->Stats().last_error);
  return std::move(*r);
}

uint64_t Refused(const Receiver& r, const char* reason) {
  const auto st = r.Stats();
  auto it = st.refused.find(reason);
  return it == st.refused.end() ? 0 : it->second;
}

uint64_t AppliedSeq(EventStore& s, const std::string& store, const std::string& gw,
                    uint64_t epoch) {
  uint64_t seq = 0;
  const Status st = s.AppliedSeq(store, gw, epoch, &seq);
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  return seq;
}

TEST_CASE("mqtt: a real uplink (ack = hq) drains through two replicas sharing a subscription") {
  TempDir dir;
  Mosquitto broker(dir / "broker");
  test::Postgres& pg = SharedPostgres();
  const std::string db = FreshDb("drain");
  const std::string conninfo = pg.CreateDatabase(db);
  auto store_a = OpenStore(conninfo);
  auto store_b = OpenStore(conninfo);
  auto a = StartReceiver(MqttOptions(broker, "a"), store_a.get());
  auto b = StartReceiver(MqttOptions(broker, "b"), store_b.get());

  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
  REQUIRE(j.ok());
  REQUIRE(sync_test::AppendSales(**j, 1, 4000) == "");
  const uint64_t last = (*j)->Stats().last_seq;  // with the oversell alerts the sales raised

  sync::UplinkOptions o;
  o.url = broker.url();
  o.ack = "hq";
  o.batch_events = 100;
  o.max_inflight = 8;
  o.backoff_initial = 50ms;
  o.backoff_max = 500ms;
  o.connect_timeout = 5s;
  o.hq_ack_timeout = 10s;
  o.client_id = "gw-test-" + std::to_string(getpid());
  auto up = sync::Uplink::Create(o, j->get());
  REQUIRE_MESSAGE(up.ok(), up.status().ToString());
  REQUIRE((*up)->Start().ok());
  const bool drained = WaitUntil([&] { return (*j)->Stats().watermark == last; }, kWait);
  // Both replicas record the gateway's retained status (not shared).
  const bool statuses = WaitUntil(
      [&] { return a->Stats().statuses_received > 0 && b->Stats().statuses_received > 0; }, kWait);
  const sync::UplinkStatus us = (*up)->status();
  (*up)->Stop();
  INFO("uplink last_error: " << us.last_error << "; receiver a: " << a->Stats().last_error
                             << "; receiver b: " << b->Stats().last_error);
  REQUIRE(drained);
  CHECK(statuses);

  const std::string n = std::to_string(last);
  CHECK(EventsOf(pg, db, "gw-01") == n + " " + n + " 1 " + n);  // every seq once
  CHECK(AppliedSeq(*store_a, "store-0001", "gw-01", (*j)->epoch()) == last);
  CHECK(AppliedSeq(*store_a, "store-0002", "gw-01", (*j)->epoch()) == 0);  // another store's
  const ReceiverStats sa = a->Stats(), sb = b->Stats();
  CHECK(sa.batches_stored > 0);  // the broker shared the batches out
  CHECK(sb.batches_stored > 0);
  CHECK(sa.events_stored + sb.events_stored == last);
  CHECK(sa.refused.empty());
  CHECK(sb.refused.empty());
  CHECK(sa.acks_published + sb.acks_published > 0);
  // Not a receiver matter (it retried): PgStore's replicas racing to
  // create the month's partition show here.
  WARN_MESSAGE(sa.store_errors + sb.store_errors == 0,
               "store errors: " << sa.last_error << " " << sb.last_error);
  // The gateway's status reached the fleet rows.
  std::vector<FleetRow> rows;
  REQUIRE(store_a->Fleet(&rows).ok());
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].store_id == "store-0001");
  CHECK(rows[0].gateway_id == "gw-01");
  CHECK(rows[0].applied_seq == last);
  CHECK(rows[0].status.has_value());
  a->Stop();
  b->Stop();
}

TEST_CASE("mqtt: a real uplink with zstd batches, plain or columnar, is stored once") {
  std::string encoding = "protobuf";
  SUBCASE("uplink.batch_encoding = protobuf") {}
  SUBCASE("uplink.batch_encoding = columnar") { encoding = "columnar"; }
  TempDir dir;
  Mosquitto broker(dir / "broker");
  test::Postgres& pg = SharedPostgres();
  const std::string db = FreshDb("zstd_" + encoding);
  auto store = OpenStore(pg.CreateDatabase(db));
  auto r = StartReceiver(MqttOptions(broker, "z"), store.get());

  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
  REQUIRE(j.ok());
  REQUIRE(sync_test::AppendSales(**j, 1, 3000) == "");
  const uint64_t last = (*j)->Stats().last_seq;

  sync::UplinkOptions o;
  o.url = broker.url();
  o.ack = "hq";
  o.batch_events = 200;
  o.compression = "zstd";
  o.compression_level = 5;
  o.batch_encoding = encoding;
  o.backoff_initial = 50ms;
  o.backoff_max = 500ms;
  o.hq_ack_timeout = 10s;
  o.client_id = "gw-zstd-" + std::to_string(getpid());
  auto up = sync::Uplink::Create(o, j->get());
  REQUIRE_MESSAGE(up.ok(), up.status().ToString());
  REQUIRE((*up)->Start().ok());
  const bool drained = WaitUntil([&] { return (*j)->Stats().watermark == last; }, kWait);
  const sync::UplinkStatus us = (*up)->status();
  (*up)->Stop();
  INFO("uplink last_error: " << us.last_error << "; receiver: " << r->Stats().last_error);
  REQUIRE(drained);
  const std::string n = std::to_string(last);
  CHECK(EventsOf(pg, db, "gw-01") == n + " " + n + " 1 " + n);  // every seq once
  const ReceiverStats s = r->Stats();
  CHECK(s.refused.empty());
  CHECK(s.events_stored == last);
  CHECK(s.batches_stored > 0);
  r->Stop();
}

TEST_CASE("mqtt: out of order, HqAck names only the contiguous prefix, and a resent batch is acked again") {
  TempDir dir;
  Mosquitto broker(dir / "broker");
  test::Postgres& pg = SharedPostgres();
  const std::string db = FreshDb("order");
  auto store = OpenStore(pg.CreateDatabase(db));
  auto r = StartReceiver(MqttOptions(broker, "order"), store.get());
  MqttProbe gw(broker.url());
  const uint64_t epoch = 4242;
  const auto batch = [&](uint64_t first) { return MakeBatch("s1", "gw-09", epoch, first, 10); };

  // 21..30 and 11..20 first: stored past the gap, nothing to acknowledge.
  gw.Publish(batch(21));
  gw.Publish(batch(11));
  REQUIRE(WaitUntil([&] { return r->Stats().batches_stored == 2; }, kWait));
  CHECK(EventsOf(pg, db, "gw-09") == "20 20 11 30");
  CHECK(AppliedSeq(*store, "s1", "gw-09", epoch) == 0);
  // A sentinel of another gateway, stored after them: once its ack is in,
  // any ack of gw-09 would have been too.
  gw.Publish(MakeBatch("s1", "gw-10", 1, 1, 3));
  REQUIRE(WaitUntil([&] { return gw.AcksOf("gw-10").size() == 1; }, kWait));
  CHECK(gw.AcksOf("gw-09").empty());

  // 1..10 fills the gap: one ack for the whole prefix.
  gw.Publish(batch(1));
  REQUIRE(WaitUntil([&] { return !gw.AcksOf("gw-09").empty(); }, kWait));
  auto acks = gw.AcksOf("gw-09");
  REQUIRE(acks.size() == 1);
  CHECK(acks[0].seq() == 30);
  CHECK(acks[0].epoch() == epoch);
  CHECK(AppliedSeq(*store, "s1", "gw-09", epoch) == 30);

  // The gateway resends 11..20 (it never saw the ack): duplicates only,
  // acknowledged again with the prefix, on the gateway's own ack topic.
  const uint64_t dups = r->Stats().events_duplicate;
  gw.Publish(batch(11));
  REQUIRE(WaitUntil([&] { return gw.AcksOf("gw-09").size() == 2; }, kWait));
  CHECK(gw.AcksOf("gw-09")[1].seq() == 30);
  CHECK(r->Stats().events_duplicate == dups + 10);
  CHECK(EventsOf(pg, db, "gw-09") == "30 30 1 30");
  for (const auto& a : gw.acks()) {
    CHECK(a.topic == "retail/v1/s1/" + a.ack.gateway_id() + "/ack");
  }
  CHECK(gw.bad_acks() == 0);
  r->Stop();
}

TEST_CASE("mqtt: two stores' gw-01 are two gateways - both stored, each acked on its own topic") {
  TempDir dir;
  Mosquitto broker(dir / "broker");
  test::Postgres& pg = SharedPostgres();
  const std::string db = FreshDb("twostores");
  auto store = OpenStore(pg.CreateDatabase(db));
  auto r = StartReceiver(MqttOptions(broker, "twostores"), store.get());
  MqttProbe gw(broker.url());
  // Every store's gateway is "gw-01" by default; each journal has its epoch.
  const uint64_t e1 = 1001, e2 = 2002;
  for (const auto& [sid, epoch] : {std::pair{"s1", e1}, std::pair{"s2", e2}}) {
    v1::GatewayStatus st;
    st.set_store_id(sid);
    st.set_gateway_id("gw-01");
    st.set_epoch(epoch);
    st.set_online(true);
    gw.PublishRaw(sid, "gw-01", st.SerializeAsString(), "", "status", /*retained=*/true);
  }
  // Interleaved, s2 out of order.
  gw.Publish(MakeBatch("s1", "gw-01", e1, 1, 10, "s1-"));
  gw.Publish(MakeBatch("s2", "gw-01", e2, 11, 10, "s2-"));
  gw.Publish(MakeBatch("s1", "gw-01", e1, 11, 10, "s1-"));
  gw.Publish(MakeBatch("s2", "gw-01", e2, 1, 10, "s2-"));
  const auto acked = [&](const std::string& sid, uint64_t epoch) {
    for (const auto& a : gw.acks()) {
      if (a.topic == "retail/v1/" + sid + "/gw-01/ack" && a.ack.epoch() == epoch &&
          a.ack.seq() == 20) {
        return true;
      }
    }
    return false;
  };
  REQUIRE(WaitUntil([&] { return acked("s1", e1) && acked("s2", e2); }, kWait));
  // No ack went to the other store's gateway.
  for (const auto& a : gw.acks()) {
    CAPTURE(a.topic);
    CHECK(a.ack.gateway_id() == "gw-01");
    CHECK(a.ack.epoch() == (a.topic == "retail/v1/s1/gw-01/ack" ? e1 : e2));
  }
  CHECK(r->Stats().refused.empty());
  CHECK(r->Stats().events_stored == 40);
  CHECK(AppliedSeq(*store, "s1", "gw-01", e1) == 20);
  CHECK(AppliedSeq(*store, "s2", "gw-01", e2) == 20);
  CHECK(pg.Psql("SELECT string_agg(store_id || ':' || n, ' ' ORDER BY store_id) FROM (SELECT "
                "store_id, count(DISTINCT seq) AS n FROM events GROUP BY 1) x",
                db) == "s1:20 s2:20");
  // Both statuses recorded, each on its own store's row.
  std::vector<FleetRow> rows;
  REQUIRE(WaitUntil(
      [&] {
        return store->Fleet(&rows).ok() && rows.size() == 2 && rows[0].status && rows[1].status;
      },
      kWait));
  for (const FleetRow& row : rows) {
    CAPTURE(row.store_id);
    CHECK(row.gateway_id == "gw-01");
    CHECK(row.epoch == (row.store_id == "s1" ? e1 : e2));
    CHECK(row.epochs_seen == 1);
    CHECK(row.applied_seq == 20);
    CHECK(row.status->epoch() == row.epoch);
  }
  r->Stop();
}

TEST_CASE("mqtt: bad batches are counted by reason and never acknowledged") {
  TempDir dir;
  Mosquitto broker(dir / "broker");
  test::Postgres& pg = SharedPostgres();
  const std::string db = FreshDb("bad");
  auto store = OpenStore(pg.CreateDatabase(db));
  auto r = StartReceiver(MqttOptions(broker, "bad"), store.get());
  MqttProbe gw(broker.url());

  // A gateway's first epoch, stored and acked, then its next epoch: the
  // first is superseded from then on.
  gw.Publish(MakeBatch("s1", "gw-20", 100, 1, 5));
  gw.Publish(MakeBatch("s1", "gw-20", 200, 1, 5));
  REQUIRE(WaitUntil([&] { return gw.AcksOf("gw-20").size() == 2; }, kWait));

  // undecodable: garbage, declared deflate but not, an unknown encoding.
  gw.PublishRaw("s1", "gw-21", "\x01\x02\x03 not a batch");
  gw.PublishRaw("s1", "gw-21", MakeBatch("s1", "gw-21", 1, 1, 3).SerializeAsString(), "deflate");
  gw.PublishRaw("s1", "gw-21", hq_test::Deflated(MakeBatch("s1", "gw-21", 1, 1, 3)), "br");
  // not_contiguous: 1..4 holding 3 events.
  v1::EventBatch nc = MakeBatch("s1", "gw-22", 1, 1, 3);
  nc.set_last_seq(4);
  gw.Publish(nc);
  // invalid_event: a sale of quantity 0.
  v1::EventBatch inv = MakeBatch("s1", "gw-23", 1, 1, 3);
  inv.mutable_events(1)->mutable_event()->mutable_sale()->mutable_lines(0)->set_qty(0);
  gw.Publish(inv);
  // topic_mismatch: gw-24's batch under gw-25's topic.
  gw.PublishRaw("s1", "gw-25", hq_test::Deflated(MakeBatch("s1", "gw-24", 1, 1, 3)), "deflate");
  // superseded_epoch (store): gw-20's first epoch again.
  gw.Publish(MakeBatch("s1", "gw-20", 100, 6, 5));
  // conflict (store): gw-20's seqs 1..5 of epoch 200 with other events.
  gw.Publish(MakeBatch("s1", "gw-20", 200, 1, 5, "other-"));

  REQUIRE(WaitUntil(
      [&] {
        return Refused(*r, "undecodable") == 3 && Refused(*r, "not_contiguous") == 1 &&
               Refused(*r, "invalid_event") == 1 && Refused(*r, "topic_mismatch") == 1 &&
               Refused(*r, "superseded_epoch") == 1 && Refused(*r, "conflict") == 1;
      },
      kWait));
  // The sentinel: its ack comes after any the bad batches could have had.
  gw.Publish(MakeBatch("s1", "gw-26", 1, 1, 2));
  REQUIRE(WaitUntil([&] { return gw.AcksOf("gw-26").size() == 1; }, kWait));
  for (const char* g : {"gw-21", "gw-22", "gw-23", "gw-24", "gw-25"}) {
    CHECK_MESSAGE(gw.AcksOf(g).empty(), g);
    CHECK(EventsOf(pg, db, g) == "0 0 0 0");
  }
  CHECK(gw.AcksOf("gw-20").size() == 2);  // none for the refused ones
  CHECK(EventsOf(pg, db, "gw-20") == "10 10 1 5");
  const ReceiverStats st = r->Stats();
  CHECK(st.batches_received == 11);
  CHECK(st.batches_stored == 3);
  CHECK(WaitUntil([&] { return r->Stats().acks_published == 3; }, kWait));
  r->Stop();
}

TEST_CASE("mqtt: a replica restarted resumes its session and a restarted broker is reconnected to") {
  TempDir dir;
  Mosquitto broker(dir / "broker");
  test::Postgres& pg = SharedPostgres();
  const std::string db = FreshDb("session");
  auto store = OpenStore(pg.CreateDatabase(db));
  const ReceiverOptions o = MqttOptions(broker, "session");
  MqttProbe gw(broker.url());
  {
    auto r = StartReceiver(o, store.get());
    gw.Publish(MakeBatch("s1", "gw-30", 7, 1, 5));
    REQUIRE(WaitUntil([&] { return gw.AcksOf("gw-30").size() == 1; }, kWait));
    r->Stop();
  }
  // Published while no replica runs: the broker queues it in the session.
  gw.Publish(MakeBatch("s1", "gw-30", 7, 6, 5));
  auto r = StartReceiver(o, store.get());
  REQUIRE(WaitUntil([&] { return gw.AcksOf("gw-30").size() == 2; }, kWait));
  CHECK(gw.AcksOf("gw-30")[1].seq() == 10);
  CHECK(EventsOf(pg, db, "gw-30") == "10 10 1 10");

  // The broker dies (kill -9, no persistence: sessions and subscriptions
  // gone) and comes back on the same port: the receiver reconnects and
  // subscribes again by itself.
  broker.Restart();
  REQUIRE(WaitUntil([&] { return r->Stats().last_error.find("lost") != std::string::npos; },
                    kWait));
  REQUIRE(WaitUntil([&] { return r->Stats().mqtt_connected; }, kWait));
  MqttProbe gw2(broker.url());
  gw2.Publish(MakeBatch("s1", "gw-30", 7, 11, 5));
  REQUIRE(WaitUntil([&] { return gw2.AcksOf("gw-30").size() == 1; }, kWait));
  CHECK(gw2.AcksOf("gw-30")[0].seq() == 15);
  r->Stop();
}

TEST_CASE("mqtt and https: the database unavailable, nothing acked, then stored and acked once it is back") {
  TempDir dir;
  Mosquitto broker(dir / "broker");
  test::Postgres& pg = SharedPostgres();
  const std::string db = FreshDb("down");
  auto store = OpenStore(pg.CreateDatabase(db));
  const sync_test::Pki& pki = hq_test::SharedPki();
  ReceiverOptions o = MqttOptions(broker, "down");
  const uint16_t https_port = sync_test::FreePort();
  o.https.listen = "127.0.0.1:" + std::to_string(https_port);
  o.https.cert_file = pki.server_crt.string();
  o.https.key_file = pki.server_key.string();
  auto r = StartReceiver(o, store.get());
  MqttProbe gw(broker.url());
  gw.Publish(MakeBatch("s1", "gw-40", 9, 1, 5));
  REQUIRE(WaitUntil([&] { return gw.AcksOf("gw-40").size() == 1; }, kWait));

  // The store's database goes away: its connection is cut and new ones
  // are refused (as while PostgreSQL restarts or fails over).
  pg.Psql("ALTER DATABASE " + db + " ALLOW_CONNECTIONS false", "postgres");
  pg.Psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db + "'",
          "postgres");
  gw.Publish(MakeBatch("s1", "gw-40", 9, 6, 5));
  // The transaction failed and was retried: no ack can have been sent.
  REQUIRE(WaitUntil([&] { return r->Stats().store_errors >= 2; }, kWait));
  CHECK(gw.AcksOf("gw-40").size() == 1);
  const ReceiverStats down = r->Stats();
  CHECK(down.last_error.find("store:") == 0);
  CHECK(down.last_error.find(pg.password()) == std::string::npos);
  // HTTPS meanwhile: 503 with Retry-After, nothing stored.
  const v1::EventBatch hb = MakeBatch("s1", "gw-41", 3, 1, 4);
  hq_test::HttpAnswer a = hq_test::PostBatch(https_port, pki.ca_crt.string(),
                                             hq_test::Deflated(hb), hq_test::GatewayHeaders(hb));
  CHECK_MESSAGE(a.status == 503, a.status << " " << a.error << a.body);
  CHECK(std::stoi(a.retry_after.empty() ? "0" : a.retry_after) >= 1);

  pg.Psql("ALTER DATABASE " + db + " ALLOW_CONNECTIONS true", "postgres");
  REQUIRE(WaitUntil([&] { return gw.AcksOf("gw-40").size() == 2; }, kWait));
  CHECK(gw.AcksOf("gw-40")[1].seq() == 10);
  CHECK(EventsOf(pg, db, "gw-40") == "10 10 1 10");
  // The gateway's resend over HTTPS now goes through.
  a = hq_test::PostBatch(https_port, pki.ca_crt.string(), hq_test::Deflated(hb),
                         hq_test::GatewayHeaders(hb));
  CHECK_MESSAGE(a.status == 200, a.status << " " << a.error << a.body);
  CHECK(EventsOf(pg, db, "gw-41") == "4 4 1 4");
  r->Stop();
}

}  // namespace
}  // namespace storegw::hq
