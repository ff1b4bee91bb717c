// Shared helpers of the amesh addon: errno-carrying errors, argument readers, RAII guards.
// Every exported function does one syscall-level job and, on failure, throws an Error with
// `errno` (positive), `code` ('EPERM'…) and `syscall`, like Node's own system errors.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace amesh {

// Throws Error("<syscall>(<detail>): <strerror(err)>") with errno/code/syscall set.
// `err` is a positive errno. When `log` is non-empty its last lines are appended to the
// message and the whole text is attached as `libbpfLog`.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& detail,
                             const std::string& log = std::string());

// Same error shape with a message of our own, for failures the kernel did not report (a wrong
// buffer size, an unknown .rodata name): "<syscall>(<detail>): <explanation>".
[[noreturn]] void ThrowExplained(Napi::Env env, int err, const std::string& syscall, const std::string& detail,
                                 const std::string& explanation);

// libbpf reports errors as negative return values (1.0 mode) and also sets errno; this picks
// whichever is meaningful.
int LibbpfErrno(long ret);

// Collects what libbpf prints (warnings, the verifier log) while the object is alive, so it
// can go into the error message instead of the agent's stderr. Not reentrant; the addon runs
// on one JS thread per environment and libbpf calls the printer synchronously.
class LibbpfLog {
 public:
  LibbpfLog();
  ~LibbpfLog();
  LibbpfLog(const LibbpfLog&) = delete;
  LibbpfLog& operator=(const LibbpfLog&) = delete;
  const std::string& Text() const { return text_; }
  void Append(const char* data, size_t size);

 private:
  std::string text_;
  LibbpfLog* previous_;
};
void InstallLibbpfPrinter();

// Closes the fd on scope exit unless Release()d.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard();
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int Get() const { return fd_; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// Argument readers: throw TypeError naming the function and the argument. The TypeScript
// wrapper (src/native/addon.ts) validates first; these only keep bad input from reaching C.
int32_t ArgInt32(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name);
uint32_t ArgUint32(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name);
// A non-negative file descriptor.
int ArgFd(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name);

std::string Hex(uint32_t value);

// Exported functions, grouped by file.
// bpf_object.cc
Napi::Value LoadObject(const Napi::CallbackInfo& info);
Napi::Value CloseObject(const Napi::CallbackInfo& info);
// bpf_map.cc
Napi::Value MapUpdate(const Napi::CallbackInfo& info);
Napi::Value MapDelete(const Napi::CallbackInfo& info);
Napi::Value MapLookup(const Napi::CallbackInfo& info);
Napi::Value MapKeys(const Napi::CallbackInfo& info);
Napi::Value MapLookupPerCpu(const Napi::CallbackInfo& info);
// bpf_prog.cc
Napi::Value ProgTestRun(const Napi::CallbackInfo& info);
Napi::Value ProgTestRunSkLookup(const Napi::CallbackInfo& info);
Napi::Value ProgId(const Napi::CallbackInfo& info);
Napi::Value NetnsAttachSkLookup(const Napi::CallbackInfo& info);
// tc.cc
Napi::Value TcAttachIngress(const Napi::CallbackInfo& info);
Napi::Value TcDetachIngress(const Napi::CallbackInfo& info);
Napi::Value TcQueryIngress(const Napi::CallbackInfo& info);
// sockets.cc
Napi::Value CreateTransparentListener(const Napi::CallbackInfo& info);
Napi::Value CreateOutboundSocket(const Napi::CallbackInfo& info);
Napi::Value GetSocketMark(const Napi::CallbackInfo& info);
Napi::Value SocketCookie(const Napi::CallbackInfo& info);
Napi::Value SetSocketMark(const Napi::CallbackInfo& info);
Napi::Value SetSocketLinger(const Napi::CallbackInfo& info);
Napi::Value CloseFd(const Napi::CallbackInfo& info);
Napi::Value IfNameToIndex(const Napi::CallbackInfo& info);
// handoff.cc
Napi::Value UnixConnect(const Napi::CallbackInfo& info);
Napi::Value UnixListen(const Napi::CallbackInfo& info);
Napi::Value SendFds(const Napi::CallbackInfo& info);
Napi::Value RecvFds(const Napi::CallbackInfo& info);
Napi::Value PeerCredentials(const Napi::CallbackInfo& info);

}  // namespace amesh
