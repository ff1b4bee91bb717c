// Program-level calls: BPF_PROG_TEST_RUN (how the capture programs are tested in the kernel),
// the kernel id of a program fd (how a tc filter is recognised as ours), and the sk_lookup
// program's link to the network namespace.
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common.h"

namespace amesh {

// Room for a program that grows the packet (encapsulation); ours never does.
constexpr size_t kTestRunHeadroom = 256;

// progTestRun(fd, data, repeat) → {retval, durationNs, dataOut, mark}
Napi::Value ProgTestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "progTestRun", "progFd");
  auto data = ArgBuffer(info, 1, "progTestRun", "data");
  uint32_t repeat = ArgUint32(info, 2, "progTestRun", "repeat");

  // A zeroed ctx is accepted by the kernel (only a few fields may be set) and lets us read
  // back what the program wrote, __sk_buff.mark in particular.
  struct __sk_buff ctx_in, ctx_out;
  memset(&ctx_in, 0, sizeof(ctx_in));
  memset(&ctx_out, 0, sizeof(ctx_out));
  std::vector<uint8_t> out(data.Length() + kTestRunHeadroom);

  struct bpf_test_run_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  opts.data_in = data.Data();
  opts.data_size_in = static_cast<__u32>(data.Length());
  opts.data_out = out.data();
  opts.data_size_out = static_cast<__u32>(out.size());
  opts.ctx_in = &ctx_in;
  opts.ctx_size_in = sizeof(ctx_in);
  opts.ctx_out = &ctx_out;
  opts.ctx_size_out = sizeof(ctx_out);
  opts.repeat = static_cast<int>(repeat);

  int err = bpf_prog_test_run_opts(fd, &opts);
  if (err != 0) ThrowErrno(env, LibbpfErrno(err), "bpf_prog_test_run_opts", "prog fd " + std::to_string(fd));

  Napi::Object result = Napi::Object::New(env);
  result.Set("retval", Napi::Number::New(env, static_cast<int32_t>(opts.retval)));
  result.Set("durationNs", Napi::Number::New(env, opts.duration));
  result.Set("dataOut", Napi::Buffer<uint8_t>::Copy(env, out.data(), opts.data_size_out));
  result.Set("mark", Napi::Number::New(env, ctx_out.mark));
  return result;
}

// progTestRunSkLookup(fd, ctx, repeat) → {retval, durationNs, ctxOut}: BPF_PROG_TEST_RUN of an
// sk_lookup program. Its input is a struct bpf_sk_lookup (no packet: the kernel refuses data_in);
// in ctxOut the kernel writes the selected socket's SO_COOKIE into `cookie`, 0 when none was.
Napi::Value ProgTestRunSkLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "progTestRunSkLookup", "progFd");
  auto ctx = ArgBuffer(info, 1, "progTestRunSkLookup", "ctx");
  uint32_t repeat = ArgUint32(info, 2, "progTestRunSkLookup", "repeat");
  std::vector<uint8_t> ctx_out(ctx.Length());

  struct bpf_test_run_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  opts.ctx_in = ctx.Data();
  opts.ctx_size_in = static_cast<__u32>(ctx.Length());
  opts.ctx_out = ctx_out.data();
  opts.ctx_size_out = static_cast<__u32>(ctx_out.size());
  opts.repeat = static_cast<int>(repeat);

  int err = bpf_prog_test_run_opts(fd, &opts);
  if (err != 0) ThrowErrno(env, LibbpfErrno(err), "bpf_prog_test_run_opts", "sk_lookup, prog fd " + std::to_string(fd));

  Napi::Object result = Napi::Object::New(env);
  result.Set("retval", Napi::Number::New(env, static_cast<int32_t>(opts.retval)));
  result.Set("durationNs", Napi::Number::New(env, opts.duration));
  result.Set("ctxOut", Napi::Buffer<uint8_t>::Copy(env, ctx_out.data(), opts.ctx_size_out));
  return result;
}

// progId(fd) → the kernel's id of the program
Napi::Value ProgId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "progId", "progFd");
  struct bpf_prog_info prog_info;
  memset(&prog_info, 0, sizeof(prog_info));
  __u32 length = sizeof(prog_info);
  int err = bpf_obj_get_info_by_fd(fd, &prog_info, &length);
  if (err != 0) ThrowErrno(env, LibbpfErrno(err), "bpf_obj_get_info_by_fd", "prog fd " + std::to_string(fd));
  return Napi::Number::New(env, prog_info.id);
}

// netnsAttachSkLookup(progFd) → link fd: attaches an sk_lookup program to this process's network
// namespace (bpf_link_create, BPF_SK_LOOKUP). The link lives while the fd is open.
Napi::Value NetnsAttachSkLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog_fd = ArgFd(info, 0, "netnsAttachSkLookup", "progFd");
  int netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (netns_fd < 0) ThrowErrno(env, errno, "open", "/proc/self/ns/net");
  int link_fd = bpf_link_create(prog_fd, netns_fd, BPF_SK_LOOKUP, nullptr);
  int saved = errno;
  close(netns_fd);
  if (link_fd < 0) ThrowErrno(env, LibbpfErrno(link_fd == -1 ? -saved : link_fd), "bpf_link_create", "sk_lookup, prog fd " + std::to_string(prog_fd));
  return Napi::Number::New(env, link_fd);
}

}  // namespace amesh
