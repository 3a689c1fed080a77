// A small C++11 RAII wrapper over the rnncell C API: std::unique_ptr with
// deleters for the handles, exceptions for statuses, std::vector buffers.
// Header-only; include after (or instead of) rnncell.h.
//
// Ownership and threads are those of the C API: a Model is immutable and may
// be shared by any number of threads (use it through a const reference or a
// std::shared_ptr<const Model>); a State belongs to one thread at a time.
#ifndef RNNCELL_HPP
#define RNNCELL_HPP

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "rnncell.h"

namespace rnncell {

// A failed call: the status and, when the library gave one, a message.
class Error : public std::runtime_error {
public:
    Error(RnncellStatus status, const std::string &what)
        : std::runtime_error(what), status_(status) {}
    RnncellStatus status() const noexcept { return status_; }

private:
    RnncellStatus status_;
};

// Throws for a status other than OK. The message is the call's error detail
// (rnncell_last_error: the function, the argument and what is wrong with it),
// then the status's description.
inline void check(RnncellStatus s, const char *call) {
    if (s != RNNCELL_STATUS_OK) {
        std::string what = rnncell_last_error();
        if (what.empty()) what = call;
        what += std::string(" [") + rnncell_status_str(s) + "]";
        throw Error(s, what);
    }
}

struct ModelDeleter {
    void operator()(RnncellModel *m) const noexcept { rnncell_model_free(m); }
};
struct StateDeleter {
    void operator()(RnncellState *s) const noexcept { rnncell_state_free(s); }
};
using ModelPtr = std::unique_ptr<RnncellModel, ModelDeleter>;
using StatePtr = std::unique_ptr<RnncellState, StateDeleter>;

inline RnncellTensor tensor(const std::vector<float> &v) {
    RnncellTensor t;
    t.data = v.empty() ? nullptr : v.data();
    t.len = v.size();
    return t;
}

class Model;

// The state of one stream. Movable, copyable (a copy forks the stream).
class State {
public:
    State(const State &other) : state_(fork(other.state_.get())) {}
    State &operator=(const State &other) {
        if (this != &other) state_ = StatePtr(fork(other.state_.get()));
        return *this;
    }
    State(State &&) noexcept = default;
    State &operator=(State &&) noexcept = default;

    void reset() { check(rnncell_state_reset(state_.get()), "rnncell_state_reset"); }
    std::vector<float> h(std::size_t layer, std::size_t size) const {
        std::vector<float> v(size);
        check(rnncell_state_get_h(state_.get(), layer, v.data(), v.size()), "rnncell_state_get_h");
        return v;
    }
    RnncellState *get() const noexcept { return state_.get(); }

private:
    friend class Model;
    explicit State(RnncellState *s) : state_(s) {}
    static RnncellState *fork(const RnncellState *s) {
        RnncellState *out = nullptr;
        check(rnncell_state_copy(s, &out), "rnncell_state_copy");
        return out;
    }
    StatePtr state_;
};

// An immutable model. Movable, not copyable (share it by reference).
class Model {
public:
    // PyTorch layout: one RnncellPytorchLayer per layer and direction. The
    // weights are stored in spec.weight_precision (f32 unless changed after
    // rnncell_spec_init).
    static Model pytorch(const RnncellSpec &spec, const std::vector<RnncellPytorchLayer> &layers,
                         RnncellIsa isa = RNNCELL_ISA_AUTO) {
        RnncellModel *m = nullptr;
        check(rnncell_model_new_pytorch(&spec, layers.data(), layers.size(), isa, &m, nullptr, 0),
              "rnncell_model_new_pytorch");
        return Model(m);
    }
    // The same in the weight precision `precision`, which replaces
    // spec.weight_precision: RNNCELL_WEIGHT_PRECISION_F32, _F16, _BF16, _I8W
    // (int8 weights) or _I8 (int8 weights and activations; every size at
    // most RNNCELL_MAX_INT8_K). A bad value throws INVALID_ARGUMENT.
    static Model pytorch(const RnncellSpec &spec, const std::vector<RnncellPytorchLayer> &layers,
                         RnncellWeightPrecision precision, RnncellIsa isa = RNNCELL_ISA_AUTO) {
        RnncellSpec s = spec;
        s.weight_precision = precision;
        return pytorch(s, layers, isa);
    }

    State new_state() const {
        RnncellState *s = nullptr;
        check(rnncell_state_new(model_.get(), &s), "rnncell_state_new");
        return State(s);
    }

    RnncellModelInfo info() const {
        RnncellModelInfo i;
        check(rnncell_model_info_init(&i, sizeof i), "rnncell_model_info_init");
        check(rnncell_model_info(model_.get(), &i), "rnncell_model_info");
        return i;
    }
    // The precision the weight matrices are stored in.
    RnncellWeightPrecision precision() const noexcept {
        return static_cast<RnncellWeightPrecision>(info_.weight_precision);
    }

    // One step of one stream; returns the last layer's h.
    std::vector<float> step(State &state, const std::vector<float> &x) const {
        std::vector<float> y(info_.state_size);
        step(state, x, y);
        return y;
    }
    // Allocation-free form: y must hold state_size floats.
    void step(State &state, const std::vector<float> &x, std::vector<float> &y) const {
        check(rnncell_model_step(model_.get(), state.get(), x.data(), x.size(), y.data(),
                                 y.size()),
              "rnncell_model_step");
    }

    RnncellModel *get() const noexcept { return model_.get(); }

private:
    explicit Model(RnncellModel *m) : model_(m), info_() {
        info_.struct_size = sizeof info_;  // versioned output (see the README)
        check(rnncell_model_info(m, &info_), "rnncell_model_info");
    }
    ModelPtr model_;
    RnncellModelInfo info_;
};

inline std::string version() { return rnncell_version(); }

}  // namespace rnncell

#endif
