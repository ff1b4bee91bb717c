// Map access by fd. Before every call the map's own key/value sizes are read from the kernel
// (bpf_obj_get_info_by_fd): the kernel copies exactly those sizes to and from our buffers, so a
// wrong-sized Buffer from JS would otherwise be an out-of-bounds read or write.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common.h"

namespace amesh {

namespace {

struct bpf_map_info MapInfo(Napi::Env env, int fd, const char* fn) {
  struct bpf_map_info map_info;
  memset(&map_info, 0, sizeof(map_info));
  __u32 length = sizeof(map_info);
  int err = bpf_obj_get_info_by_fd(fd, &map_info, &length);
  if (err != 0) ThrowErrno(env, LibbpfErrno(err), "bpf_obj_get_info_by_fd", std::string(fn) + " map fd " + std::to_string(fd));
  return map_info;
}

bool IsPerCpu(__u32 type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

void CheckSize(Napi::Env env, const char* fn, const char* what, size_t got, __u32 expected, int fd) {
  if (got != expected)
    ThrowExplained(env, EINVAL, fn, "map fd " + std::to_string(fd),
                   std::string("the map's ") + what + " is " + std::to_string(expected) + " bytes, got " +
                       std::to_string(got));
}

std::string Detail(int fd) { return "map fd " + std::to_string(fd); }

}  // namespace

// mapUpdate(fd, key, value): bpf_map_update_elem(BPF_ANY)
Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "mapUpdate", "mapFd");
  auto key = ArgBuffer(info, 1, "mapUpdate", "key");
  auto value = ArgBuffer(info, 2, "mapUpdate", "value");
  struct bpf_map_info map_info = MapInfo(env, fd, "mapUpdate");
  CheckSize(env, "bpf_map_update_elem", "key", key.Length(), map_info.key_size, fd);
  CheckSize(env, "bpf_map_update_elem", "value", value.Length(), map_info.value_size, fd);
  if (IsPerCpu(map_info.type)) ThrowExplained(env, EINVAL, "bpf_map_update_elem", Detail(fd), "per-CPU maps are read-only here");
  int err = bpf_map_update_elem(fd, key.Data(), value.Data(), BPF_ANY);
  if (err != 0) ThrowErrno(env, LibbpfErrno(err), "bpf_map_update_elem", Detail(fd));
  return env.Undefined();
}

// mapDelete(fd, key) → false when the key was absent
Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "mapDelete", "mapFd");
  auto key = ArgBuffer(info, 1, "mapDelete", "key");
  struct bpf_map_info map_info = MapInfo(env, fd, "mapDelete");
  CheckSize(env, "bpf_map_delete_elem", "key", key.Length(), map_info.key_size, fd);
  int err = bpf_map_delete_elem(fd, key.Data());
  if (err != 0) {
    int code = LibbpfErrno(err);
    if (code == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, code, "bpf_map_delete_elem", Detail(fd));
  }
  return Napi::Boolean::New(env, true);
}

// mapLookup(fd, key, valueSize) → Buffer | null
Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "mapLookup", "mapFd");
  auto key = ArgBuffer(info, 1, "mapLookup", "key");
  uint32_t value_size = ArgUint32(info, 2, "mapLookup", "valueSize");
  struct bpf_map_info map_info = MapInfo(env, fd, "mapLookup");
  CheckSize(env, "bpf_map_lookup_elem", "key", key.Length(), map_info.key_size, fd);
  CheckSize(env, "bpf_map_lookup_elem", "value", value_size, map_info.value_size, fd);
  if (IsPerCpu(map_info.type)) ThrowExplained(env, EINVAL, "bpf_map_lookup_elem", Detail(fd), "a per-CPU map; use mapLookupPerCpu");
  std::vector<uint8_t> value(value_size);
  int err = bpf_map_lookup_elem(fd, key.Data(), value.data());
  if (err != 0) {
    int code = LibbpfErrno(err);
    if (code == ENOENT) return env.Null();
    ThrowErrno(env, code, "bpf_map_lookup_elem", Detail(fd));
  }
  return Napi::Buffer<uint8_t>::Copy(env, value.data(), value.size());
}

// mapKeys(fd, keySize) → Buffer[] (bpf_map_get_next_key from the start)
Napi::Value MapKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "mapKeys", "mapFd");
  uint32_t key_size = ArgUint32(info, 1, "mapKeys", "keySize");
  struct bpf_map_info map_info = MapInfo(env, fd, "mapKeys");
  CheckSize(env, "bpf_map_get_next_key", "key", key_size, map_info.key_size, fd);

  Napi::Array keys = Napi::Array::New(env);
  std::vector<uint8_t> current(key_size), next(key_size);
  // A hash map restarts from its first key when the current one was deleted meanwhile;
  // bounding the walk by max_entries keeps concurrent churn from looping forever.
  for (uint32_t n = 0; n < map_info.max_entries; n++) {
    int err = bpf_map_get_next_key(fd, n == 0 ? nullptr : current.data(), next.data());
    if (err != 0) {
      int code = LibbpfErrno(err);
      if (code == ENOENT) break;
      ThrowErrno(env, code, "bpf_map_get_next_key", Detail(fd));
    }
    keys.Set(n, Napi::Buffer<uint8_t>::Copy(env, next.data(), next.size()));
    current.swap(next);
  }
  return keys;
}

// mapLookupPerCpu(fd, key, valueSize) → Buffer[] (one per possible CPU) | null
Napi::Value MapLookupPerCpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "mapLookupPerCpu", "mapFd");
  auto key = ArgBuffer(info, 1, "mapLookupPerCpu", "key");
  uint32_t value_size = ArgUint32(info, 2, "mapLookupPerCpu", "valueSize");
  struct bpf_map_info map_info = MapInfo(env, fd, "mapLookupPerCpu");
  CheckSize(env, "bpf_map_lookup_elem", "key", key.Length(), map_info.key_size, fd);
  CheckSize(env, "bpf_map_lookup_elem", "value", value_size, map_info.value_size, fd);
  if (!IsPerCpu(map_info.type)) ThrowExplained(env, EINVAL, "bpf_map_lookup_elem", Detail(fd), "not a per-CPU map; use mapLookup");

  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) ThrowErrno(env, LibbpfErrno(cpus), "libbpf_num_possible_cpus", "");
  // The kernel lays per-CPU values out 8-byte aligned.
  size_t stride = (static_cast<size_t>(value_size) + 7) & ~static_cast<size_t>(7);
  std::vector<uint8_t> values(stride * static_cast<size_t>(cpus));
  int err = bpf_map_lookup_elem(fd, key.Data(), values.data());
  if (err != 0) {
    int code = LibbpfErrno(err);
    if (code == ENOENT) return env.Null();
    ThrowErrno(env, code, "bpf_map_lookup_elem", Detail(fd));
  }
  Napi::Array result = Napi::Array::New(env, static_cast<size_t>(cpus));
  for (int cpu = 0; cpu < cpus; cpu++)
    result.Set(static_cast<uint32_t>(cpu), Napi::Buffer<uint8_t>::Copy(env, values.data() + stride * cpu, value_size));
  return result;
}

}  // namespace amesh
