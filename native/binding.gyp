# The amesh native addon: a thin node-addon-api layer over libbpf and a few socket syscalls
# (incl. SCM_RIGHTS fd passing for the agent hand-off).
# Links the system libbpf (libbpf-dev), which needs libelf and zlib. C++ exceptions are on
# (NAPI_CPP_EXCEPTIONS): a failing syscall throws a Napi::Error carrying errno/code/syscall.
{
  "targets": [
    {
      "target_name": "amesh_native",
      "sources": [
        "src/addon.cc",
        "src/errors.cc",
        "src/bpf_object.cc",
        "src/bpf_map.cc",
        "src/bpf_prog.cc",
        "src/tc.cc",
        "src/sockets.cc",
        "src/handoff.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
