// rnncell from C++ through the RAII wrapper in rnncell.hpp: a GRU streamed by
// two threads sharing one model, a forked stream, and an error turned into
// an exception.
//
//   c++ -std=c++11 -I include -I examples/cpp examples/cpp/rnncell_cpp.cpp
//       target/release/librnncell.a -lpthread -ldl -o rnncell_cpp
//   (or see c/Makefile, target `examples`)
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

#include "rnncell.hpp"

namespace {

std::vector<float> synthetic(std::size_t n, unsigned seed) {
    std::vector<float> v(n);
    for (float &x : v) {
        seed = seed * 1664525u + 1013904223u;
        x = (static_cast<float>(seed >> 8) / 16777216.0f - 0.5f) * 0.4f;
    }
    return v;
}

std::vector<float> frame(std::size_t t, std::size_t n, float phase) {
    std::vector<float> x(n);
    for (std::size_t k = 0; k < n; ++k)
        x[k] = std::sin(phase + 0.1f * static_cast<float>(t * (k + 1)));
    return x;
}

}  // namespace

int main() {
    const std::size_t I = 10, H = 24, steps = 50;
    RnncellSpec spec;
    rnncell::check(rnncell_spec_init(&spec, RNNCELL_CELL_GRU, I, H), "rnncell_spec_init");

    // Weights live only until the model is built: it packs its own copy.
    std::vector<float> w_ih = synthetic(3 * H * I, 1), w_hh = synthetic(3 * H * H, 2),
                       b_ih = synthetic(3 * H, 3), b_hh = synthetic(3 * H, 4);
    RnncellPytorchLayer layer = {};
    layer.weight_ih = rnncell::tensor(w_ih);
    layer.weight_hh = rnncell::tensor(w_hh);
    layer.bias_ih = rnncell::tensor(b_ih);
    layer.bias_hh = rnncell::tensor(b_hh);
    const rnncell::Model model = rnncell::Model::pytorch(spec, {layer});

    // Two streams on two threads, one shared const model.
    std::vector<float> last[2];
    std::vector<std::thread> threads;
    for (int s = 0; s < 2; ++s) {
        threads.emplace_back([&model, &last, s, I, steps] {
            rnncell::State state = model.new_state();
            std::vector<float> y(model.info().state_size);
            for (std::size_t t = 0; t < steps; ++t) model.step(state, frame(t, I, s * 1.0f), y);
            last[s] = y;
        });
    }
    for (auto &t : threads) t.join();

    // The same streams on this thread give the same bits.
    bool same = true;
    for (int s = 0; s < 2; ++s) {
        rnncell::State state = model.new_state();
        std::vector<float> y;
        for (std::size_t t = 0; t < steps; ++t) y = model.step(state, frame(t, I, s * 1.0f));
        same = same && y == last[s];
    }

    // Copying a State forks the stream.
    rnncell::State a = model.new_state();
    for (std::size_t t = 0; t < 10; ++t) model.step(a, frame(t, I, 0.5f));
    rnncell::State b = a;
    bool fork_same = model.step(a, frame(10, I, 0.5f)) == model.step(b, frame(10, I, 0.5f));

    // A wrong size is an exception carrying the status.
    bool threw = false;
    try {
        model.step(a, std::vector<float>(I + 1));
    } catch (const rnncell::Error &e) {
        threw = e.status() == RNNCELL_STATUS_SIZE_MISMATCH;
        std::printf("expected error: %s\n", e.what());
    }

    std::printf("rnncell %s from C++: GRU %zu -> %zu on %s\n", rnncell::version().c_str(), I, H,
                rnncell_isa_name(model.info().isa));
    std::printf("stream 0 h[0..3] = % .6f % .6f % .6f\n", last[0][0], last[0][1], last[0][2]);
    std::printf("stream 1 h[0..3] = % .6f % .6f % .6f\n", last[1][0], last[1][1], last[1][2]);
    std::printf("threads == sequential: %s, fork == original: %s, size error thrown: %s\n",
                same ? "yes" : "NO", fork_same ? "yes" : "NO", threw ? "yes" : "NO");
    return same && fork_same && threw ? 0 : 1;
}
