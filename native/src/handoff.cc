// File descriptor passing for the node agent's listener hand-off (src/node-agent/handoff/):
// a connect to a unix socket (a leading '@' names an abstract socket, which is scoped by
// network namespace), SCM_RIGHTS send/receive and SO_PEERCRED. Every call is non-blocking:
// recvFds returns null when nothing is queued yet, so JS polls it without ever blocking the
// event loop. Received fds are close-on-exec (MSG_CMSG_CLOEXEC).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common.h"

namespace amesh {

namespace {

// At most this many fds in one message (the kernel's SCM_MAX_FD is 253).
constexpr size_t kMaxFds = 64;

struct UnixAddress {
  struct sockaddr_un address;
  socklen_t length;
};

UnixAddress ParseUnixAddress(Napi::Env env, const std::string& path, const char* fn) {
  UnixAddress result;
  memset(&result, 0, sizeof(result));
  result.address.sun_family = AF_UNIX;
  bool abstract = !path.empty() && path[0] == '@';
  size_t size = path.size();
  if (size < 2 || size > sizeof(result.address.sun_path) - (abstract ? 0 : 1))
    throw Napi::TypeError::New(env, std::string(fn) + ": path must be 2.." + std::to_string(sizeof(result.address.sun_path) - 1) +
                                        " characters ('@name' for an abstract socket)");
  memcpy(result.address.sun_path, path.data(), size);
  // An abstract name starts with a NUL byte and is exactly as long as given (no terminator).
  if (abstract) result.address.sun_path[0] = '\0';
  result.length = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + size + (abstract ? 0 : 1));
  return result;
}

void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds) close(fd);
}

}  // namespace

// unixConnect(path) → connected, non-blocking, close-on-exec SOCK_STREAM fd
Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "unixConnect";
  std::string path = ArgString(info, 0, fn, "path");
  UnixAddress address = ParseUnixAddress(env, path, fn);
  FdGuard fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.Get() < 0) ThrowErrno(env, errno, "socket", "AF_UNIX, SOCK_STREAM");
  // A unix stream connect completes at once or fails (ECONNREFUSED: nobody listens;
  // EAGAIN: the listener's backlog is full) — it never stays in progress.
  if (connect(fd.Get(), reinterpret_cast<struct sockaddr*>(&address.address), address.length) != 0)
    ThrowErrno(env, errno, "connect", path);
  return Napi::Number::New(env, fd.Release());
}

// unixListen(path, backlog) → listening, non-blocking, close-on-exec SOCK_STREAM fd, for
// net.Server#listen({ fd }). Node's own listen({ path: '\0name' }) pads an abstract name with
// NULs to the whole sun_path on some versions (libuv), which a name-exact connect never
// matches; binding here keeps both ends exact. A path (not '@') must not exist yet.
Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "unixListen";
  std::string path = ArgString(info, 0, fn, "path");
  int32_t backlog = ArgInt32(info, 1, fn, "backlog");
  UnixAddress address = ParseUnixAddress(env, path, fn);
  FdGuard fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.Get() < 0) ThrowErrno(env, errno, "socket", "AF_UNIX, SOCK_STREAM");
  if (bind(fd.Get(), reinterpret_cast<struct sockaddr*>(&address.address), address.length) != 0) ThrowErrno(env, errno, "bind", path);
  if (listen(fd.Get(), backlog) != 0) ThrowErrno(env, errno, "listen", "backlog " + std::to_string(backlog));
  return Napi::Number::New(env, fd.Release());
}

// sendFds(fd, fds, data) → bytes sent. One sendmsg: `data` (non-empty) with the fds attached
// as SCM_RIGHTS. The kernel takes its own references; the caller's fds stay open.
Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "sendFds";
  int fd = ArgFd(info, 0, fn, "fd");
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, std::string(fn) + ": fds must be an array");
  Napi::Array list = info[1].As<Napi::Array>();
  if (list.Length() > kMaxFds) throw Napi::TypeError::New(env, std::string(fn) + ": at most " + std::to_string(kMaxFds) + " fds");
  std::vector<int> fds;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list[i];
    if (!v.IsNumber() || v.As<Napi::Number>().Int32Value() < 0) throw Napi::TypeError::New(env, std::string(fn) + ": fds must be non-negative integers");
    fds.push_back(v.As<Napi::Number>().Int32Value());
  }
  Napi::Buffer<uint8_t> data = ArgBuffer(info, 2, fn, "data");
  if (data.Length() == 0) throw Napi::TypeError::New(env, std::string(fn) + ": data must not be empty");

  struct iovec iov;
  iov.iov_base = data.Data();
  iov.iov_len = data.Length();
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds), 0);
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t sent;
  do {
    sent = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) ThrowErrno(env, errno, "sendmsg", "fd " + std::to_string(fd) + ", " + std::to_string(fds.size()) + " fds");
  return Napi::Number::New(env, static_cast<double>(sent));
}

// recvFds(fd, maxBytes) → { data, fds } | null (nothing queued yet). data.length 0 with no fds
// means the peer closed. A message whose fds did not all fit is an error (the ones that
// arrived are closed).
Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "recvFds";
  int fd = ArgFd(info, 0, fn, "fd");
  uint32_t max_bytes = ArgUint32(info, 1, fn, "maxBytes");
  if (max_bytes == 0 || max_bytes > (1u << 20)) throw Napi::TypeError::New(env, std::string(fn) + ": maxBytes must be 1..1048576");
  std::vector<uint8_t> buffer(max_bytes);
  struct iovec iov;
  iov.iov_base = buffer.data();
  iov.iov_len = buffer.size();
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds), 0);
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t received;
  do {
    received = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (received < 0 && errno == EINTR);
  if (received < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, errno, "recvmsg", "fd " + std::to_string(fd));
  }
  std::vector<int> fds;
  for (struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* p = CMSG_DATA(cmsg);
    for (size_t i = 0; i < count; i++) {
      int one;
      memcpy(&one, p + i * sizeof(int), sizeof(int));
      fds.push_back(one);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    CloseAll(fds);
    ThrowExplained(env, EMSGSIZE, "recvmsg", "fd " + std::to_string(fd), "more than " + std::to_string(kMaxFds) + " fds in one message (truncated; the received ones were closed)");
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("data", Napi::Buffer<uint8_t>::Copy(env, buffer.data(), static_cast<size_t>(received)));
  Napi::Array list = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) list.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  result.Set("fds", list);
  return result;
}

// peerCredentials(fd) → { pid, uid, gid } of the process at the other end (SO_PEERCRED)
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "peerCredentials", "fd");
  struct ucred cred;
  socklen_t length = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0)
    ThrowErrno(env, errno, "getsockopt", "fd " + std::to_string(fd) + ", SO_PEERCRED");
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, cred.pid));
  result.Set("uid", Napi::Number::New(env, cred.uid));
  result.Set("gid", Napi::Number::New(env, cred.gid));
  return result;
}

}  // namespace amesh
