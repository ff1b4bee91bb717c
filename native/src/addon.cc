// Module registration of amesh_native. The exact interface is src/native/types.ts
// (NativeBinding); src/native/addon.ts is the only module that loads this file.
#include "common.h"

namespace amesh {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfPrinter();
  const struct {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  } functions[] = {
      {"loadObject", LoadObject},
      {"closeObject", CloseObject},
      {"mapUpdate", MapUpdate},
      {"mapDelete", MapDelete},
      {"mapLookup", MapLookup},
      {"mapKeys", MapKeys},
      {"mapLookupPerCpu", MapLookupPerCpu},
      {"progTestRun", ProgTestRun},
      {"progTestRunSkLookup", ProgTestRunSkLookup},
      {"progId", ProgId},
      {"netnsAttachSkLookup", NetnsAttachSkLookup},
      {"tcAttachIngress", TcAttachIngress},
      {"tcDetachIngress", TcDetachIngress},
      {"tcQueryIngress", TcQueryIngress},
      {"createTransparentListener", CreateTransparentListener},
      {"createOutboundSocket", CreateOutboundSocket},
      {"getSocketMark", GetSocketMark},
      {"socketCookie", SocketCookie},
      {"setSocketMark", SetSocketMark},
      {"setSocketLinger", SetSocketLinger},
      {"closeFd", CloseFd},
      {"ifNameToIndex", IfNameToIndex},
      {"unixConnect", UnixConnect},
      {"unixListen", UnixListen},
      {"sendFds", SendFds},
      {"recvFds", RecvFds},
      {"peerCredentials", PeerCredentials},
  };
  for (const auto& f : functions) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
  return exports;
}

}  // namespace amesh

static Napi::Object InitAmeshNative(Napi::Env env, Napi::Object exports) { return amesh::Init(env, exports); }

NODE_API_MODULE(amesh_native, InitAmeshNative)
