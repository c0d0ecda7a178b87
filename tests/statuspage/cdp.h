// Driving headless Chromium from a test through the DevTools protocol over
// a pipe (--remote-debugging-pipe: commands are JSON texts ended by a NUL
// byte, written to the browser's fd 3 and read from its fd 4), so a test
// can type, click and look at what the page did, with no WebSocket client
// and no port. The browser is killed (by PID) when the object goes.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

namespace storegw::test {

class CdpBrowser {
 public:
  // Starts `argv` (Chromium and its flags; --remote-debugging-pipe is
  // added) with stdout and stderr to `log`.
  bool Start(std::vector<std::string> argv, const std::string& log, std::string* why) {
    argv.push_back("--remote-debugging-pipe");
    int to_browser[2], from_browser[2];
    if (pipe(to_browser) != 0 || pipe(from_browser) != 0) {
      *why = "pipe failed";
      return false;
    }
    pid_ = fork();
    if (pid_ < 0) {
      *why = "fork failed";
      return false;
    }
    if (pid_ == 0) {
      // Child: fd 3 reads commands, fd 4 writes answers.
      int logfd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (logfd >= 0) {
        dup2(logfd, 1);
        dup2(logfd, 2);
      }
      int in = dup(to_browser[0]), out = dup(from_browser[1]);
      dup2(in, 3);
      dup2(out, 4);
      for (int fd = 5; fd < 1024; ++fd) close(fd);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(to_browser[0]);
    close(from_browser[1]);
    to_ = to_browser[1];
    from_ = from_browser[0];
    return true;
  }

  ~CdpBrowser() {
    if (to_ >= 0) close(to_);
    if (from_ >= 0) close(from_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      int st = 0;
      waitpid(pid_, &st, 0);
    }
  }

  // Sends one command (params: a JSON object text) and waits for its
  // answer; the "result" object, or nullopt with *why on an error answer,
  // a dead browser or the timeout.
  std::optional<google::protobuf::Struct> Call(const std::string& method,
                                               const std::string& params,
                                               const std::string& session, std::string* why,
                                               std::chrono::milliseconds timeout =
                                                   std::chrono::seconds(30)) {
    const int id = ++next_id_;
    std::string msg = "{\"id\":" + std::to_string(id) + ",\"method\":\"" + method +
                      "\",\"params\":" + params;
    if (!session.empty()) msg += ",\"sessionId\":\"" + session + "\"";
    msg += "}";
    msg.push_back('\0');
    for (size_t off = 0; off < msg.size();) {
      ssize_t n = write(to_, msg.data() + off, msg.size() - off);
      if (n <= 0) {
        *why = "the browser's pipe is closed";
        return std::nullopt;
      }
      off += static_cast<size_t>(n);
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      // Whole messages already read?
      for (size_t nul; (nul = buf_.find('\0')) != std::string::npos;) {
        std::string text = buf_.substr(0, nul);
        buf_.erase(0, nul + 1);
        google::protobuf::Struct s;
        google::protobuf::util::JsonParseOptions o;
        o.ignore_unknown_fields = true;
        if (!google::protobuf::util::JsonStringToMessage(text, &s, o).ok()) continue;
        auto it = s.fields().find("id");
        if (it == s.fields().end() || static_cast<int>(it->second.number_value()) != id) {
          continue;  // an event, or another command's answer
        }
        if (s.fields().count("error")) {
          *why = method + ": " + text.substr(0, 500);
          return std::nullopt;
        }
        auto r = s.fields().find("result");
        return r != s.fields().end() ? r->second.struct_value() : google::protobuf::Struct();
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        *why = method + ": no answer in time";
        return std::nullopt;
      }
      pollfd p{from_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[65536];
      ssize_t n = read(from_, chunk, sizeof chunk);
      if (n <= 0) {
        *why = method + ": the browser closed its pipe";
        return std::nullopt;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  // Opens `url` in a new page and attaches to it; the session id.
  std::optional<std::string> OpenPage(const std::string& url, std::string* why) {
    auto t = Call("Target.createTarget", "{\"url\":\"" + url + "\"}", "", why);
    if (!t) return std::nullopt;
    const std::string target = t->fields().at("targetId").string_value();
    auto a = Call("Target.attachToTarget",
                  "{\"targetId\":\"" + target + "\",\"flatten\":true}", "", why);
    if (!a) return std::nullopt;
    return a->fields().at("sessionId").string_value();
  }

  // Evaluates `js` in the page (promises awaited); its value as a string
  // (String(value) in the page), or nullopt with *why.
  std::optional<std::string> Eval(const std::string& session, const std::string& js,
                                  std::string* why) {
    google::protobuf::Struct params;
    (*params.mutable_fields())["expression"].set_string_value("String((function(){return " + js +
                                                              "})())");
    (*params.mutable_fields())["returnByValue"].set_bool_value(true);
    (*params.mutable_fields())["awaitPromise"].set_bool_value(true);
    std::string p;
    (void)google::protobuf::util::MessageToJsonString(params, &p);
    auto r = Call("Runtime.evaluate", p, session, why);
    if (!r) return std::nullopt;
    if (r->fields().count("exceptionDetails")) {
      *why = "the page threw evaluating: " + js;
      return std::nullopt;
    }
    return r->fields().at("result").struct_value().fields().at("value").string_value();
  }

  // A PNG of the page as it is now.
  std::optional<std::string> Screenshot(const std::string& session, std::string* why) {
    auto r = Call("Page.captureScreenshot", "{\"format\":\"png\"}", session, why);
    if (!r) return std::nullopt;
    return Base64Decode(r->fields().at("data").string_value());
  }

  static std::string Base64Decode(const std::string& in) {
    auto val = [](char c) -> int {
      if (c >= 'A' && c <= 'Z') return c - 'A';
      if (c >= 'a' && c <= 'z') return c - 'a' + 26;
      if (c >= '0' && c <= '9') return c - '0' + 52;
      if (c == '+') return 62;
      if (c == '/') return 63;
      return -1;
    };
    std::string out;
    int bits = 0, acc = 0;
    for (char c : in) {
      const int v = val(c);
      if (v < 0) continue;  // padding
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push_back(static_cast<char>((acc >> bits) & 0xff));
      }
    }
    return out;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  int next_id_ = 0;
  std::string buf_;
};

}  // namespace storegw::test
