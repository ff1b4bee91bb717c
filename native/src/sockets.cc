// Sockets Node cannot make itself: transparent, marked listeners for captured traffic and
// marked (optionally foreign-source) outbound sockets. Each returns a non-blocking,
// close-on-exec fd that JS hands to net.Server#listen({ fd }) or wraps in a net.Socket.
// Any failure closes the fd before throwing.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace amesh {

namespace {

struct SocketAddress {
  struct sockaddr_storage storage;
  socklen_t length;
};

int Family(Napi::Env env, uint32_t family, const char* fn) {
  if (family == 4) return AF_INET;
  if (family == 6) return AF_INET6;
  throw Napi::TypeError::New(env, std::string(fn) + ": family must be 4 or 6");
}

SocketAddress ParseAddress(Napi::Env env, int family, const std::string& address, uint16_t port) {
  SocketAddress result;
  memset(&result, 0, sizeof(result));
  int ok;
  if (family == AF_INET) {
    auto* in = reinterpret_cast<struct sockaddr_in*>(&result.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    ok = inet_pton(AF_INET, address.c_str(), &in->sin_addr);
    result.length = sizeof(*in);
  } else {
    auto* in6 = reinterpret_cast<struct sockaddr_in6*>(&result.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    ok = inet_pton(AF_INET6, address.c_str(), &in6->sin6_addr);
    result.length = sizeof(*in6);
  }
  if (ok != 1) ThrowErrno(env, EINVAL, "inet_pton", address);
  return result;
}

std::string Endpoint(int family, const std::string& address, uint32_t port) {
  return family == AF_INET6 ? "[" + address + "]:" + std::to_string(port) : address + ":" + std::to_string(port);
}

int OpenTcpSocket(Napi::Env env, int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", family == AF_INET6 ? "AF_INET6, SOCK_STREAM" : "AF_INET, SOCK_STREAM");
  return fd;
}

void SetInt(Napi::Env env, int fd, int level, int option, int value, const char* option_name) {
  if (setsockopt(fd, level, option, &value, sizeof(value)) != 0)
    ThrowErrno(env, errno, "setsockopt", std::string(option_name) + " = " + std::to_string(value));
}

void SetTransparent(Napi::Env env, int fd, int family) {
  if (family == AF_INET)
    SetInt(env, fd, SOL_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT");
  else
    SetInt(env, fd, SOL_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT");
}

void SetMark(Napi::Env env, int fd, uint32_t mark) {
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0)
    ThrowErrno(env, errno, "setsockopt", "SO_MARK = " + Hex(mark));
}

}  // namespace

// createTransparentListener(family, address, port, mark, backlog) → fd
Napi::Value CreateTransparentListener(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "createTransparentListener";
  int family = Family(env, ArgUint32(info, 0, fn, "family"), fn);
  std::string address = ArgString(info, 1, fn, "address");
  uint32_t port = ArgUint32(info, 2, fn, "port");
  uint32_t mark = ArgUint32(info, 3, fn, "mark");
  int32_t backlog = ArgInt32(info, 4, fn, "backlog");
  if (port > 65535) throw Napi::TypeError::New(env, std::string(fn) + ": port must be 0..65535");
  SocketAddress bind_address = ParseAddress(env, family, address, static_cast<uint16_t>(port));

  FdGuard fd(OpenTcpSocket(env, family));
  SetInt(env, fd.Get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  // An IPv6 listener must not also take IPv4 (the IPv4 listener owns that).
  if (family == AF_INET6) SetInt(env, fd.Get(), SOL_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
  SetTransparent(env, fd.Get(), family);
  // The capture program only assigns SYNs to a listener carrying this mark.
  SetMark(env, fd.Get(), mark);
  if (bind(fd.Get(), reinterpret_cast<struct sockaddr*>(&bind_address.storage), bind_address.length) != 0)
    ThrowErrno(env, errno, "bind", Endpoint(family, address, port));
  if (listen(fd.Get(), backlog) != 0) ThrowErrno(env, errno, "listen", "backlog " + std::to_string(backlog));
  return Napi::Number::New(env, fd.Release());
}

// createOutboundSocket(family, mark, bindAddress | null) → unconnected fd
Napi::Value CreateOutboundSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "createOutboundSocket";
  int family = Family(env, ArgUint32(info, 0, fn, "family"), fn);
  uint32_t mark = ArgUint32(info, 1, fn, "mark");
  bool has_bind = !info[2].IsNull() && !info[2].IsUndefined();
  std::string bind_to = has_bind ? ArgString(info, 2, fn, "bindAddress") : std::string();
  SocketAddress bind_address;
  if (has_bind) bind_address = ParseAddress(env, family, bind_to, 0);

  FdGuard fd(OpenTcpSocket(env, family));
  // Set before connect so the SYN already carries the mark (and skips capture routing).
  if (mark != 0) SetMark(env, fd.Get(), mark);
  if (has_bind) {
    SetTransparent(env, fd.Get(), family);
    // Defer the source port choice to connect(): with bind(addr, 0) alone the kernel picks a
    // port unique per source address, which caps connections per pod at the ephemeral range.
    SetInt(env, fd.Get(), SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1, "IP_BIND_ADDRESS_NO_PORT");
    if (bind(fd.Get(), reinterpret_cast<struct sockaddr*>(&bind_address.storage), bind_address.length) != 0)
      ThrowErrno(env, errno, "bind", Endpoint(family, bind_to, 0));
  }
  return Napi::Number::New(env, fd.Release());
}

// getSocketMark(fd) → SO_MARK
Napi::Value GetSocketMark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "getSocketMark", "fd");
  uint32_t mark = 0;
  socklen_t length = sizeof(mark);
  if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &length) != 0)
    ThrowErrno(env, errno, "getsockopt", "fd " + std::to_string(fd) + ", SO_MARK");
  return Napi::Number::New(env, mark);
}

// socketCookie(fd) → SO_COOKIE (bigint): the socket's kernel-wide id, which an sk_lookup test run
// reports for the socket its program selected.
Napi::Value SocketCookie(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "socketCookie", "fd");
  uint64_t cookie = 0;
  socklen_t length = sizeof(cookie);
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length) != 0)
    ThrowErrno(env, errno, "getsockopt", "fd " + std::to_string(fd) + ", SO_COOKIE");
  return Napi::BigInt::New(env, cookie);
}

// setSocketMark(fd, mark): SO_MARK on an existing socket (the agent unmarks its listeners
// before closing them, so the capture program stops assigning SYNs to them first).
Napi::Value SetSocketMark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "setSocketMark", "fd");
  uint32_t mark = ArgUint32(info, 1, "setSocketMark", "mark");
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0)
    ThrowErrno(env, errno, "setsockopt", "fd " + std::to_string(fd) + ", SO_MARK = " + Hex(mark));
  return env.Undefined();
}

// setSocketLinger(fd, seconds | null): SO_LINGER. {on, 0} makes the kernel's close of the fd a
// RST instead of a FIN — the node agent arms the TCP sockets it relays so that its own death
// (kill -9, OOM) resets them; null turns lingering off again before the agent's own FIN.
Napi::Value SetSocketLinger(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "setSocketLinger", "fd");
  struct linger value = {0, 0};
  if (!info[1].IsNull()) {
    value.l_onoff = 1;
    value.l_linger = static_cast<int>(ArgUint32(info, 1, "setSocketLinger", "seconds"));
  }
  if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &value, sizeof(value)) != 0)
    ThrowErrno(env, errno, "setsockopt",
               "fd " + std::to_string(fd) + ", SO_LINGER = " + (value.l_onoff ? std::to_string(value.l_linger) + " s" : std::string("off")));
  return env.Undefined();
}

// closeFd(fd)
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "closeFd", "fd");
  // Linux releases the fd even when close reports EINTR; retrying could close a reused fd.
  if (close(fd) != 0 && errno != EINTR) ThrowErrno(env, errno, "close", "fd " + std::to_string(fd));
  return env.Undefined();
}

// ifNameToIndex(name) → ifindex
Napi::Value IfNameToIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "ifNameToIndex", "name");
  unsigned int index = if_nametoindex(name.c_str());
  if (index == 0) ThrowErrno(env, errno, "if_nametoindex", name);
  return Napi::Number::New(env, index);
}

}  // namespace amesh
