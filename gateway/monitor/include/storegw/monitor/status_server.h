// A listener of its own for the status routes (status.listen): the status
// page, /v1/status, /v1/status/history and /metrics from StatusHttp, plus
// /healthz and /readyz, which answer as on the device API's listener (no
// token; /readyz 503 until SetReady(true) and again from BeginShutdown()),
// so a probe can use either address. Used when the operator wants monitoring on another address or
// port than the device API (e.g. Prometheus on the store LAN, devices on
// loopback).
//
// Threads: Start() spawns the server's threads; Stop() from the thread
// that started it. The StatusHttp must outlive the server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "storegw/monitor/status_http.h"
#include "storegw/status.h"

namespace storegw::gateway {

class StatusServer {
 public:
  // Binds `listen` ("HOST:PORT", port 0 picks one) and serves. Errors name
  // the address and why (in use, not an address of this machine).
  static Result<std::unique_ptr<StatusServer>> Start(const std::string& listen, StatusHttp& routes);
  virtual ~StatusServer() = default;
  virtual uint16_t port() const = 0;
  // /readyz answers 200 {"status":"ready"} once ready, 503 before (starting
  // up) and after BeginShutdown() (shutting down). Any thread.
  virtual void SetReady(bool ready) = 0;
  virtual void BeginShutdown() = 0;
  // Stops listening; returns when no handler runs any more. Idempotent.
  virtual void Stop() = 0;
  // Answers so far by HTTP status code, ascending.
  virtual std::vector<std::pair<int, uint64_t>> ResponsesByCode() const = 0;
};

}  // namespace storegw::gateway
