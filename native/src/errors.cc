// Errors and argument helpers shared by every function of the addon (see common.h).
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common.h"

namespace amesh {

namespace {

// Lines of the libbpf log kept in the message; the full text goes to `libbpfLog`.
constexpr size_t kLogTailLines = 20;

thread_local LibbpfLog* active_log = nullptr;

int Printer(enum libbpf_print_level level, const char* format, va_list args) {
  if (active_log == nullptr || level == LIBBPF_DEBUG) return 0;
  va_list copy;
  va_copy(copy, args);
  int needed = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (needed <= 0) return 0;
  std::vector<char> line(static_cast<size_t>(needed) + 1);
  vsnprintf(line.data(), line.size(), format, args);
  active_log->Append(line.data(), static_cast<size_t>(needed));
  return needed;
}

std::string Tail(const std::string& text, size_t lines) {
  size_t end = text.size();
  while (end > 0 && text[end - 1] == '\n') end--;
  size_t pos = end;
  for (size_t n = 0; n < lines && pos > 0; n++) {
    size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      pos = 0;
      break;
    }
    pos = nl;
  }
  return text.substr(pos == 0 ? 0 : pos + 1, end - (pos == 0 ? 0 : pos + 1));
}

const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "EUNKNOWN";
}

[[noreturn]] void ThrowType(Napi::Env env, const char* fn, const char* name, const char* expected) {
  throw Napi::TypeError::New(env, std::string(fn) + ": argument '" + name + "' must be " + expected);
}

}  // namespace

LibbpfLog::LibbpfLog() : previous_(active_log) { active_log = this; }
LibbpfLog::~LibbpfLog() { active_log = previous_; }

void LibbpfLog::Append(const char* data, size_t size) {
  // Keep memory bounded: the verifier log of a failed load can be megabytes.
  constexpr size_t kMaxLog = 4u << 20;
  if (text_.size() < kMaxLog) text_.append(data, size);
}

void InstallLibbpfPrinter() { libbpf_set_print(Printer); }

FdGuard::~FdGuard() {
  if (fd_ >= 0) close(fd_);
}

namespace {

[[noreturn]] void Throw(Napi::Env env, int err, const std::string& syscall, const std::string& message,
                        const std::string& log) {
  std::string text = message;
  if (!log.empty()) {
    // The last lines of what libbpf printed (they start with "libbpf: "), indented.
    std::string tail = Tail(log, kLogTailLines);
    text += "\n  ";
    for (char c : tail) text += c == '\n' ? std::string("\n  ") : std::string(1, c);
  }
  Napi::Error error = Napi::Error::New(env, text);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!log.empty()) error.Set("libbpfLog", Napi::String::New(env, log));
  throw error;
}

}  // namespace

void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& detail,
                const std::string& log) {
  if (err <= 0) err = EIO;
  Throw(env, err, syscall, syscall + "(" + detail + "): " + strerror(err), log);
}

void ThrowExplained(Napi::Env env, int err, const std::string& syscall, const std::string& detail,
                    const std::string& explanation) {
  Throw(env, err, syscall, syscall + "(" + detail + "): " + explanation, std::string());
}

int LibbpfErrno(long ret) {
  if (ret < 0 && ret > -4096) return static_cast<int>(-ret);
  return errno != 0 ? errno : EIO;
}

int32_t ArgInt32(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  if (!info[index].IsNumber()) ThrowType(info.Env(), fn, name, "a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (value != static_cast<double>(static_cast<int32_t>(value))) ThrowType(info.Env(), fn, name, "a 32-bit integer");
  return static_cast<int32_t>(value);
}

uint32_t ArgUint32(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  if (!info[index].IsNumber()) ThrowType(info.Env(), fn, name, "a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (value < 0 || value != static_cast<double>(static_cast<uint32_t>(value)))
    ThrowType(info.Env(), fn, name, "an unsigned 32-bit integer");
  return static_cast<uint32_t>(value);
}

int ArgFd(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  int32_t fd = ArgInt32(info, index, fn, name);
  if (fd < 0) ThrowType(info.Env(), fn, name, "a non-negative file descriptor");
  return fd;
}

std::string ArgString(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  if (!info[index].IsString()) ThrowType(info.Env(), fn, name, "a string");
  return info[index].As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  if (!info[index].IsBuffer()) ThrowType(info.Env(), fn, name, "a Buffer");
  return info[index].As<Napi::Buffer<uint8_t>>();
}

std::string Hex(uint32_t value) {
  char text[16];
  snprintf(text, sizeof(text), "0x%x", value);
  return text;
}

}  // namespace amesh
