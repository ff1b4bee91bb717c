// loadObject / closeObject: open a compiled .bpf.o with libbpf, reuse or create maps pinned
// by name under the pin root, write `const volatile` knobs into .rodata, load, and keep the
// bpf_object in a table by id until closeObject. Closing drops our fds; pinned maps stay.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "common.h"

namespace amesh {

namespace {

constexpr unsigned long kBpfFsMagic = 0xcafe4a11;  // BPF_FS_MAGIC, linux/magic.h

std::mutex objects_mutex;
std::map<uint32_t, struct bpf_object*> objects;
uint32_t next_object_id = 1;

// Closes the object on scope exit unless Release()d (a failed load must not leak fds).
class ObjectGuard {
 public:
  explicit ObjectGuard(struct bpf_object* obj) : obj_(obj) {}
  ~ObjectGuard() {
    if (obj_ != nullptr) bpf_object__close(obj_);
  }
  ObjectGuard(const ObjectGuard&) = delete;
  ObjectGuard& operator=(const ObjectGuard&) = delete;
  struct bpf_object* Release() {
    struct bpf_object* obj = obj_;
    obj_ = nullptr;
    return obj;
  }

 private:
  struct bpf_object* obj_;
};

// libbpf pins only on a BPF filesystem; without this check an unmounted /sys/fs/bpf shows up
// as a puzzling mkdir ENOENT (sysfs refuses new directories).
void RequireBpfFs(Napi::Env env, const std::string& path) {
  std::string existing = path;
  struct stat st;
  while (stat(existing.c_str(), &st) != 0) {
    size_t slash = existing.find_last_of('/');
    if (slash == std::string::npos || slash == 0) {
      existing = "/";
      break;
    }
    existing.resize(slash);
  }
  struct statfs fs;
  if (statfs(existing.c_str(), &fs) != 0) ThrowErrno(env, errno, "statfs", existing);
  if (static_cast<unsigned long>(fs.f_type) != kBpfFsMagic)
    ThrowExplained(env, EINVAL, "statfs", existing,
                   "pin root " + path + " is not on a BPF filesystem (mount one: mount -t bpf bpf /sys/fs/bpf)");
}

// mkdir -p; an existing directory is fine.
void MakeDirectories(Napi::Env env, const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); pos++) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), 0700) == 0 || errno == EEXIST) continue;
    ThrowErrno(env, errno, "mkdir", prefix);
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) ThrowErrno(env, errno, "stat", path);
  if (!S_ISDIR(st.st_mode)) ThrowErrno(env, ENOTDIR, "mkdir", path);
}

bool EndsWith(const char* text, const char* suffix) {
  size_t n = strlen(text), m = strlen(suffix);
  return n >= m && strcmp(text + n - m, suffix) == 0;
}

// Writes each {name: bytes} into the .rodata initial image, at the offset BTF gives for that
// variable. libbpf fixes DATASEC offsets at open time (clang leaves them 0), so this must run
// after open and before load. Unknown names and size mismatches are errors: a typo must not be ignored.
void SetRodata(Napi::Env env, struct bpf_object* obj, const std::string& path, Napi::Object values) {
  Napi::Array names = values.GetPropertyNames();
  if (names.Length() == 0) return;

  struct bpf_map* rodata = nullptr;
  struct bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    if (bpf_map__is_internal(map) && EndsWith(bpf_map__name(map), ".rodata")) rodata = map;
  }
  if (rodata == nullptr)
    ThrowExplained(env, ENOENT, "bpf_map__initial_value", path, "the object has no .rodata section to write knobs into");
  size_t image_size = 0;
  const auto* initial = static_cast<const uint8_t*>(bpf_map__initial_value(rodata, &image_size));
  if (initial == nullptr) ThrowErrno(env, EINVAL, "bpf_map__initial_value", std::string(bpf_map__name(rodata)));
  std::vector<uint8_t> image(initial, initial + image_size);

  struct btf* btf = bpf_object__btf(obj);
  if (btf == nullptr) ThrowExplained(env, ENOENT, "bpf_object__btf", path, "the object has no BTF (compile it with -g)");
  int sec_id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
  if (sec_id < 0) ThrowErrno(env, ENOENT, "btf__find_by_name_kind", ".rodata");
  const struct btf_type* sec = btf__type_by_id(btf, static_cast<__u32>(sec_id));
  const struct btf_var_secinfo* vars = btf_var_secinfos(sec);
  const int var_count = btf_vlen(sec);

  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string name = names.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value value = values.Get(name);
    if (!value.IsBuffer()) throw Napi::TypeError::New(env, "loadObject: argument 'rodata." + name + "' must be a Buffer");
    auto bytes = value.As<Napi::Buffer<uint8_t>>();
    bool found = false;
    for (int v = 0; v < var_count && !found; v++) {
      const struct btf_type* var = btf__type_by_id(btf, vars[v].type);
      if (var == nullptr || name != btf__name_by_offset(btf, var->name_off)) continue;
      found = true;
      if (vars[v].size != bytes.Length())
        ThrowExplained(env, EINVAL, "rodata", name,
                       "the variable is " + std::to_string(vars[v].size) + " bytes, got " + std::to_string(bytes.Length()));
      if (static_cast<size_t>(vars[v].offset) + vars[v].size > image_size)
        ThrowExplained(env, EINVAL, "rodata", name, "BTF places it beyond the .rodata image");
      memcpy(image.data() + vars[v].offset, bytes.Data(), bytes.Length());
    }
    if (!found) ThrowExplained(env, ENOENT, "rodata", name, "no const volatile global of that name in " + path);
  }
  int err = bpf_map__set_initial_value(rodata, image.data(), image.size());
  if (err != 0) ThrowErrno(env, LibbpfErrno(err), "bpf_map__set_initial_value", std::string(bpf_map__name(rodata)));
}

Napi::Object Describe(Napi::Env env, uint32_t id, struct bpf_object* obj) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("id", Napi::Number::New(env, id));

  Napi::Array programs = Napi::Array::New(env);
  struct bpf_program* prog;
  uint32_t n = 0;
  bpf_object__for_each_program(prog, obj) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", Napi::String::New(env, bpf_program__name(prog)));
    p.Set("fd", Napi::Number::New(env, bpf_program__fd(prog)));
    programs.Set(n++, p);
  }
  result.Set("programs", programs);

  // Declared maps only: libbpf's internal .rodata/.bss maps are an implementation detail.
  Napi::Array maps = Napi::Array::New(env);
  struct bpf_map* map;
  n = 0;
  bpf_object__for_each_map(map, obj) {
    if (bpf_map__is_internal(map)) continue;
    Napi::Object m = Napi::Object::New(env);
    m.Set("name", Napi::String::New(env, bpf_map__name(map)));
    m.Set("fd", Napi::Number::New(env, bpf_map__fd(map)));
    m.Set("keySize", Napi::Number::New(env, bpf_map__key_size(map)));
    m.Set("valueSize", Napi::Number::New(env, bpf_map__value_size(map)));
    m.Set("maxEntries", Napi::Number::New(env, bpf_map__max_entries(map)));
    maps.Set(n++, m);
  }
  result.Set("maps", maps);
  return result;
}

}  // namespace

// loadObject({path, pinRoot, rodata?}) → {id, programs, maps}
Napi::Value LoadObject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "loadObject: options must be an object");
  Napi::Object options = info[0].As<Napi::Object>();
  if (!options.Get("path").IsString() || !options.Get("pinRoot").IsString())
    throw Napi::TypeError::New(env, "loadObject: options.path and options.pinRoot must be strings");
  std::string path = options.Get("path").As<Napi::String>().Utf8Value();
  std::string pin_root = options.Get("pinRoot").As<Napi::String>().Utf8Value();
  Napi::Value rodata = options.Get("rodata");

  RequireBpfFs(env, pin_root);
  MakeDirectories(env, pin_root);

  LibbpfLog log;
  struct bpf_object_open_opts open_opts;
  memset(&open_opts, 0, sizeof(open_opts));
  open_opts.sz = sizeof(open_opts);
  open_opts.pin_root_path = pin_root.c_str();
  errno = 0;
  struct bpf_object* obj = bpf_object__open_file(path.c_str(), &open_opts);
  if (obj == nullptr) ThrowErrno(env, LibbpfErrno(0), "bpf_object__open_file", path, log.Text());
  ObjectGuard guard(obj);

  if (rodata.IsObject()) SetRodata(env, obj, path, rodata.As<Napi::Object>());

  int err = bpf_object__load(obj);
  if (err != 0) ThrowErrno(env, LibbpfErrno(err), "bpf_object__load", path, log.Text());

  uint32_t id;
  {
    std::lock_guard<std::mutex> lock(objects_mutex);
    id = next_object_id++;
    objects[id] = guard.Release();
  }
  return Describe(env, id, obj);
}

// closeObject(id): closes the object's program and map fds (pins stay).
Napi::Value CloseObject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = ArgUint32(info, 0, "closeObject", "id");
  struct bpf_object* obj = nullptr;
  {
    std::lock_guard<std::mutex> lock(objects_mutex);
    auto it = objects.find(id);
    if (it != objects.end()) {
      obj = it->second;
      objects.erase(it);
    }
  }
  if (obj == nullptr) ThrowExplained(env, ENOENT, "bpf_object__close", "id " + std::to_string(id), "no open object with that id");
  bpf_object__close(obj);
  return env.Undefined();
}

}  // namespace amesh
