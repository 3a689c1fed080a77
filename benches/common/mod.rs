//! Shared helpers for the benches: deterministic random models.

use rnncell::*;

/// A small deterministic xorshift generator (no dependency needed).
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    /// `n` values uniform in [-scale, scale).
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32() * scale).collect()
    }
}

/// Random weights for every layer and direction of `spec`.
pub fn random_weights(spec: &ModelSpec, seed: u64) -> Vec<LayerWeights> {
    let mut rng = Rng(seed | 1);
    let g = spec.cell.gates();
    let h = spec.hidden_size;
    let s = 1.0 / (h as f32).sqrt();
    let mut out = Vec::new();
    for l in 0..spec.num_layers {
        for _ in 0..spec.directions() {
            let input = spec.layer_input_size(l);
            let mut lw = LayerWeights::zeros(g, h, input, spec.state_size());
            lw.w = rng.vec(lw.w.len(), s);
            lw.r = rng.vec(lw.r.len(), s);
            lw.b_w = rng.vec(lw.b_w.len(), s);
            lw.b_r = rng.vec(lw.b_r.len(), s);
            if let CellKind::Lstm(o) = spec.cell {
                if o.peephole {
                    lw.peephole = rng.vec(3 * h, s);
                }
                if o.proj_size > 0 {
                    lw.proj = rng.vec(o.proj_size * h, s);
                    if o.proj_bias {
                        lw.proj_bias = rng.vec(o.proj_size, s);
                    }
                }
            }
            out.push(lw);
        }
    }
    out
}
