// The one-line reasons the webgpu backend cannot open (shown after "webgpu backend unavailable: ").

const MESA_PACKAGES = "libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri";
export const NO_PACKAGE = "the optional npm package 'webgpu' is not installed (npm install webgpu@0.6.2)";
export const NO_ADAPTER = "no WebGPU adapter: Dawn found neither a Vulkan GPU nor an OpenGL ES driver " +
  `(without a GPU, install Mesa's: apt-get install ${MESA_PACKAGES}, and set EGL_PLATFORM=surfaceless)`;
