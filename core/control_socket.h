// The daemons' control API: a unix stream socket (STATE_DIR/control.sock by default, mode
// 0600: only root, or the daemon's user, may steer it) that `blockrep` talks to.
//
// Protocol: the client sends one request, a JSON object on one line ("\n"-terminated, at
// most kMaxRequestBytes); the server answers with one JSON object on one line and keeps the
// connection open for the next request. Every response has "ok": true, or "ok": false and
// "error": "what went wrong". The request's "cmd" names the command; the handler decides the
// rest (see docs/control.md for the daemons' commands).
//
// Thread-safety: ControlServer runs each connection on its own thread (at most
// kMaxConnections at once; more are refused with an error response), so a handler may block
// (a `drain` waits for the target) and must be thread-safe. Stop() may be called from any
// thread but a handler's.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "core/unique_fd.h"

namespace blockrep {

class ControlServer {
 public:
  // One request line longer than this is refused (and the connection closed).
  static constexpr size_t kMaxRequestBytes = 1u << 20;
  // Connections served at once.
  static constexpr int kMaxConnections = 16;

  using Json = nlohmann::json;
  // Gets the parsed request (an object with a string "cmd"); returns the response object.
  // If it lacks "ok", the server adds "ok": true. A handler that throws has its exception
  // turned into {"ok": false, "error": what()}.
  using Handler = std::function<Json(const Json& request)>;

  // Creates the socket at path (mode 0600; a stale socket from a dead process is replaced,
  // a live one or any other file is an error naming the path) and starts accepting.
  static Result<std::unique_ptr<ControlServer>> Start(const std::string& path, Handler handler);
  ~ControlServer();  // Stop()s
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Stops accepting, shuts down open connections (a handler still running finishes; its
  // response is dropped), waits for every thread, removes the socket file.
  void Stop();
  const std::string& path() const { return path_; }

 private:
  ControlServer(std::string path, Handler handler)
      : path_(std::move(path)), handler_(std::move(handler)) {}
  void AcceptLoop();
  void Serve(int fd);

  std::string path_;
  Handler handler_;
  UniqueFd listen_fd_;
  dev_t socket_dev_ = 0;  // the socket file bound: Stop() removes only that file
  ino_t socket_ino_ = 0;
  UniqueFd stop_fd_;  // eventfd that wakes the accept loop
  std::thread accept_thread_;
  std::mutex mu_;
  std::set<int> conn_fds_;             // guarded by mu_
  std::vector<std::thread> threads_;   // guarded by mu_
  int active_ = 0;                     // guarded by mu_
  bool stopping_ = false;              // guarded by mu_
};

// One request/response exchange with a control socket. Errors: the socket cannot be reached
// (names the path and says whether the daemon seems not to run), a timeout (timeout_ms; -1
// waits forever), or a response that is not one JSON object. A response with "ok": false is
// returned as a value, not an error: the caller prints its "error".
Result<nlohmann::json> ControlCall(const std::string& path, const nlohmann::json& request,
                                   int timeout_ms);

}  // namespace blockrep
