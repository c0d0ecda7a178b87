// POST /v1/alerts/{seq}/ack over real HTTP against the real daemon, on a
// status listener with a token: what is accepted, and every refusal with
// its code and message, each leaving the journal unchanged.
#include <doctest/doctest.h>

#include <string>

#include "sp_util.h"

using namespace storegw;
using namespace storegw::test;

namespace {

std::string AckCountJson(const std::string& event_id, const std::string& sku, int64_t qty) {
  return R"({"event_id":")" + event_id +
         R"(","device_id":"till-01","occurred_at":1700000000000000,"count":{"sku":")" + sku +
         R"(","qty":)" + std::to_string(qty) + "}}";
}

}  // namespace

TEST_CASE("statuspage daemon: POST /v1/alerts/{seq}/ack journals once - refusals change nothing") {
  TempDir tmp;
  const std::string token = "ack-token-0123456789abcdef";
  const uint16_t sport = FreePort();
  WriteFile(tmp / "storegw.toml",
            "[uplink]\ntransport = \"none\"\n[status]\nlisten = \"127.0.0.1:" +
                std::to_string(sport) + "\"\ntoken = \"" + token + "\"\n");
  std::string why;
  auto d = StartDaemon(tmp / "data", tmp / "logs", "ack-http", &why, 0,
                       {"--config", (tmp / "storegw.toml").string()});
  REQUIRE_MESSAGE(d, why);
  REQUIRE(HttpPost(d->port, "/v1/events", AckCountJson("k-1", "SKU-A", 0)).status == 200);
  REQUIRE(HttpPost(d->port, "/v1/events", SaleJson("s-1", "SKU-A", 1)).status == 200);  // OVERSELL
  REQUIRE(HttpPost(d->port, "/v1/events", SaleJson("s-2", "SKU-U", 1)).status == 200);  // untracked
  const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
  auto s = GetStatus(sport, "Bearer " + token);
  REQUIRE(s);
  REQUIRE(s->alerts_size() == 1);
  CHECK(s->alerts_open_total() == 1);
  CHECK(s->skus_untracked() == 1);
  CHECK(s->skus_total() == 2);
  const uint64_t seq = s->alerts(0).seq();
  const uint64_t last = s->last_seq();
  const std::string path = "/v1/alerts/" + std::to_string(seq) + "/ack";

  struct Refusal {
    std::string path, body;
    httplib::Headers headers;
    int status;
    std::string says;
  };
  const Refusal refusals[] = {
      {path, R"({"by":"Ana"})", {}, 401, "status token"},
      {path, R"({"by":"Ana",})", auth, 400, "byte"},                 // trailing comma
      {path, R"({"by":"Ana","by":"Bo"})", auth, 400, "appears twice"},  // repeated key
      {path, R"({"who":"Ana"})", auth, 400, "who"},                  // unknown field
      {path, R"({"by":""})", auth, 400, "1 to 64"},
      {path, R"({"by":"Ana","note":")" + std::string(300, 'n') + "\"}", auth, 400, "256"},
      {"/v1/alerts/99999/ack", R"({"by":"Ana"})", auth, 404, "alert 99999 does not exist"},
      {"/v1/alerts/x/ack", R"({"by":"Ana"})", auth, 404, "POST /v1/alerts/{seq}/ack"},
  };
  auto cli = LoopbackClient(sport, 5s);
  for (const Refusal& r : refusals) {
    CAPTURE(r.path);
    CAPTURE(r.body.substr(0, 60));
    auto res = cli.Post(r.path, r.headers, r.body, "application/json");
    REQUIRE(res);
    CHECK(res->status == r.status);
    CHECK_MESSAGE(res->body.find(r.says) != std::string::npos, res->body);
    CHECK(res->body.find(token) == std::string::npos);
  }
  auto get = cli.Get(path, auth);
  REQUIRE(get);
  CHECK(get->status == 405);
  CHECK(get->get_header_value("Allow") == "POST");
  CHECK(GetStatus(sport, "Bearer " + token)->last_seq() == last);  // nothing journaled

  auto ok = cli.Post(path, auth, R"({"by":"Ana","note":"recount at 6"})", "application/json");
  REQUIRE(ok);
  REQUIRE_MESSAGE(ok->status == 200, ok->body);
  CHECK(ok->body.find("\"already_acknowledged\":false") != std::string::npos);
  CHECK(ok->body.find("\"acked_by\":\"Ana\"") != std::string::npos);
  auto again = cli.Post(path, auth, R"({"by":"Bo"})", "application/json");
  REQUIRE(again);
  CHECK(again->status == 200);
  CHECK(again->body.find("\"already_acknowledged\":true") != std::string::npos);
  CHECK(again->body.find("\"acked_by\":\"Ana\"") != std::string::npos);
  auto after = GetStatus(sport, "Bearer " + token);
  REQUIRE(after);
  CHECK(after->last_seq() == last + 1);
  // A row for every kind (stock, perishables, cold chain), KIND_UNSPECIFIED aside.
  REQUIRE(after->alert_counts_size() == v1::Alert::Kind_descriptor()->value_count() - 1);
  for (const auto& c : after->alert_counts()) {
    CAPTURE(c.kind());
    CHECK(c.open() == (c.kind() == v1::Alert::OVERSELL ? 1u : 0u));
    CHECK(c.acknowledged() == (c.kind() == v1::Alert::OVERSELL ? 1u : 0u));
  }
  // /metrics has the true counts and the untracked skus.
  auto m = cli.Get("/metrics", auth);
  REQUIRE(m);
  CHECK(m->body.find("storegw_alerts_acknowledged{kind=\"oversell\"} 1") != std::string::npos);
  CHECK(m->body.find("storegw_skus_untracked 1") != std::string::npos);

  // The condition clears (count of 5): acknowledging it again still answers
  // the first acknowledgement.
  REQUIRE(HttpPost(d->port, "/v1/events", AckCountJson("k-2", "SKU-A", 5)).status == 200);
  auto cleared = cli.Post(path, auth, R"({"by":"Ana"})", "application/json");
  REQUIRE(cleared);
  CHECK(cleared->status == 200);
  CHECK(cleared->body.find("\"already_acknowledged\":true") != std::string::npos);
  // An alert cleared before anyone acknowledged it: 409, nothing journaled.
  REQUIRE(HttpPost(d->port, "/v1/events", SaleJson("s-3", "SKU-A", 9)).status == 200);
  auto s2 = GetStatus(sport, "Bearer " + token);
  REQUIRE(s2);
  // Open now: the count's COUNT_MISMATCH (5 against -1) and a new OVERSELL.
  uint64_t seq2 = 0;
  for (const auto& a : s2->alerts()) {
    if (a.kind() == v1::Alert::OVERSELL) seq2 = a.seq();
  }
  REQUIRE(seq2 > seq);
  REQUIRE(HttpPost(d->port, "/v1/events", AckCountJson("k-3", "SKU-A", 5)).status == 200);
  const uint64_t last2 = GetStatus(sport, "Bearer " + token)->last_seq();
  auto late = cli.Post("/v1/alerts/" + std::to_string(seq2) + "/ack", auth, R"({"by":"Ana"})",
                       "application/json");
  REQUIRE(late);
  CHECK(late->status == 409);
  CHECK(late->body.find("alert_cleared") != std::string::npos);
  CHECK(GetStatus(sport, "Bearer " + token)->last_seq() == last2);

  d->proc.Signal(SIGTERM);
  auto e = d->proc.WaitExit(30s);
  REQUIRE(e);
  CHECK(e->ok());
  // The journal verifies with the acknowledgement in it.
  RunResult v = Run(StoregwArgs({"journal", "verify", "--data-dir", (tmp / "data").string()}), 60s);
  CHECK_MESSAGE(v.exit.ok(), v.out << v.err);
}
