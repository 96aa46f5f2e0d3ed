// tests/fuzz/replay_main.cc: runs a libFuzzer target without libFuzzer (g++ builds, CTest): every
// file of the corpus directories given, then a fixed number of deterministic mutations of each
// (byte flips, insertions of CR/LF/SP/":", truncations), so the properties are checked on every
// build, not only when someone runs the fuzzer.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::vector<uint8_t>> seeds;
  for (int i = 1; i < argc; ++i) {
    for (const auto& entry : std::filesystem::directory_iterator(argv[i])) {
      std::ifstream in(entry.path(), std::ios::binary);
      seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds: give corpus directories\n");
    return 2;
  }
  std::mt19937_64 rng(20261124);
  const uint8_t specials[] = {'\r', '\n', ' ', '\t', ':', '\0', 0x7f, ',', '/', '0'};
  size_t runs = 0;
  for (const auto& seed : seeds) {
    LLVMFuzzerTestOneInput(seed.data(), seed.size());
    ++runs;
    for (int m = 0; m < 5000; ++m) {
      std::vector<uint8_t> v = seed;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !v.empty(); ++e) {
        const size_t at = rng() % v.size();
        switch (rng() % 4) {
          case 0: v[at] = static_cast<uint8_t>(rng()); break;
          case 1: v.insert(v.begin() + static_cast<long>(at), specials[rng() % sizeof specials]); break;
          case 2: v.erase(v.begin() + static_cast<long>(at)); break;
          default: v.resize(at + 1); break;
        }
      }
      LLVMFuzzerTestOneInput(v.data(), v.size());
      ++runs;
    }
  }
  std::printf("%zu inputs, properties held\n", runs);
  return 0;
}
