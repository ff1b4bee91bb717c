// tc clsact ingress filters through libbpf's bpf_tc_* (netlink). Filters have a fixed
// handle/priority chosen by the caller and are replaced in place, never duplicated. We create
// the clsact qdisc when missing but never destroy one (other software may own filters on it).
//
// libbpf 1.1 quirks: bpf_tc_attach with BPF_TC_F_REPLACE needs both handle and priority set;
// bpf_tc_detach and bpf_tc_query need opts whose prog_fd, prog_id and flags are all zero.
// The kernel's "no such filter" is ENOENT only while the qdisc still has some filter chain;
// see NoSuchFilter.
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace amesh {

namespace {

struct bpf_tc_hook IngressHook(int ifindex, enum bpf_tc_attach_point point = BPF_TC_INGRESS) {
  struct bpf_tc_hook hook;
  memset(&hook, 0, sizeof(hook));
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  hook.attach_point = point;
  return hook;
}

struct bpf_tc_opts FilterOpts(uint32_t handle, uint32_t priority) {
  struct bpf_tc_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  opts.handle = handle;
  opts.priority = priority;
  return opts;
}

// With no clsact qdisc, or none of its filters left, the kernel answers EINVAL rather than
// ENOENT; its extended ack (which libbpf logs) says which. Both mean "no such filter".
bool NoSuchFilter(int code, const LibbpfLog& log) {
  if (code == ENOENT) return true;
  return code == EINVAL && (log.Text().find("Parent Qdisc doesn't exists") != std::string::npos ||
                            log.Text().find("Cannot find specified filter chain") != std::string::npos);
}

std::string Detail(int ifindex, uint32_t handle, uint32_t priority) {
  return "ifindex " + std::to_string(ifindex) + ", handle " + Hex(handle) + ", priority " + std::to_string(priority);
}

}  // namespace

// tcAttachIngress(ifindex, progFd, handle, priority) → true when this call created clsact
Napi::Value TcAttachIngress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = ArgInt32(info, 0, "tcAttachIngress", "ifindex");
  int prog_fd = ArgFd(info, 1, "tcAttachIngress", "progFd");
  uint32_t handle = ArgUint32(info, 2, "tcAttachIngress", "handle");
  uint32_t priority = ArgUint32(info, 3, "tcAttachIngress", "priority");

  LibbpfLog log;
  struct bpf_tc_hook hook = IngressHook(ifindex);
  int err = bpf_tc_hook_create(&hook);
  bool created = err == 0;
  if (err != 0 && LibbpfErrno(err) != EEXIST)
    ThrowErrno(env, LibbpfErrno(err), "bpf_tc_hook_create", "ifindex " + std::to_string(ifindex), log.Text());

  struct bpf_tc_opts opts = FilterOpts(handle, priority);
  opts.prog_fd = prog_fd;
  opts.flags = BPF_TC_F_REPLACE;
  err = bpf_tc_attach(&hook, &opts);
  if (err != 0) {
    int code = LibbpfErrno(err);
    // Undo only what this call did: a qdisc created a moment ago holds nothing else.
    if (created) {
      struct bpf_tc_hook both = IngressHook(ifindex, static_cast<enum bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
      bpf_tc_hook_destroy(&both);
    }
    ThrowErrno(env, code, "bpf_tc_attach", Detail(ifindex, handle, priority), log.Text());
  }
  return Napi::Boolean::New(env, created);
}

// tcDetachIngress(ifindex, handle, priority) → false when there was no such filter
Napi::Value TcDetachIngress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = ArgInt32(info, 0, "tcDetachIngress", "ifindex");
  uint32_t handle = ArgUint32(info, 1, "tcDetachIngress", "handle");
  uint32_t priority = ArgUint32(info, 2, "tcDetachIngress", "priority");

  LibbpfLog log;
  struct bpf_tc_hook hook = IngressHook(ifindex);
  struct bpf_tc_opts opts = FilterOpts(handle, priority);
  int err = bpf_tc_detach(&hook, &opts);
  if (err != 0) {
    int code = LibbpfErrno(err);
    if (NoSuchFilter(code, log)) return Napi::Boolean::New(env, false);
    ThrowErrno(env, code, "bpf_tc_detach", Detail(ifindex, handle, priority), log.Text());
  }
  return Napi::Boolean::New(env, true);
}

// tcQueryIngress(ifindex, handle, priority) → attached program id, 0 when none
Napi::Value TcQueryIngress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = ArgInt32(info, 0, "tcQueryIngress", "ifindex");
  uint32_t handle = ArgUint32(info, 1, "tcQueryIngress", "handle");
  uint32_t priority = ArgUint32(info, 2, "tcQueryIngress", "priority");

  LibbpfLog log;
  struct bpf_tc_hook hook = IngressHook(ifindex);
  struct bpf_tc_opts opts = FilterOpts(handle, priority);
  int err = bpf_tc_query(&hook, &opts);
  if (err != 0) {
    int code = LibbpfErrno(err);
    if (NoSuchFilter(code, log)) return Napi::Number::New(env, 0);
    ThrowErrno(env, code, "bpf_tc_query", Detail(ifindex, handle, priority), log.Text());
  }
  return Napi::Number::New(env, opts.prog_id);
}

}  // namespace amesh
