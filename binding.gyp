{
  "target_defaults": {
    "sources": [
      "native/addon.cc",
      "native/dnnl_ops.cc",
      "native/elementwise.cc",
      "native/reduce.cc",
      "native/norm.cc",
      "native/pool.cc",
      "native/optim.cc",
      "native/vmath.cc",
      "native/gemm_provider.cc",
      "native/gemm_bindings.cc"
    ],
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "/usr/include/oneapi/dnnl"
    ],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags": ["-O3"],
    "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "libraries": ["-ldnnl", "-lopenblas", "-lgomp", "-lmvec"]
  },
  "targets": [
    {
      "target_name": "pipewright_v3",
      "cflags_cc": ["-march=x86-64-v3"]
    },
    {
      "target_name": "pipewright_v4",
      "cflags_cc": ["-march=x86-64-v4"]
    }
  ]
}
