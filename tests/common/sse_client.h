// A Server-Sent Events client for tests of GET /v1/changes: a plain socket
// to 127.0.0.1 with its own parser (the HTTP/1.1 status line and headers,
// chunked framing, then the SSE rules of the HTML standard: an `id:` line
// sets the last event id, a blank line dispatches, an event without data
// only moves the id). Nothing in it runs a thread: a test reads one client
// (ReadSome, ReadUntil) or many from one thread with one poll() over all of
// their sockets (PumpOnce, PumpUntil), so hundreds of clients cost one
// thread.
#pragma once

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace storegw::test {

// A hang guard, not a timing threshold: only a broken feed comes near it.
inline constexpr std::chrono::seconds kSseGuard{60};

struct SseEvent {
  std::string id;  // the last event id when it was dispatched
  std::string event;
  std::string data;
};

// One HTTP/1.1 GET on its own socket, read incrementally: the status line
// and headers, then the body (chunked or not), parsed as an event stream
// when the answer is text/event-stream.
class SseClient {
 public:
  // `rcvbuf` / `mss` > 0: a small receive buffer and segment size (set
  // before connect), so that a client that stops reading fills the
  // server's socket buffers after a few tens of KiB.
  SseClient(uint16_t port, const std::string& target, const std::vector<std::string>& headers = {},
            int rcvbuf = 0, int mss = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    if (rcvbuf > 0) REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0);
    if (mss > 0) REQUIRE(::setsockopt(fd_, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss) == 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    REQUIRE_MESSAGE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0,
                    "connect: " << std::strerror(errno));
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const std::string& h : headers) req += h + "\r\n";
    req += "\r\n";
    REQUIRE(::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
  }
  ~SseClient() { Close(); }
  SseClient(const SseClient&) = delete;
  SseClient& operator=(const SseClient&) = delete;

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }

  // Reads what the socket has (waiting up to timeout_ms); false at EOF.
  bool ReadSome(int timeout_ms) {
    if (fd_ < 0 || eof) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return true;
    return ReadNow();
  }
  // One recv() (it blocks when nothing is there); false at EOF or error.
  bool ReadNow() {
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof = true;
      return false;
    }
    Feed(buf, static_cast<size_t>(n));
    return true;
  }

  // Reads until `pred` holds; fails the test past the guard.
  template <class P>
  void ReadUntil(P pred, const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + kSseGuard;
    while (!pred()) {
      REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                      "gave up waiting for " << std::string(what));
      if (!ReadSome(50) && !pred()) {
        FAIL("the stream ended while waiting for " << std::string(what) << " (status " << status
                                                   << ", " << events.size() << " events, body "
                                                   << body << ")");
      }
    }
  }
  void ReadHeaders() {
    ReadUntil([&] { return head_done; }, "the response headers");
  }
  // Reads until the answer is complete (its last chunk, or Content-Length
  // bytes) or the server closes.
  void ReadToEnd() {
    const auto deadline = std::chrono::steady_clock::now() + kSseGuard;
    while (!Complete() && ReadSome(50)) {
      REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "the answer did not end");
    }
  }
  bool Complete() const {
    if (chunked_end) return true;
    auto it = headers.find("content-length");
    return head_done && !chunked_ && it != headers.end() && body.size() >= std::stoul(it->second);
  }
  // Reads until the server closes the connection.
  void ReadToEof() {
    const auto deadline = std::chrono::steady_clock::now() + kSseGuard;
    while (ReadSome(50)) {
      REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                      "the server kept the connection");
    }
  }
  size_t Count(const std::string& event) const {
    return static_cast<size_t>(std::count_if(events.begin(), events.end(),
                                             [&](const SseEvent& e) { return e.event == event; }));
  }

  // false: the bytes of an event stream are not also kept in `body` (only
  // parsed into `events`): for long streams. A non-stream answer's body is
  // always kept.
  bool keep_stream_body = true;

  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  bool head_done = false;
  bool eof = false;
  bool chunked_end = false;  // the last chunk (0) arrived
  std::string body;          // the decoded body (of a stream too, unless keep_stream_body is false)
  std::vector<SseEvent> events;
  std::vector<std::string> comments;
  std::string last_event_id;
  std::string retry;

 private:
  // Consumes what it can of raw_ by offset and erases the consumed prefix
  // once per call (a 64 KiB read of small chunks stays linear).
  void Feed(const char* p, size_t n) {
    raw_.append(p, n);
    size_t pos = 0;
    if (!head_done) {
      const size_t end = raw_.find("\r\n\r\n");
      if (end == std::string::npos) return;
      ParseHead(raw_.substr(0, end));
      pos = end + 4;
      head_done = true;
    }
    if (!chunked_) {
      Body(raw_.data() + pos, raw_.size() - pos);
      raw_.clear();
      return;
    }
    // Chunked framing.
    while (!chunked_end) {
      if (chunk_left_ == 0) {
        const size_t eol = raw_.find("\r\n", pos);
        if (eol == std::string::npos) break;
        if (eol == pos) {  // the CRLF after a chunk's data
          pos += 2;
          continue;
        }
        chunk_left_ = std::stoul(raw_.substr(pos, eol - pos), nullptr, 16);
        pos = eol + 2;
        if (chunk_left_ == 0) {
          chunked_end = true;
          break;
        }
      }
      if (pos == raw_.size()) break;
      const size_t take = std::min(chunk_left_, raw_.size() - pos);
      Body(raw_.data() + pos, take);
      pos += take;
      chunk_left_ -= take;
    }
    raw_.erase(0, pos);
  }
  void Body(const char* p, size_t n) {
    if (!stream_ || keep_stream_body) body.append(p, n);
    if (stream_) ParseSse(p, n);
  }
  void ParseHead(const std::string& head) {
    const size_t sp = head.find(' ');
    status = std::stoi(head.substr(sp + 1, 3));
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      const size_t next = head.find("\r\n", pos + 2);
      const std::string line =
          head.substr(pos + 2, next == std::string::npos ? next : next - pos - 2);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        headers[name] = value;
      }
      pos = next;
    }
    chunked_ = headers["transfer-encoding"] == "chunked";
    stream_ = headers["content-type"] == "text/event-stream";
  }
  void ParseSse(const char* p, size_t n) {
    line_.append(p, n);
    size_t start = 0, eol;
    while ((eol = line_.find('\n', start)) != std::string::npos) {
      std::string_view line(line_.data() + start, eol - start);
      start = eol + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) {  // dispatch
        last_event_id = id_buffer_;
        if (!data_.empty()) {
          data_.pop_back();  // the last '\n'
          events.push_back({last_event_id, type_.empty() ? "message" : type_, data_});
        }
        data_.clear();
        type_.clear();
        continue;
      }
      if (line[0] == ':') {
        comments.emplace_back(line.substr(1));
        continue;
      }
      const size_t colon = line.find(':');
      const std::string_view field = line.substr(0, colon);
      std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
      if (field == "event") type_ = value;
      if (field == "data") (data_ += value) += '\n';
      if (field == "id") id_buffer_ = value;
      if (field == "retry") retry = value;
    }
    line_.erase(0, start);
  }

  int fd_ = -1;
  std::string raw_;
  bool chunked_ = false, stream_ = false;
  size_t chunk_left_ = 0;
  std::string line_, data_, type_, id_buffer_;
};

// One poll() over every client still open (closed ones and those at EOF
// are skipped): waits up to timeout_ms for any of them, then reads once
// from each that is ready. Returns how many streams ended in this call.
inline size_t PumpOnce(const std::vector<SseClient*>& clients, int timeout_ms) {
  std::vector<pollfd> fds;
  fds.reserve(clients.size());
  for (SseClient* c : clients) fds.push_back({c->eof ? -1 : c->fd(), POLLIN, 0});
  if (::poll(fds.data(), fds.size(), timeout_ms) <= 0) return 0;
  size_t ended = 0;
  for (size_t i = 0; i < clients.size(); ++i) {
    if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
        !clients[i]->ReadNow()) {
      ++ended;
    }
  }
  return ended;
}

// Reads from every client at once until `done` holds; fails the test when
// a stream ends first or past the guard.
inline void PumpUntil(const std::vector<SseClient*>& clients, const std::function<bool()>& done,
                      const char* what) {
  const auto deadline = std::chrono::steady_clock::now() + kSseGuard;
  while (!done()) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                    "gave up waiting for " << std::string(what));
    if (PumpOnce(clients, 50) > 0) FAIL("a stream ended while waiting for " << std::string(what));
  }
}

}  // namespace storegw::test
