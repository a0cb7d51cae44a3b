# node-gyp entry point. It builds nothing itself: CMakeLists.txt is the one build description, and this action
# runs it through scripts/build-native.js (cmake-js) in build/cmake, then hands node-gyp the product in
# build/Release. So `node-gyp rebuild` (and tools built on node-gyp) build exactly what `npm run build:native` does.
{
  "targets": [
    {
      "target_name": "tpo",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_build",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["<(PRODUCT_DIR)/tpo.node"],
          "action": ["node", "scripts/build-native.js", "--out", "build/cmake", "--copy-to", "<(PRODUCT_DIR)"]
        }
      ]
    }
  ]
}
